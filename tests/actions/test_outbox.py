"""The outbox: actions the policy lets run alone run after the cycle's commit, once each, outside any
transaction, with a timeout and bounded retries; a claim a crash left behind becomes ``unknown``,
never run again by the outbox (see test_recovery.py for what an operator does with it)."""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opsloop.actions import outbox, service
from opsloop.actions.outbox import ExecutionLimits, run_outbox, stale_after_seconds
from opsloop.config import Settings
from opsloop.domain import ActionStatus, Assessment, Incident, Kind, Policy, ProposedAction, Severity
from opsloop.packs import load_pack
from opsloop.pipeline.cycle import act, run_cycle
from opsloop.pipeline.observe import observe
from opsloop.store import repository as repo
from opsloop.store.session import Store, open_store

T0 = datetime(2026, 11, 7, 15, 0, tzinfo=UTC)


class Recording:
    """A test executor: counts calls per action and the thread each ran in; ``fail_first`` calls
    raise, ``hang`` seconds of sleep (until ``release`` is set) before answering."""

    name = "recording"

    def __init__(self, fail_first: int = 0, hang: float = 0.0, deadline_seconds: float | None = None,
                 during=None) -> None:
        self.fail_first, self.hang, self.during = fail_first, hang, during
        if deadline_seconds is not None:
            self.deadline_seconds = deadline_seconds
        self.calls: list[str] = []
        self.threads: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()

    def execute(self, action: ProposedAction):
        with self._lock:
            self.calls.append(action.id)
            self.threads.append(threading.current_thread().name)
            n = len(self.calls)
        if self.hang:
            self.release.wait(self.hang)
        if self.during:
            self.during(action)
        if n <= self.fail_first:
            raise RuntimeError(f"boom {n}")
        return True, {"executor": self.name, "did": action.type}


def _pack(tmp_path: Path) -> Path:
    """The checkout pack with both of its low-risk ``kpi_anomaly`` actions (open_ticket, page_oncall)
    allowed to run alone, so that one KPI incident gives two auto-runnable actions."""
    target = tmp_path / "pack"
    if not target.exists():
        shutil.copytree(load_pack("checkout").root, target)
        text = (target / "pack.yaml").read_text().replace("auto_execute: [open_ticket]",
                                                          "auto_execute: [open_ticket, page_oncall]")
        (target / "pack.yaml").write_text(text)
    return target


def _settings(tmp_path: Path, url: str, **actions) -> Settings:
    """Settings for these tests; ``actions``: fields of the ``actions`` group to override."""
    group = {"auto_execute_confidence": 0.0, "timeout_seconds": 5.0, "retries": 2, "backoff_seconds": 0.01,
             "stale_margin_seconds": 0.0}
    return Settings(home=tmp_path / "home", database_url=url, embedder="tfidf", pack=str(_pack(tmp_path)),
                    actions={**group, **actions})


def _incident(fp: str = "fp-1") -> Incident:
    a = Assessment(summary="KPI rose", root_cause="unknown", category="kpi_anomaly", confidence=0.9, evidence=["x"])
    return Incident(id="cand", fingerprint=fp, kind=Kind.business, first_seen=T0, last_seen=T0 + timedelta(hours=1),
                    severity=Severity.high, title=f"kpi rose ({fp})", assessment=a)


def _act(store: Store, settings: Settings, incidents: list[Incident]) -> list[ProposedAction]:
    """The cycle's act step in its own committed transaction; returns the actions it approved (new
    ones the policy lets run alone), which it must not have executed."""
    with store.begin() as s:
        stored, counts = act(s, incidents, settings)
    auto = [x for i in stored for x in i.actions if x.status == ActionStatus.approved]
    assert counts["actions_auto_approved"] == len(auto) and all(not x.requires_approval for x in auto)
    return auto


@pytest.fixture(scope="module")
def kpi_signals(tmp_path_factory):
    """A 5-minute KPI (named kpi) with a large rise near the end: one incident, two low-risk catalog actions."""
    rng = np.random.default_rng(0)
    ts = pd.date_range("2026-11-01", periods=2000, freq="5min", tz="UTC")
    v = 100 + rng.normal(0, 2, len(ts))
    v[1900:1915] += 80
    path = tmp_path_factory.mktemp("kpi") / "kpi.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(path, index=False)
    return lambda: observe(kpis=[path], start=ts[1800], end=ts[-1] + pd.Timedelta("5min"))


