"""Recovery of interrupted executions: an overdue claim becomes ``unknown``; an operator resolves it
after checking or retries it with the same idempotency key (service, API, CLI), each step audited;
the outbox retries it by itself only when the executor is idempotent, and only once."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from opsloop.actions import outbox, service
from opsloop.actions.executors import executor_for
from opsloop.actions.outbox import mark_overdue, run_outbox
from opsloop.api import recovery
from opsloop.config import Settings
from opsloop.domain import ActionStatus, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store, open_store
from tests.actions.test_outbox import Recording, _act, _incident, _settings

LATER = timedelta(hours=1)


def _unknown(store: Store, settings: Settings, fp: str = "fp-1") -> tuple[ProposedAction, ProposedAction]:
    """Two auto-approved actions; the first claimed, its process gone, and found overdue an hour
    later (``unknown``); the second still ``approved``."""
    crashed, other = _act(store, settings, [_incident(fp)])
    with store.begin() as s:
        repo.claim_execution(s, crashed.id, "policy", settings.policy())
    (moved,) = mark_overdue(store, settings, at=repo.now() + LATER)
    assert moved.id == crashed.id and moved.status == ActionStatus.unknown
    return crashed, other


def _events(store: Store, action_id: str) -> list[tuple[str, str, dict]]:
    with store() as s:
        return [(e.actor, e.verb, e.detail) for e in repo.list_audit(s, 1000) if e.subject == action_id]


def test_operator_resolves_unknown_with_a_note(tmp_path, store_url):
    store, settings = open_store(store_url), _settings(tmp_path, store_url)
    crashed, other = _unknown(store, settings)
    note = "checked the webhook console: the secret was rotated"
    done = service.resolve(store, crashed.id, "alice", ActionStatus.succeeded, f"  {note} ", settings)
    assert done.status == ActionStatus.succeeded
    with store() as s:
        assert repo.action_detail(s, crashed.id)["result"] == {"resolved_by": "alice", "note": note}
        assert repo.verify_audit(s) == []
    actor, verb, detail = _events(store, crashed.id)[-1]
    assert (actor, verb, detail["from"], detail["reason"]) == ("alice", "action.succeeded", "unknown", note)
    with pytest.raises(repo.Conflict, match=f"action {crashed.id} is succeeded, not unknown"):
        service.resolve(store, crashed.id, "bob", ActionStatus.failed, "again", settings)
    with pytest.raises(repo.Conflict, match="is approved, not unknown"):
        service.resolve(store, other.id, "alice", ActionStatus.failed, "never ran", settings)
    with pytest.raises(ValueError, match="needs a note"):
        service.resolve(store, other.id, "alice", ActionStatus.failed, "  ", settings)
    with pytest.raises(ValueError, match="succeeded or failed"):
        service.resolve(store, other.id, "alice", ActionStatus.executing, "x", settings)
    with pytest.raises(repo.NotFound):
        service.resolve(store, "no-such-action", "alice", ActionStatus.failed, "x", settings)


def test_retry_runs_once_with_the_same_key_on_the_claimed_path(tmp_path, store_url):
    store, settings = open_store(store_url), _settings(tmp_path, store_url)
    crashed, _ = _unknown(store, settings)
    executor = Recording(hang=0.3)
    seen: list[str] = []
    executor.during = lambda a: seen.append(a.idempotency_key)
    outcomes: list[object] = []

    def attempt() -> None:
        try:
            outcomes.append(service.retry(store, crashed.id, "bob", settings.policy(), settings, executor=executor))
        except repo.Conflict as exc:
            outcomes.append(exc)

    racers = [threading.Thread(target=attempt) for _ in range(3)]
    for t in racers:
        t.start()
    for t in racers:
        t.join()
    assert executor.calls == [crashed.id] and seen == [crashed.idempotency_key]  # one of three ran
    assert executor.threads[0].startswith("opsloop-executor-")  # the outbox's worker, with its deadline
    done = [o for o in outcomes if isinstance(o, ProposedAction)]
    assert len(done) == 1 and done[0].status == ActionStatus.succeeded
    assert all("not unknown" in str(o) for o in outcomes if isinstance(o, repo.Conflict))
    verbs = [(a, v, d.get("from")) for a, v, d in _events(store, crashed.id)]
    assert verbs[-3:] == [("opsloop", "action.unknown", "executing"), ("bob", "action.executing", "unknown"),
                          ("bob", "action.succeeded", "executing")]
    assert "retry by bob" in _events(store, crashed.id)[-2][2]["reason"]
    with pytest.raises(repo.Conflict, match="is succeeded, not unknown"):
        service.retry(store, crashed.id, "bob", settings.policy(), settings, executor=executor)
    with store() as s:
        assert repo.verify_audit(s) == []


def test_an_overdue_claim_is_marked_before_the_operator_acts(tmp_path, store_url):
    store = open_store(store_url)
    settings = _settings(tmp_path, store_url, timeout_seconds=0.2, retries=0)
    old, fresh = _act(store, settings, [_incident()])
    with store.begin() as s:
        repo.claim_execution(s, old.id, "policy", settings.policy())
    time.sleep(0.3)
    with store.begin() as s:
        repo.claim_execution(s, fresh.id, "policy", settings.policy())
    # the catalog's simulated executor: timeout 0.2 s, no retries, no margin
    done = service.resolve(store, old.id, "alice", ActionStatus.failed, "nothing in the ticket queue", settings)
    assert done.status == ActionStatus.failed
    # still in its deadline: judged with a deadline that a loaded machine cannot outlast (with 0.2 s,
    # CI once took longer than that to resolve the old claim, and the fresh one was overdue too)
    patient = _settings(tmp_path, store_url, timeout_seconds=60.0, retries=0)
    with pytest.raises(repo.Conflict, match=f"action {fresh.id} is executing, not unknown"):
        service.retry(store, fresh.id, "alice", patient.policy(), patient)
    assert [v for _, v, _ in _events(store, old.id)][-2:] == ["action.unknown", "action.failed"]


def test_an_outcome_reported_after_the_claim_was_marked_unknown_is_kept(tmp_path, store_url):
    store, settings = open_store(store_url), _settings(tmp_path, store_url)
    slow, _ = _act(store, settings, [_incident()])
    with store.begin() as s:
        repo.claim_execution(s, slow.id, "policy", settings.policy())
        assert repo.mark_unknown(s, slow.id, 3600.0) is None  # not overdue
        assert repo.mark_unknown(s, slow.id, 3600.0, at=repo.now() + LATER) is not None
        assert repo.mark_unknown(s, slow.id, 0.0, at=repo.now() + LATER) is None  # already unknown
        done = repo.finish_execution(s, slow.id, "policy", True, {"did": "it"})
    assert done.status == ActionStatus.succeeded
    _, verb, detail = _events(store, slow.id)[-1]
    assert verb == "action.succeeded" and detail["from"] == "unknown"
    assert detail["reason"].startswith("outcome recorded after the claim was marked unknown")


class _Killed(BaseException):
    """Stands in for the process dying mid-execution (nothing catches it)."""


def test_the_outbox_retries_an_idempotent_executor_once(tmp_path, store_url, monkeypatch):
    store = open_store(store_url)
    settings = _settings(tmp_path, store_url, timeout_seconds=0.2, retries=0)
    a1, a2, b1, b2 = _act(store, settings, [_incident("fp-a"), _incident("fp-b")])
    with store.begin() as s:
        for x in (a1, b1):
            repo.claim_execution(s, x.id, "policy", settings.policy())
    time.sleep(0.3)
    plain = Recording()
    report = run_outbox(store, settings, executor_factory=lambda t: plain)
    assert set(report.unknown_ids) == {a1.id, b1.id} and report.retried_ids == ()
    assert sorted(plain.calls) == sorted([a2.id, b2.id])  # not idempotent: left for an operator
    assert run_outbox(store, settings, executor_factory=lambda t: plain).executed == 0

    idempotent = Recording()
    idempotent.idempotent = True

    def killed(executor, action, limits):
        raise _Killed(action.id)

    with monkeypatch.context() as mp:  # the outbox dies during its automatic retry of the first one
        mp.setattr(outbox, "run_executor", killed)
        with pytest.raises(_Killed) as died:
            run_outbox(store, settings, executor_factory=lambda t: idempotent)
    first = str(died.value)
    second = ({a1.id, b1.id} - {first}).pop()
    time.sleep(0.3)
    report = run_outbox(store, settings, executor_factory=lambda t: idempotent)
    assert report.unknown_ids == (first,)  # overdue again; retried once already, so never again by itself
    assert report.retried_ids == report.succeeded_ids == (second,) and idempotent.calls == [second]
    assert _events(store, second)[-2][2]["reason"] == "recording is idempotent: automatic retry, once"
    with store() as s:
        assert repo.get_action(s, first).status == ActionStatus.unknown and repo.reclaims(s, first) == 1
    assert run_outbox(store, settings, executor_factory=lambda t: idempotent).retried_ids == ()
    done = service.retry(store, first, "alice", settings.policy(), settings, executor=idempotent)  # an operator may
    assert done.status == ActionStatus.succeeded and idempotent.calls == [second, first]


def test_idempotency_is_the_catalogs_call(tmp_path):
    settings = Settings(home=tmp_path, pack="generic")
    assert executor_for("collect_diagnostics", settings).idempotent is True  # read-only diagnostics
    assert executor_for("open_ticket", settings).idempotent is False
    assert outbox.is_idempotent(Recording()) is False  # not declared: not idempotent


@pytest.fixture
def api(tmp_path, sqlite_url, monkeypatch):
    """A TestClient on the app with the recovery router, its store, settings, and tokens by role."""
    from opsloop.api.app import create_app

    settings = _settings(tmp_path, sqlite_url)
    store = open_store(sqlite_url)
    app = create_app(settings)
    if not any(getattr(r, "path", "") == "/actions/{action_id}/resolve" for r in app.routes):
        app.include_router(recovery.router)
    with store.begin() as s:
        tokens = {role: repo.create_token(s, f"{role}-user", role) for role in ("viewer", "operator")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, store, settings, {r: {"Authorization": f"Bearer {t}"} for r, t in tokens.items()}


def test_api_resolve_and_retry(api):
    client, store, settings, h = api
    crashed, other = _unknown(store, settings, "fp-api-1")
    second, _ = _unknown(store, settings, "fp-api-2")
    body = {"outcome": "failed", "note": "no ticket with this key in the queue"}
    url = f"/actions/{crashed.id}/resolve"
    assert client.post(url, json=body).status_code == 401
    res = client.post(url, json=body, headers=h["viewer"])
    assert res.status_code == 403 and "needs role operator" in res.json()["detail"]
    assert client.post("/actions/nope/resolve", json=body, headers=h["operator"]).status_code == 404
    for bad in ({"outcome": "unknown", "note": "x"}, {"outcome": "failed", "note": "  "},
                {"outcome": "failed", "note": "x" * 2001}, {"outcome": "failed"}, {**body, "extra": 1}):
        assert client.post(url, json=bad, headers=h["operator"]).status_code == 422, bad
    res = client.post(url, json=body, headers=h["operator"])
    assert res.status_code == 200 and res.json()["status"] == "failed"
    res = client.post(url, json=body, headers=h["operator"])
    assert res.status_code == 409 and res.json()["detail"] == f"action {crashed.id} is failed, not unknown; cannot move to failed"
    assert client.post(f"/actions/{other.id}/retry", headers=h["operator"]).json()["detail"].endswith(
        "is approved, not unknown; cannot move to executing")

    assert client.post(f"/actions/{second.id}/retry", headers=h["viewer"]).status_code == 403
    res = client.post(f"/actions/{second.id}/retry", headers=h["operator"])
    assert res.status_code == 200 and res.json()["status"] == "succeeded"
    detail = client.get(f"/actions/{second.id}", headers=h["viewer"]).json()
    assert detail["result"]["idempotency_key"] == second.idempotency_key  # the catalog's executor got the same key
    assert client.post(f"/actions/{second.id}/retry", headers=h["operator"]).status_code == 409
    with store() as s:
        assert ("operator-user", "action.executing") in [(e.actor, e.verb) for e in repo.list_audit(s, 1000)
                                                         if e.subject == second.id]
        assert repo.verify_audit(s) == []

    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/actions/{action_id}/resolve", "/actions/{action_id}/retry"):
        assert {"200", "401", "403", "404", "409", "422"} <= set(paths[path]["post"]["responses"]), path


def test_cli_resolve_and_retry(tmp_path, sqlite_url, monkeypatch):
    store, settings = open_store(sqlite_url), _settings(tmp_path, sqlite_url)
    crashed, other = _unknown(store, settings, "fp-cli-1")
    second, _ = _unknown(store, settings, "fp-cli-2")
    monkeypatch.setenv("OPSLOOP_HOME", str(settings.home))
    monkeypatch.setenv("OPSLOOP_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("OPSLOOP_PACK", settings.pack)
    from opsloop.cli import app

    cli = CliRunner()

    with store.begin() as s:
        tokens = {n: repo.create_token(s, n, "operator") for n in ("carol", "dave")}
    monkeypatch.setenv("OPSLOOP_TOKEN", tokens["carol"])

    def run(*args: str):
        return cli.invoke(app, ["actions", *args], catch_exceptions=False)

    bad = run("resolve", crashed.id, "--outcome", "done", "--note", "x")
    assert bad.exit_code == 2 and "--outcome: 'done' is not one of succeeded, failed" in bad.stderr
    empty = run("resolve", crashed.id, "--outcome", "failed", "--note", " ")
    assert empty.exit_code == 2 and "--note must not be empty" in empty.stderr
    ok = run("resolve", crashed.id, "--outcome", "succeeded", "--note", "ticket exists")
    assert ok.exit_code == 0 and f"{crashed.id} ({crashed.type}) is now succeeded" in ok.stdout
    again = run("resolve", crashed.id, "--outcome", "failed", "--note", "x")
    assert again.exit_code == 1 and len(again.stderr.strip().splitlines()) == 1
    assert f"action {crashed.id} is succeeded, not unknown" in again.stderr
    assert run("retry", other.id).exit_code == 1
    retried = run("retry", second.id[:12], "--token", tokens["dave"])  # an unambiguous id prefix
    assert retried.exit_code == 0 and "is now succeeded" in retried.stdout
    actors = {(a, v) for a, v, _ in _events(store, crashed.id) + _events(store, second.id)}
    assert {("carol", "action.succeeded"), ("dave", "action.executing"), ("dave", "action.succeeded")} <= actors
