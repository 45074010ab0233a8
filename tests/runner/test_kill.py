"""SIGKILL the scheduler at random points and restart it: nothing lost or duplicated.

A replay of one day in 30-minute windows over a KPI file with injected level shifts is run once
undisturbed (the reference) and once killed with SIGKILL 20 times at random moments and restarted
(``--wait`` takes the dead holder's lease over once its 2-second TTL expires). The killed store
must end with the reference's incidents, actions and audit events (by verb and subject), each once,
every window committed once, and an intact audit chain. An auto-executed action a kill caught
between its claim and its result stays ``executing`` until overdue, then ``unknown`` (re-run only
when its executor is idempotent).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from opsloop.domain import Window
from opsloop.store import repository as repo
from opsloop.store.leases import get_watermark
from opsloop.store.models import CycleRow
from opsloop.store.session import open_store

FROM, UNTIL = "2026-11-02T00:00:00Z", "2026-11-03T00:00:00Z"
KILLS = 20


def _kpis(path: Path) -> Path:
    ts = pd.date_range("2026-11-01", periods=2 * 1440, freq="1min", tz="UTC")
    rng = np.random.default_rng(3)
    frames = []
    for service, base, hours in (("api", 120.0, (27, 33, 39)), ("db", 40.0, (30,)), ("queue", 10.0, (36,))):
        v = base + rng.normal(0, base * 0.05, len(ts))
        for h in hours:
            v[h * 60 : h * 60 + 40] += base * 1.5
        frames.append(pd.DataFrame({"ts": ts, "metric": "latency_ms", "value": v, "service": service}))
    pd.concat(frames).sort_values("ts", kind="stable").to_csv(path, index=False)
    return path


def _schedule(url: str, home: Path, kpis: Path) -> subprocess.Popen:
    env = {**os.environ, "OPSLOOP_HOME": str(home), "OPSLOOP_DATABASE_URL": url, "OPSLOOP_EMBEDDER": "tfidf"}
    cmd = [
        sys.executable,
        "-m",
        "opsloop.cli",
        "schedule",
        "--kpis",
        str(kpis),
        "--every",
        "30m",
        "--from",
        FROM,
        "--until",
        UNTIL,
        "--lease-ttl",
        "2s",
        "--wait",
    ]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _state(url: str) -> dict:
    store = open_store(url)
    with store() as s:
        incidents = sorted(i.id for i in repo.list_incidents(s))
        actions = {a.id: a.status.value for a in repo.list_actions(s)}
        audit = Counter((e.verb, e.subject) for e in repo.list_audit(s, limit=100_000))
        cycles = [
            (r.window_start, r.attempts, r.outcome) for r in s.query(CycleRow).order_by(CycleRow.window_start)
        ]
        span = Window(start=datetime(2026, 11, 2, tzinfo=UTC), end=datetime(2026, 11, 3, tzinfo=UTC))
        mark = get_watermark(s, f"replay:generic:{span.start.isoformat()}:{span.end.isoformat()}")
        problems = repo.verify_audit(s)
    return {
        "incidents": incidents,
        "actions": actions,
        "audit": audit,
        "cycles": cycles,
        "watermark": mark,
        "problems": problems,
    }


@pytest.mark.slow
def test_sigkill_at_random_points_loses_and_duplicates_nothing(store_url, sqlite_url, tmp_path):
    kpis = _kpis(tmp_path / "kpis.csv")
    ref_url = f"sqlite:///{tmp_path / 'reference.db'}"
    t0 = time.perf_counter()
    ref = _schedule(ref_url, tmp_path / "ref-home", kpis)
    assert ref.wait(timeout=300) == 0, ref.stderr.read()[-2000:]
    full_run = time.perf_counter() - t0
    reference = _state(ref_url)
    assert len(reference["incidents"]) >= 2 and len(reference["cycles"]) == 48

    rng = random.Random(11)
    landed = 0
    for i in range(KILLS):
        proc = _schedule(store_url, tmp_path / "home", kpis)
        if i % 4 == 0:  # anywhere, start-up and lease takeover included
            time.sleep(rng.uniform(0.2, full_run))
        else:  # inside the cycle: after the k-th window started, a random moment into it
            starts, k = 0, rng.randint(1, 3)
            while starts < k and (line := proc.stderr.readline()):
                starts += '"window.start"' in line
            time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        landed += i % 4 != 0 or '"window.start"' in proc.stderr.read()
    final = _schedule(store_url, tmp_path / "home", kpis)
    assert final.wait(timeout=300) == 0, final.stderr.read()[-2000:]
    got = _state(store_url)

    assert landed >= KILLS * 3 // 4, f"only {landed} of {KILLS} kills landed while windows ran"
    assert got["problems"] == [] and got["watermark"] == datetime(2026, 11, 3, tzinfo=UTC)
    assert got["incidents"] == reference["incidents"]
    assert set(got["actions"]) == set(reference["actions"])
    # a claim a kill interrupted stays executing, or became unknown once overdue (an idempotent
    # executor's unknown action is then claimed again once); its outcome events may differ
    stuck = {a for a, s in got["actions"].items() if s in ("executing", "unknown")}
    stuck |= {a for verb, a in got["audit"] if verb == "action.unknown"}
    assert all(got["actions"][a] == reference["actions"][a] for a in set(got["actions"]) - stuck)
    assert [(w, n) for w, n, _ in got["cycles"]] == [
        (w, 1) for w, _, _ in reference["cycles"]
    ]  # each window once
    executed = {(verb, a) for a in stuck
                for verb in ("action.succeeded", "action.failed", "action.unknown", "action.executing")}
    expected = Counter({k: v for k, v in reference["audit"].items() if k not in executed})
    assert (
        Counter({k: v for k, v in got["audit"].items() if k not in executed}) == expected
    )  # none lost or doubled