def test_executor_error_fails_its_action_only(kpi_signals, store_url, tmp_path, monkeypatch):
    store, settings = open_store(store_url), _settings(tmp_path, store_url)
    executor = Recording(fail_first=10**6)
    monkeypatch.setattr(outbox, "executor_for", lambda action_type, s: executor)
    result = run_cycle(kpi_signals(), store, settings)
    auto = [x for i in result.incidents for x in i.actions if not x.requires_approval]
    assert len(auto) == 2
    assert all(x.status == ActionStatus.failed for x in auto)
    assert result.report.counts["actions_auto_executed"] == 2 and result.report.counts["actions_failed"] == 2
    assert sorted(executor.calls) == sorted([x.id for x in auto] * 3)  # 1 call + 2 retries each, no more
    assert all(t.startswith("opsloop-executor-") for t in executor.threads)  # the outbox's worker threads only
    with store() as s:
        assert [i.id for i in repo.list_incidents(s)] == [i.id for i in result.incidents]  # nothing rolled back
        stored = repo.list_cycles(s)[0]
        assert stored["id"] == result.report.id and stored["counts"]["actions_failed"] == 2
        for x in auto:
            detail = repo.action_detail(s, x.id)
            assert detail["result"]["reason"].startswith("RuntimeError: boom ")
            assert detail["result"]["attempts"] == 3 and len(detail["result"]["errors"]) == 3
        verbs = [(e.actor, e.verb) for e in repo.list_audit(s, 1000) if e.subject == auto[0].id]
        assert verbs == [("opsloop", "action.proposed"), ("policy", "action.approved"), ("policy", "action.executing"),
                         ("policy", "action.failed")]
        assert repo.verify_audit(s) == []


def test_a_retry_that_succeeds_is_recorded_with_its_attempts(tmp_path, sqlite_url):
    store, settings = open_store(sqlite_url), _settings(tmp_path, sqlite_url)
    (first, *_) = _act(store, settings, [_incident()])
    executor = Recording(fail_first=1)
    report = run_outbox(store, settings, executor_factory=lambda t: executor, limit=1)
    assert report.executed_ids == report.succeeded_ids == (first.id,) and report.failed == 0
    with store() as s:
        assert repo.get_action(s, first.id).status == ActionStatus.succeeded
        assert repo.action_detail(s, first.id)["result"]["attempts"] == 2


def test_a_hung_executor_times_out(tmp_path, sqlite_url):
    store, settings = open_store(sqlite_url), _settings(tmp_path, sqlite_url)
    auto = _act(store, settings, [_incident()])
    executor = Recording(hang=30.0, deadline_seconds=0.3)
    t0 = time.perf_counter()
    report = run_outbox(store, settings, executor_factory=lambda t: executor)
    elapsed = time.perf_counter() - t0
    executor.release.set()
    assert elapsed < 0.3 * len(auto) + 2.0, elapsed  # about the timeout per action, not the 30 s hang
    assert report.failed == len(auto) == 2 and sorted(executor.calls) == sorted(x.id for x in auto)  # no retry
    with store() as s:
        for x in auto:
            assert repo.get_action(s, x.id).status == ActionStatus.failed
            assert repo.action_detail(s, x.id)["result"]["reason"] == "timed out after 0.3 s"


