"""Real Prometheus and Alertmanager processes on free loopback ports, and a live opsloop API.

The binaries are Debian's ``prometheus`` and ``prometheus-alertmanager`` (``.ci/run`` installs
them); a test needing one that is missing is skipped with a message saying so.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import uvicorn

from opsloop.api.app import create_app
from opsloop.config import Settings


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def binary(*names: str) -> str:
    """The first of ``names`` on PATH, or skip the test naming the package to install (fail under
    CI, whose ``.ci/run`` installs them)."""
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    msg = f"{' / '.join(names)} not installed (apt-get install -y prometheus prometheus-alertmanager)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll ``check`` until it is true; fail the test naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout:g} s waiting for {what}")


@dataclass
class Process:
    """A started server: its base URL, the process and its log file."""

    url: str
    proc: subprocess.Popen
    log: Path

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""


def start(args: list[str], url: str, ready: str, log: Path, timeout: float = 15.0) -> Process:
    """Start ``args`` logging to ``log`` and wait until ``GET url+ready`` answers 200."""
    out = log.open("wb")
    proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    p = Process(url=url, proc=proc, log=log)

    def up() -> bool:
        if proc.poll() is not None:
            pytest.fail(f"{args[0]} exited with {proc.returncode}: {p.tail()}")
        return httpx.get(url + ready, timeout=1.0).status_code == 200

    wait_until(up, timeout, f"{Path(args[0]).name} at {url}")
    return p


def stop(p: Process) -> None:
    """Terminate (then kill) the process."""
    p.proc.terminate()
    try:
        p.proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        p.proc.kill()
        p.proc.wait(timeout=5)


def backfill(kpis: pd.DataFrame, tsdb: Path) -> None:
    """Write the long KPI frame ``kpis`` (``ts, metric, value`` + label columns) into TSDB blocks
    under ``tsdb`` with ``promtool tsdb create-blocks-from openmetrics`` (Prometheus' backfill)."""
    exe = binary("promtool")
    labels = [c for c in kpis.columns if c not in ("ts", "metric", "value")]
    lines: list[str] = []
    for metric, fam in kpis.groupby("metric", sort=True):
        lines.append(f"# TYPE {metric} gauge")
        for _, series in fam.groupby(labels, sort=True, dropna=False) if labels else [((), fam)]:
            first = series.iloc[0]
            inner = ",".join(f'{c}="{first[c]}"' for c in labels if isinstance(first[c], str))
            name = f"{metric}{{{inner}}}" if inner else metric
            secs = series["ts"].astype("int64") / 1e9
            values = series["value"].astype(float)
            lines += [f"{name} {v!r} {t:.3f}" for t, v in zip(secs, values, strict=True)]
    lines.append("# EOF")
    src = tsdb.parent / "backfill.om"
    src.write_text("\n".join(lines) + "\n")
    tsdb.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([exe, "tsdb", "create-blocks-from", "openmetrics", "-q", str(src), str(tsdb)],
                          capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        pytest.fail(f"promtool backfill failed: {done.stderr[-1000:]}")


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[..., Process]]:
    """``start(targets, history=None)``: a real Prometheus scraping ``targets`` (``host:port``) every
    second, its TSDB first backfilled with the KPI frame ``history`` when given."""
    exe = binary("prometheus")
    started: list[Process] = []

    def run(targets: list[str], history: pd.DataFrame | None = None) -> Process:
        if history is not None:
            backfill(history, tmp_path / "tsdb")
        port = free_port()
        cfg = tmp_path / "prometheus.yml"
        quoted = ", ".join(f"'{t}'" for t in targets)
        cfg.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                       f"scrape_configs:\n  - job_name: exporter\n    static_configs:\n"
                       f"      - targets: [{quoted}]\n")
        p = start([exe, f"--config.file={cfg}", f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                   f"--web.listen-address=127.0.0.1:{port}"],
                  f"http://127.0.0.1:{port}", "/-/ready", tmp_path / "prometheus.log")
        started.append(p)
        return p

    yield run
    for p in started:
        stop(p)


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[str], Process]]:
    """``start(config_yaml)``: a real Alertmanager (clustering off) with that configuration."""
    exe = binary("prometheus-alertmanager", "alertmanager")
    started: list[Process] = []

    def run(config: str) -> Process:
        port = free_port()
        cfg = tmp_path / "alertmanager.yml"
        cfg.write_text(config)
        p = start([exe, f"--config.file={cfg}", f"--storage.path={tmp_path / 'am'}",
                   f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address="],
                  f"http://127.0.0.1:{port}", "/-/ready", tmp_path / "alertmanager.log")
        started.append(p)
        return p

    yield run
    for p in started:
        stop(p)


@pytest.fixture
def live_api(tmp_path: Path) -> Iterator[Callable[[str, str], str]]:
    """``start(store_url, pack)``: the opsloop API served by uvicorn in a thread on a free port;
    returns its base URL. Stopped at teardown."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def run(store_url: str, pack: str = "checkout") -> str:
        port = free_port()
        app = create_app(Settings(home=tmp_path, database_url=store_url, pack=pack))
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                                               lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append((server, thread))
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: server.started, 10.0, f"opsloop API at {url}", interval=0.05)
        return url

    yield run
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=5)


def failing_kpis(end: datetime, stage: str, onset: datetime, hours: float = 6.0) -> pd.DataFrame:
    """Six hours of per-minute checkout KPIs for one ``stage`` up to ``end`` (UTC): success rate
    ~0.95 (seed 3 noise, sd 0.005) falling to ~0.55 from ``onset``, 60 attempts a minute -- a drop
    the checkout pack's detectors flag and its paging rules page on."""
    ts = pd.date_range(end - timedelta(hours=hours), end, freq="1min", inclusive="left")
    rng = np.random.default_rng(3)
    rate = 0.95 + rng.normal(0, 0.005, len(ts))
    after = np.asarray(ts >= pd.Timestamp(onset))
    rate[after] = 0.55 + rng.normal(0, 0.005, int(after.sum()))
    frames = [pd.DataFrame({"ts": ts, "metric": "checkout_success_rate", "value": rate, "stage": stage}),
              pd.DataFrame({"ts": ts, "metric": "checkout_attempts", "value": 60.0, "stage": stage})]
    kpis = pd.concat(frames, ignore_index=True).sort_values("ts", kind="stable", ignore_index=True)
    kpis["ts"] = kpis["ts"].astype("datetime64[ns, UTC]")
    kpis["metric"] = kpis["metric"].astype("str")
    kpis["stage"] = kpis["stage"].astype("str")
    return kpis
