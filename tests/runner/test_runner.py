"""The cycle runner on real stores: a replay finds what one cycle over the span finds, each incident
once; re-running changes nothing; a failing source is recorded and retried; one runner per store."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.config import Settings
from opsloop.domain import Window
from opsloop.packs import load_pack
from opsloop.packs.checkout.simulator import simulate, write_scenario
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.evaluate import match_ground_truth
from opsloop.runner.runner import LeaseHeld, Runner, RunnerConfig
from opsloop.runner.windows import Grid
from opsloop.sources.base import SourceError
from opsloop.sources.files import FileSource
from opsloop.store import repository as repo
from opsloop.store.leases import get_watermark, list_watermarks
from opsloop.store.models import CycleRow
from opsloop.store.session import open_store

START, UNTIL = datetime(2026, 11, 3, tzinfo=UTC), datetime(2026, 11, 5, tzinfo=UTC)
EVERY = timedelta(hours=3)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory) -> dict[str, Path]:
    return write_scenario(simulate(seed=7, days=3), tmp_path_factory.mktemp("scenario3"))


def _source(paths: dict[str, Path]) -> FileSource:
    return FileSource(tickets=[paths["tickets"]], logs=[paths["logs"]], kpis=[paths["kpis"]])


@pytest.fixture(scope="module")
def replayed(scenario, tmp_path_factory):
    """The span replayed in 3-hour windows, and the same span as one cycle, on two SQLite stores."""
    home = tmp_path_factory.mktemp("replay")
    store, events = open_store(f"sqlite:///{home / 'replay.db'}"), []
    settings = Settings(home=home, pack="checkout")  # MiniLM, as users run it (loaded once per session)
    runner = Runner(
        store,
        settings,
        load_pack("checkout"),
        [_source(scenario)],
        RunnerConfig(grid=Grid(EVERY)),
        log=lambda event, **f: events.append((event, f)),
    )
    outcomes = runner.replay(START, UNTIL)
    runner.release()
    whole = open_store(f"sqlite:///{home / 'whole.db'}")
    signals = _source(scenario).read(Window(start=START, end=UNTIL), START - timedelta(days=7))
    once = run_cycle(signals, whole, settings)
    return store, runner, outcomes, once, events


def test_a_replay_finds_what_one_cycle_over_the_span_finds_each_once(replayed, scenario):
    store, _, outcomes, once, _ = replayed
    assert [o.status for o in outcomes] == ["done"] * 16
    with store() as s:
        incidents = repo.list_incidents(s)
    truth = json.loads(scenario["ground_truth"].read_text())
    match, whole = match_ground_truth(incidents, truth), match_ground_truth(once.incidents, truth)
    assert match["missed"] == [] and whole["missed"] == []
    assert sorted(f["name"] for f in match["found"]) == sorted(f["name"] for f in whole["found"])
    assert all(len(f["incidents"]) == 1 for f in match["found"]), match[
        "found"
    ]  # each injected incident once
    assert len(match["false_incidents"]) <= len(whole["false_incidents"])
    assert len({i.fingerprint for i in incidents}) == len(incidents)


def test_a_replay_commits_each_window_once_and_records_it(replayed):
    store, runner, outcomes, _, events = replayed
    with store() as s:
        rows = s.query(CycleRow).all()
        assert len(rows) == 16 and all(r.attempts == 1 and r.trigger == "schedule" for r in rows)
        assert get_watermark(s, runner.watermark_name(Window(start=START, end=UNTIL))) == UNTIL
        assert repo.verify_audit(s) == []
    done = [f for e, f in events if e == "window.done"]
    assert len(done) == 16 and all(json.dumps(f, default=str) for f in done)  # JSON-able log lines
    detected = {i for o in outcomes for i in o.new_incidents}
    with store() as s:
        assert detected == {i.id for i in repo.list_incidents(s)}


def test_replaying_again_runs_nothing_and_a_new_runner_resumes(replayed):
    store, runner, _, _, _ = replayed
    with store() as s:
        before = repo.count_rows(s)
    assert runner.replay(START, UNTIL) == []  # its watermark says the span is done
    runner.release()
    with store() as s:
        assert repo.count_rows(s) == before


def _kpi_file(path: Path, days: int = 2) -> Path:
    ts = pd.date_range("2026-11-01", periods=days * 1440, freq="1min", tz="UTC")
    v = np.random.default_rng(1).normal(100, 5, len(ts))
    pd.DataFrame({"ts": ts, "metric": "queue_depth", "value": v}).to_csv(path, index=False)
    return path


class _Flaky:
    """A source that fails its first ``n`` reads (e.g. a Prometheus restart), then reads the file."""

    def __init__(self, inner: FileSource, n: int) -> None:
        self.inner, self.n, self.name = inner, n, "flaky"

    def read(self, window, since):
        if self.n:
            self.n -= 1
            raise SourceError("connection refused")
        return self.inner.read(window, since)

    def watermark(self):
        return self.inner.watermark()


def test_a_failing_source_is_recorded_and_the_window_retried(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    src = _Flaky(FileSource(kpis=[_kpi_file(tmp_path / "kpis.csv")]), n=1)
    runner = Runner(
        store,
        Settings(home=tmp_path, embedder="tfidf"),
        load_pack("generic"),
        [src],
        RunnerConfig(grid=Grid(timedelta(hours=6))),
        log=lambda *a, **k: None,
    )
    first = runner.replay(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC))
    assert [o.status for o in first] == ["failed", "done", "done"]
    assert first[0].error == "source flaky: connection refused"
    with store() as s:
        row = s.get(CycleRow, first[1].report.id)
        assert row.attempts == 2 and row.outcome == "ok"  # one cycle row for the window, two attempts
        assert s.query(CycleRow).count() == 2


def test_one_runner_per_store_and_a_dead_holders_lease_is_taken_over(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    src = FileSource(kpis=[_kpi_file(tmp_path / "kpis.csv")])
    clock = [datetime(2026, 11, 3, tzinfo=UTC)]

    def runner(holder: str) -> Runner:
        return Runner(
            store,
            Settings(home=tmp_path, embedder="tfidf"),
            load_pack("generic"),
            [src],
            RunnerConfig(grid=Grid(timedelta(hours=6)), lease_ttl=60),
            holder=holder,
            log=lambda *a, **k: None,
            clock=lambda: clock[0],
        )

    a, b = runner("host-a:1"), runner("host-b:2")
    a.acquire()
    with pytest.raises(LeaseHeld, match="host-a:1"):
        b.tick()
    clock[0] += timedelta(seconds=61)  # a died: its lease expires
    done = b.tick()
    assert [o.status for o in done] == ["done"]
    out = a.run_window(
        Window(start=datetime(2026, 11, 2, tzinfo=UTC), end=datetime(2026, 11, 2, 6, tzinfo=UTC)),
        a.watermark_name(),
    )
    assert out.status == "lease_lost" and "host-b:2" in out.error  # the old holder cannot commit
    with store() as s:
        assert s.query(CycleRow).count() == 1


def test_an_unacknowledged_incident_escalates_and_a_clear_one_resolves(tmp_path):
    ts = pd.date_range("2026-11-01", periods=2 * 1440, freq="1min", tz="UTC")
    v = np.random.default_rng(2).normal(100, 5, len(ts))
    v[1440 + 120 : 1440 + 180] += 150  # 2026-11-02 02:00-03:00
    path = tmp_path / "kpis.csv"
    pd.DataFrame({"ts": ts, "metric": "queue_depth", "value": v}).to_csv(path, index=False)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    pack = load_pack("generic")
    pack = pack.model_copy(
        update={
            "lifecycle": pack.lifecycle.model_copy(
                update={"escalate_after_hours": 4.0, "resolve_after_windows": 6}
            )
        }
    )
    runner = Runner(
        store,
        Settings(home=tmp_path, embedder="tfidf"),
        pack,
        [FileSource(kpis=[path])],
        RunnerConfig(grid=Grid(timedelta(hours=1))),
        log=lambda *a, **k: None,
    )
    runner.replay(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC))
    with store() as s:
        (inc,) = [i for i in repo.list_incidents(s) if i.first_seen.hour == 2]
        pages = [
            a
            for a in repo.list_actions(s, incident_id=inc.id)
            if a.params.get("summary", "").startswith("Escalation")
        ]
        assert len(pages) == 1 and pages[0].type == "page_oncall" and pages[0].requires_approval
        assert "open and unacknowledged for" in pages[0].rationale
        assert inc.status.value == "resolved"  # clear for 6 hourly windows after 03:00
        verbs = [e.verb for e in repo.list_audit(s) if e.subject == inc.id]
        assert verbs.index("incident.escalated") < verbs.index("incident.resolved")


def test_live_a_window_waits_for_a_failing_source_and_is_never_given_up(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    src = _Flaky(FileSource(kpis=[_kpi_file(tmp_path / "kpis.csv")]), n=5)
    runner = Runner(store, Settings(home=tmp_path, embedder="tfidf"), load_pack("generic"), [src],
                    RunnerConfig(grid=Grid(timedelta(hours=6))), log=lambda *a, **k: None,
                    clock=lambda: datetime(2026, 11, 2, 7, tzinfo=UTC))
    statuses = [o.status for _ in range(6) for o in runner.tick()]
    assert statuses == ["failed"] * 5 + ["done"]  # five outages in a row, then the source answers
    with store() as s:
        (row,) = s.query(CycleRow).all()
        assert row.attempts == 6 and row.outcome == "ok"
        assert get_watermark(s, runner.watermark_name()) == datetime(2026, 11, 2, 6, tzinfo=UTC)
        detail = dict(list_watermarks(s, "source:flaky")[0][3])
        assert detail["last_error"] is None and detail["last_success"]  # recovered, and /health says so


def test_the_runner_narrates_after_its_windows_in_the_background(tmp_path):
    """With a model configured, windows store pending assessments and return; a background pass
    then narrates them (here the model is down, so each falls back with the reason)."""
    from opsloop.config import LLMConfig
    from opsloop.domain import Narrative

    ts = pd.date_range("2026-11-01", periods=2 * 1440, freq="1min", tz="UTC")
    v = np.random.default_rng(2).normal(100, 5, len(ts))
    v[1440 + 120 : 1440 + 180] += 150
    path = tmp_path / "kpis.csv"
    pd.DataFrame({"ts": ts, "metric": "queue_depth", "value": v}).to_csv(path, index=False)
    store = open_store(f"sqlite:///{tmp_path / 's.db'}")
    llm = LLMConfig(backend="ollama", host="http://127.0.0.1:9", retries=0, timeout=5)
    events = []
    runner = Runner(store, Settings(home=tmp_path, embedder="tfidf", llm=llm), load_pack("generic"),
                    [FileSource(kpis=[path])], RunnerConfig(grid=Grid(timedelta(hours=6))),
                    log=lambda event, **k: events.append((event, k)))
    runner.replay(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC))
    runner.wait_narration(60)
    with store() as s:
        incidents = repo.list_incidents(s)
    assert incidents and all(i.assessment.narrative is Narrative.fell_back for i in incidents)
    assert all(i.assessment.fallback_reason.startswith("unavailable") for i in incidents)
    done = [k for e, k in events if e == "narration.done"]
    assert done and done[0]["llm_fallbacks"] == len(incidents)
