"""A live API (uvicorn on loopback, in a thread) over a store that holds the demo's cycle: the
checkout scenario (seed 7, 7 days) run once per session with MiniLM. Tokens per role, plus two
approvers (``alice``, ``bob``) for critical actions."""

from __future__ import annotations

import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn

from opsloop.api.app import create_app
from opsloop.config import Settings
from opsloop.store import repository as repo
from opsloop.store.session import open_store


@dataclass(frozen=True)
class LiveApi:
    """A running API: ``url``, ``tokens`` by role name (and ``alice``/``bob``), ``settings``."""

    url: str
    tokens: dict[str, str]
    settings: Settings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(app, port: int) -> uvicorn.Server:
    """Start ``app`` on 127.0.0.1:``port`` in a daemon thread; returns once it accepts requests."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test API did not start in 30 s")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """An OPSLOOP_HOME whose SQLite store holds one demo cycle (checkout pack, rule-based assessments)."""
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.observe import observe

    home = tmp_path_factory.mktemp("ui-home")
    settings = Settings(home=home, pack="checkout")
    paths = write_scenario(simulate(seed=7, days=7), home / "scenario")
    signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
    run_cycle(signals, open_store(settings.resolved_database_url()), settings)
    return home


@pytest.fixture(scope="session")
def live_api(demo_home) -> LiveApi:
    settings = Settings(home=demo_home, pack="checkout")
    store = open_store(settings.resolved_database_url())
    with store.begin() as s:
        tokens = {role: repo.create_token(s, f"{role}-user", role) for role in repo.ROLES}
        tokens["alice"] = repo.create_token(s, "alice", "approver")
        tokens["bob"] = repo.create_token(s, "bob", "approver")
    port = free_port()
    server = serve(create_app(settings), port)
    yield LiveApi(url=f"http://127.0.0.1:{port}", tokens=tokens, settings=settings)
    server.should_exit = True
