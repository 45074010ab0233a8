"""SIGTERM finishes the running window, releases the lease and exits 0."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from opsloop.store.leases import get_lease
from opsloop.store.session import open_store
from tests.runner.test_kill import _kpis


def test_sigterm_releases_the_lease_and_exits_cleanly(sqlite_url, tmp_path):
    kpis = _kpis(tmp_path / "kpis.csv")
    env = {
        **os.environ,
        "OPSLOOP_HOME": str(tmp_path / "home"),
        "OPSLOOP_DATABASE_URL": sqlite_url,
        "OPSLOOP_EMBEDDER": "tfidf",
    }
    live = subprocess.Popen(
        [sys.executable, "-m", "opsloop.cli", "schedule", "--kpis", str(kpis), "--every", "1h"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    while (line := live.stderr.readline()) and '"tick.sleep"' not in line:  # live, idle until the next window
        pass
    with open_store(sqlite_url)() as s:
        assert get_lease(s, "runner") is not None
    live.send_signal(signal.SIGTERM)
    _, err = live.communicate(timeout=30)
    assert live.returncode == 0, err[-1500:]
    assert '"signal": "SIGTERM"' in err and '"lease.released"' in err
    with open_store(sqlite_url)() as s:
        assert get_lease(s, "runner") is None
