"""Shared fixtures: store URLs for SQLite and PostgreSQL, paths to the shared datasets."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
PG_ADMIN_URL = os.environ.get("OPSLOOP_TEST_PG_URL", "postgresql+psycopg2://127.0.0.1:5432/test")
# One audit key for every process of the run (tests switch OPSLOOP_HOME, where a server store's key
# file would live); tests/store/test_audit_chain.py exercises the key file itself.
os.environ.setdefault("OPSLOOP_AUDIT_KEY", "opsloop-test-audit-key")


def shared_dataset(*parts: str) -> Path:
    """Path under ../shared/datasets, or skip the test with a clear message if it is absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared dataset not found at {path} (clone with ../shared beside the repo)")
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'opsloop.db'}"


@pytest.fixture
def pg_url():
    """A fresh PostgreSQL database for one test, dropped afterwards (skipped if PostgreSQL is down,
    except under CI, where it must be up)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"opsloop_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}: {exc.__class__.__name__}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    yield url
    from opsloop.store.session import open_store

    open_store.cache_clear()
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'opsloop.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory) -> Path:
    """An OPSLOOP_HOME whose SQLite store holds one demo cycle (checkout pack, seed 7, 7 days,
    rule-based assessments, MiniLM): shared by the UI and the LLM answer-set tests."""
    from opsloop.config import Settings
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.observe import observe
    from opsloop.store.session import open_store

    home = tmp_path_factory.mktemp("demo-home")
    settings = Settings(home=home, pack="checkout")
    paths = write_scenario(simulate(seed=7, days=7), home / "scenario")
    signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
    run_cycle(signals, open_store(settings.resolved_database_url()), settings)
    return home
