"""Two schedulers started together on one store never run a window at the same time."""

from __future__ import annotations

import json
from datetime import datetime

from tests.runner.test_kill import _kpis, _schedule


def _spans(stderr: str) -> list[tuple[datetime, datetime, str]]:
    """``(started, finished, window_start)`` of each window a process ran, from its JSON-lines log."""
    events = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    open_at: dict[str, datetime] = {}
    out = []
    for e in events:
        at = datetime.fromisoformat(e["ts"])
        if e["event"] == "window.start":
            open_at[e["window_start"]] = at
        elif e["event"] == "window.done":
            out.append((open_at.pop(e["window_start"]), at, e["window_start"]))
    return out


def test_two_schedulers_on_one_store_take_turns(store_url, tmp_path):
    kpis = _kpis(tmp_path / "kpis.csv")
    procs = [_schedule(store_url, tmp_path / "home", kpis) for _ in range(2)]
    logs = []
    for p in procs:
        _, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        logs.append(err)
    a, b = _spans(logs[0]), _spans(logs[1])
    assert (
        sorted(w for *_, w in a + b) == sorted({w for *_, w in a + b}) and len(a + b) == 48
    )  # each window once
    for s1, e1, _ in a:
        for s2, e2, _ in b:
            assert e1 <= s2 or e2 <= s1, "two runners ran windows at the same time"
    assert any('"lease.waiting"' in log for log in logs)  # the second waited for the first's lease
