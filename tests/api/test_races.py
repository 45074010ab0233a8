"""Races and retries cannot execute an action twice: threads, two processes, and live HTTP."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn

from opsloop.actions import service
from opsloop.api.app import create_app
from opsloop.config import Settings
from opsloop.store import repository as repo
from opsloop.store.session import open_store

from .conftest import auth, seed_store


class FileCountingExecutor:
    """Appends one line per execution to a file (works across processes)."""

    name = "counting"

    def __init__(self, path: str) -> None:
        self.path = path

    def execute(self, action):
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{os.getpid()} {action.idempotency_key}\n".encode())
        finally:
            os.close(fd)
        time.sleep(0.02)
        return True, {"executor": self.name}


def _attempts(url: str, count_file: str, n: int, tag: str) -> tuple[int, int]:
    """n threads each try to approve then execute ``act-medium``; returns (executions, conflicts)."""
    store, settings = open_store(url), Settings(database_url=url)
    policy, executor = settings.policy(), FileCountingExecutor(count_file)

    def attempt(i: int) -> str:
        try:
            service.approve(store, "act-medium", f"{tag}-approver-{i}", policy)
        except repo.Conflict:
            pass
        try:
            service.execute(store, "act-medium", f"{tag}-operator-{i}", policy, settings, executor=executor)
            return "executed"
        except repo.Conflict:
            return "conflict"

    with ThreadPoolExecutor(max_workers=10) as pool:
        outcomes = list(pool.map(attempt, range(n)))
    return outcomes.count("executed"), outcomes.count("conflict")


def _process_main(url: str, count_file: str, n: int, tag: str, queue) -> None:
    queue.put(_attempts(url, count_file, n, tag))


def _final_state(url: str) -> tuple[str, int]:
    with open_store(url)() as s:
        verbs = [e.verb for e in repo.list_audit(s, 10_000)]
        assert repo.verify_audit(s) == []
        return repo.get_action(s, "act-medium").status.value, verbs.count("action.executing")


def test_fifty_threads_execute_once(store_url, tmp_path):
    seed_store(store_url)
    count_file = str(tmp_path / "executions.log")
    executed, conflicts = _attempts(store_url, count_file, 50, "t")
    assert (executed, conflicts) == (1, 49)
    assert len(Path(count_file).read_text().splitlines()) == 1
    assert _final_state(store_url) == ("succeeded", 1)


def test_two_processes_execute_once(store_url, tmp_path):
    seed_store(store_url)
    count_file = str(tmp_path / "executions.log")
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_process_main, args=(store_url, count_file, 25, f"p{i}", queue)) for i in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(r[0] for r in results) == 1 and sum(r[1] for r in results) == 49
    lines = Path(count_file).read_text().splitlines()
    assert len(lines) == 1, lines
    assert _final_state(store_url) == ("succeeded", 1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fifty_concurrent_http_executes(store_url, tmp_path):
    tokens = seed_store(store_url)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(home=tmp_path, database_url=store_url)),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base}/health", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    try:
        approve = httpx.post(f"{base}/actions/act-medium/approve", headers=auth(tokens["approver"]), timeout=10)
        assert approve.status_code == 200

        def execute(_: int) -> int:
            return httpx.post(f"{base}/actions/act-medium/execute", headers=auth(tokens["operator"]), timeout=30).status_code

        with ThreadPoolExecutor(max_workers=25) as pool:
            codes = list(pool.map(execute, range(50)))
        assert codes.count(200) == 1 and codes.count(409) == 49, codes
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    assert _final_state(store_url) == ("succeeded", 1)
