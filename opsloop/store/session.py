"""Engines and sessions; the schema is created and upgraded by Alembic (``migrations/``).

Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so concurrent writers queue on the
database lock (busy timeout) instead of failing when a read transaction tries to upgrade to a write;
reads stay concurrent under WAL. On PostgreSQL, conditional updates and unique constraints do the
work (see :mod:`opsloop.store.repository`).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _sqlite_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy emits BEGIN itself (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _sqlite_begin(conn) -> None:
    conn.exec_driver_sql(f"BEGIN {conn.get_execution_options().get('sqlite_begin', 'DEFERRED')}")


def make_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url``; SQLite gets WAL, foreign keys, a busy timeout and explicit BEGIN."""
    engine = create_engine(url, future=True, pool_pre_ping=True)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``.

    Processes opening one store at once migrate it one at a time: the migration transaction starts
    with ``BEGIN IMMEDIATE`` on SQLite (the others wait on the busy timeout) and takes a
    transaction-scoped advisory lock on PostgreSQL; the later ones then find it at head."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.execution_options(sqlite_begin="IMMEDIATE").begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(7260002)"))
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


class Store:
    """Session factory of one database.

    ``store()`` opens a session for reading (commit it yourself if you write); ``store.begin()`` is a
    write transaction (committed on success, rolled back on error; ``BEGIN IMMEDIATE`` on SQLite).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._read = sessionmaker(engine, expire_on_commit=False)
        self._write = sessionmaker(engine.execution_options(sqlite_begin="IMMEDIATE"), expire_on_commit=False)

    def __call__(self) -> Session:
        return self._read()

    def begin(self) -> AbstractContextManager[Session]:
        return self._write.begin()


@lru_cache(maxsize=8)
def open_store(url: str) -> Store:
    """Engine for ``url``, migrated to head, wrapped in a :class:`Store` (cached per URL)."""
    engine = make_engine(url)
    upgrade(engine)
    return Store(engine)
