"""Requests/second of the API on loopback, measured with wrk (Debian package ``wrk``).

For each store (SQLite under a temp OPSLOOP_HOME; PostgreSQL at ``--pg-url`` if reachable) it seeds
``--incidents`` incidents and enough proposed actions, starts ``opsloop serve`` in a subprocess
(``--workers`` uvicorn workers), and runs wrk for ``--seconds`` against (a) ``GET /incidents`` and
(b) ``POST /actions/{id}/approve`` on distinct actions, each against ``GET /health`` measured in the
same run as the baseline (ratios, since the machine is shared and noisy), (each request is one gated state change plus
an audit append). Prints one JSON line per (store, endpoint) with requests/s, latency percentiles and
non-2xx responses.

    python benchmarks/api_load.py --seconds 10 --connections 8
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import create_engine, insert, text

from opsloop.domain import Incident, Kind, Severity
from opsloop.store import repository as repo
from opsloop.store.models import ActionRow
from opsloop.store.session import open_store

LUA = """
local next_id = 0
function setup(thread) thread:set("tid", next_id); next_id = next_id + 1 end
n = 0
function request()
  n = n + 1
  return wrk.format("POST", "/actions/act-" .. tid .. "-" .. n .. "/approve", {["Authorization"] = "Bearer TOKEN"})
end
"""


def seed(url: str, incidents: int, actions_per_thread: int, threads: int) -> str:
    store = open_store(url)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    with store.begin() as s:
        ids = []
        for i in range(incidents):
            inc, _ = repo.upsert_incident(s, Incident(
                id="c", fingerprint=f"fp-{i}", kind=Kind.hard, first_seen=t0 + timedelta(hours=i),
                last_seen=t0 + timedelta(hours=i, minutes=30), severity=Severity.high, title=f"incident {i}"),
                timedelta(minutes=1))
            ids.append(inc.id)
        token = repo.create_token(s, "bench-approver", "approver")
    now = datetime.now(UTC)
    rows = [dict(id=f"act-{t}-{n}", incident_id=ids[n % len(ids)], type="open_ticket", params={}, rationale="bench",
                 risk="medium", confidence=0.9, requires_approval=True, status="proposed",
                 idempotency_key=f"k-{t}-{n}", created_at=now, updated_at=now, proposed_by="opsloop")
            for t in range(threads) for n in range(1, actions_per_thread + 1)]
    with store.begin() as s:
        for i in range(0, len(rows), 5000):
            s.execute(insert(ActionRow), rows[i : i + 5000])
    return token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: int, connections: int, threads: int, token: str, script: str | None) -> dict:
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-H", f"Authorization: Bearer {token}"]
    if script:
        cmd += ["-s", script]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = dict(re.findall(r"\s+(50|90|99)%\s+([\d.]+\w+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"requests_per_s": rps, "latency_p50": lat.get("50"), "latency_p99": lat.get("99"), "requests": total,
            "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def run_store(name: str, url: str, args) -> None:
    token = seed(url, args.incidents, args.actions, args.threads)
    home = tempfile.mkdtemp(prefix="opsloop-load-")
    port = free_port()
    env = {**os.environ, "OPSLOOP_HOME": home, "OPSLOOP_DATABASE_URL": url}
    server = subprocess.Popen([sys.executable, "-m", "opsloop.cli", "serve", "--port", str(port), "--workers",
                               str(args.workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        health = wrk(f"{base}/health", args.seconds, args.connections, args.threads, token, None)
        print(json.dumps({"store": name, "endpoint": "GET /health (baseline)", **health}), flush=True)
        res = wrk(f"{base}/incidents", args.seconds, args.connections, args.threads, token, None)
        print(json.dumps({"store": name, "endpoint": "GET /incidents", "incidents": args.incidents, **res,
                          "ratio_to_health": round(res["requests_per_s"] / health["requests_per_s"], 3)}), flush=True)
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
            f.write(LUA.replace("TOKEN", token))
        res = wrk(base, args.seconds, args.connections, args.threads, token, f.name)
        print(json.dumps({"store": name, "endpoint": "POST /actions/{id}/approve", **res,
                          "ratio_to_health": round(res["requests_per_s"] / health["requests_per_s"], 3)}), flush=True)
    finally:
        server.terminate()
        server.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--incidents", type=int, default=50)
    ap.add_argument("--actions", type=int, default=20000, help="proposed actions per wrk thread")
    ap.add_argument("--pg-url", default="postgresql+psycopg2://127.0.0.1:5432/test")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        run_store("sqlite", f"sqlite:///{Path(tmp) / 'load.db'}", args)
    admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT")
    name = f"opsloop_load_{uuid.uuid4().hex[:8]}"
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # PostgreSQL down: report and stop
        print(json.dumps({"store": "postgresql", "skipped": str(exc)[:200]}))
        return
    try:
        run_store("postgresql", args.pg_url.rsplit("/", 1)[0] + f"/{name}", args)
    finally:
        open_store.cache_clear()
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


if __name__ == "__main__":
    main()