def test_nothing_runs_twice(tmp_path, store_url):
    store, settings = open_store(store_url), _settings(tmp_path, store_url)
    auto = _act(store, settings, [_incident("fp-a"), _incident("fp-b")])
    assert len(auto) == 4
    executor = Recording()
    factory = lambda t: executor
    reports = []
    workers = [threading.Thread(target=lambda: reports.append(run_outbox(store, settings, executor_factory=factory)))
               for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert sorted(executor.calls) == sorted(x.id for x in auto)  # racing outboxes: once per action
    assert sum(r.executed for r in reports) == 4 and sum(r.succeeded for r in reports) == 4
    assert run_outbox(store, settings, executor_factory=factory).executed == 0
    assert _act(store, settings, [_incident("fp-a"), _incident("fp-b")]) == []  # same window again: no new actions
    assert run_outbox(store, settings, executor_factory=factory).executed == 0
    assert len(executor.calls) == 4
    with store() as s:
        assert all(repo.get_action(s, x.id).status == ActionStatus.succeeded for x in auto)


def test_human_execution_shares_the_claimed_path(tmp_path, sqlite_url):
    store, settings = open_store(sqlite_url), _settings(tmp_path, sqlite_url, retries=1)
    (first, second) = _act(store, settings, [_incident()])
    executor = Recording(fail_first=10)
    done = service.execute(store, first.id, "alice", settings.policy(), settings, executor=executor)
    assert done.status == ActionStatus.failed and executor.calls == [first.id] * 2
    assert executor.threads[0].startswith("opsloop-executor-")
    with pytest.raises(repo.Conflict):
        service.execute(store, first.id, "alice", settings.policy(), settings, executor=executor)
    report = run_outbox(store, settings, executor_factory=lambda t: executor)
    assert report.executed_ids == (second.id,)  # the outbox does not touch what a human already ran


def test_allow_list_keeps_other_types_for_a_human(tmp_path, sqlite_url):
    store, settings = open_store(sqlite_url), _settings(tmp_path, sqlite_url)
    auto = _act(store, settings, [_incident()])
    assert {x.type for x in auto} == {"open_ticket", "page_oncall"}
    executor = Recording()
    policy = Policy(auto_execute_confidence=0.0, auto_execute_types=frozenset({"open_ticket"}))
    report = run_outbox(store, settings, executor_factory=lambda t: executor, policy=policy)
    page = next(x for x in auto if x.type == "page_oncall")
    assert [x.type for x in auto if x.id in report.executed_ids] == ["open_ticket"]
    assert report.skipped_ids == (page.id,) and "no longer" in report.skips[0].reason
    with store() as s:
        assert repo.get_action(s, page.id).status == ActionStatus.approved


def test_crash_after_claim_becomes_unknown_never_rerun(tmp_path, store_url, monkeypatch):
    settings = _settings(tmp_path, store_url, timeout_seconds=0.2, retries=0)
    store = open_store(store_url)
    crashed, other = _act(store, settings, [_incident()])
    with store.begin() as s:  # the claim commits, then the process "dies" before running the executor
        claimed = repo.claim_execution(s, crashed.id, "policy", settings.policy())
    with store() as s:
        assert repo.stale_executions(s, 3600) == []
        assert [a.id for a in repo.stale_executions(s, 3600, at=repo.now() + timedelta(seconds=3601))] == [crashed.id]
        claimed_at = datetime.fromisoformat(repo.action_detail(s, crashed.id)["updated_at"])
    assert claimed.status == ActionStatus.executing
    executor = Recording()
    assert stale_after_seconds(settings, lambda t: executor) == pytest.approx(0.2)
    time.sleep(0.3)

    monkeypatch.setenv("OPSLOOP_HOME", str(settings.home))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", store_url)
    monkeypatch.setenv("OPSLOOP_ACTIONS__TIMEOUT_SECONDS", "0.2")
    monkeypatch.setenv("OPSLOOP_ACTIONS__RETRIES", "0")
    monkeypatch.setenv("OPSLOOP_ACTIONS__STALE_MARGIN_SECONDS", "0")
    from opsloop.api.app import create_app
    from opsloop.cli import app

    cli = CliRunner()

    def cli_ids(*args: str) -> list[str]:
        res = cli.invoke(app, ["actions", "list", *args, "--json"], catch_exceptions=False)
        assert res.exit_code == 0, res.output
        return [a["id"] for a in json.loads(res.stdout)]

    with store.begin() as s:
        token = repo.create_token(s, "viewer-user", "viewer")
    h = {"Authorization": f"Bearer {token}"}
    # overdue, no outbox pass yet: listed as a stale claim
    assert cli_ids("--stale") == [crashed.id]
    assert cli_ids("--stale", "--older-than", "3600") == []
    assert "1 stale claim" in cli.invoke(app, ["actions", "list", "--stale"], catch_exceptions=False).stdout
    assert cli.invoke(app, ["actions", "list", "--stale", "--status", "approved"]).exit_code == 2
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        res = client.get("/actions", params={"stale": "true"}, headers=h)
        assert res.status_code == 200 and [a["id"] for a in res.json()["data"]] == [crashed.id]
        assert client.get("/actions", params={"stale": "true", "older_than_seconds": 3600}, headers=h
        ).json()["data"] == []
        approved = client.get("/actions", params={"stale": "true", "status": "approved"}, headers=h)
        assert approved.json() == {"data": [], "count": 0}  # a stale claim is executing, never approved
        assert client.get("/actions", headers=h).json()["count"] == 2  # without stale: every action, as before
        params = {p["name"] for p in client.get("/openapi.json").json()["paths"]["/actions"]["get"]["parameters"]}
        assert {"stale", "older_than_seconds"} <= params

    reports = [run_outbox(store, settings, executor_factory=lambda t: executor) for _ in range(2)]
    assert reports[0].unknown_ids == (crashed.id,) and reports[0].stale == 1
    assert reports[1].unknown_ids == () and reports[1].retried_ids == ()  # found once, never retried by itself
    assert executor.calls == [other.id]  # the crashed claim is never run again
    with store() as s:
        assert repo.get_action(s, crashed.id).status == ActionStatus.unknown
        (event,) = [e for e in repo.list_audit(s, 1000) if e.subject == crashed.id and e.verb == "action.unknown"]
        assert event.actor == "opsloop" and event.detail["from"] == "executing"
        assert datetime.fromisoformat(event.detail["claimed_at"]) == claimed_at
        assert datetime.fromisoformat(event.detail["deadline"]) == claimed_at + timedelta(seconds=0.2)
        assert repo.verify_audit(s) == []
    # unknown, visible in both lists; no longer a stale claim
    assert cli_ids("--status", "unknown") == [crashed.id] and cli_ids("--stale") == []
    table = cli.invoke(app, ["actions", "list"], catch_exceptions=False).stdout
    assert "unknown" in table and "2 action(s)" in table
    with TestClient(create_app(Settings()), raise_server_exceptions=False) as client:
        res = client.get("/actions", params={"status": "unknown"}, headers=h).json()
        assert res["count"] == 1 and res["data"][0]["id"] == crashed.id and res["data"][0]["status"] == "unknown"
        assert client.get("/actions", params={"stale": "true"}, headers=h).json()["data"] == []
        assert client.get("/actions", headers=h).json()["count"] == 2


def test_side_effects_run_outside_any_transaction(kpi_signals, tmp_path):
    """An executor that needs the SQLite write lock succeeds only if nobody holds it while it runs."""
    db = tmp_path / "opsloop.db"
    url = f"sqlite:///{db}"
    store, settings = open_store(url), _settings(tmp_path, url)

    def write_now(action: ProposedAction) -> None:
        conn = sqlite3.connect(db, timeout=0.2, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")  # 'database is locked' after 0.2 s if a writer holds the lock
            conn.execute("ROLLBACK")
        finally:
            conn.close()

    with store.begin() as s, pytest.raises(sqlite3.OperationalError, match="locked"):  # the test can fail
        repo.count_rows(s)
        write_now(None)
    executor = Recording(during=write_now)
    factory = lambda t, s: executor
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(outbox, "executor_for", factory)
        result = run_cycle(kpi_signals(), store, settings)
    auto = [x for i in result.incidents for x in i.actions if not x.requires_approval]
    assert len(executor.calls) == len(auto) == 2 and result.report.counts["actions_failed"] == 0
    assert all(x.status == ActionStatus.succeeded for x in auto)


def test_limits():
    assert ExecutionLimits(2.0, retries=2, backoff_seconds=0.5).deadline_seconds == pytest.approx(6 + 0.5 + 1.0)
    with pytest.raises(ValueError):
        ExecutionLimits(0.0)
