"""Leases and watermarks: one cycle runner per store, and how far each stream was processed.

A **lease** is a row ``(name, holder, expires_at)``. :func:`acquire_lease` takes it when it is free,
already ours or expired (its holder died), with one conditional UPDATE (or an INSERT guarded by the
primary key), so two processes racing for it on SQLite or PostgreSQL get it at most once.
:func:`fence_lease` renews it inside the transaction that commits a window's results and fails
when another holder took it over meanwhile, so a runner that lost its lease (paused past the TTL)
cannot commit a window a second runner is processing: the lease works as a fencing token
(Kleppmann, "How to do distributed locking", 2016).

A **watermark** is a named UTC time that only moves forward (:func:`advance_watermark`): the end of
the last window a runner committed, or the newest event a source delivered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsloop.domain import utc
from opsloop.store.models import LeaseRow, WatermarkRow


class LeaseLost(RuntimeError):
    """The lease is held by someone else (or expired and was taken over); the message names the holder."""


@dataclass(frozen=True)
class Lease:
    """A lease as stored: ``holder`` (e.g. ``host:pid:nonce``), UTC ``acquired_at``, ``renewed_at``
    and ``expires_at``."""

    name: str
    holder: str
    acquired_at: datetime
    renewed_at: datetime
    expires_at: datetime

    def expired(self, at: datetime) -> bool:
        return self.expires_at <= utc(at)


def _lease(row: LeaseRow) -> Lease:
    return Lease(row.name, row.holder, row.acquired_at, row.renewed_at, row.expires_at)


def get_lease(session: Session, name: str) -> Lease | None:
    """The stored lease ``name`` (held or expired), or ``None``."""
    row = session.execute(select(LeaseRow).where(LeaseRow.name == name)).scalar_one_or_none()
    return None if row is None else _lease(row)


def acquire_lease(
    session: Session, name: str, holder: str, ttl_seconds: float, at: datetime
) -> tuple[bool, Lease]:
    """Take or renew lease ``name`` for ``holder`` until ``at + ttl_seconds``.

    Succeeds when the lease is free, held by ``holder`` or expired at ``at``. Returns
    ``(acquired?, the lease as it now stands)``; on failure the lease names the current holder.
    Commit the session to make it effective.
    """
    at = utc(at)
    expires = at + timedelta(seconds=ttl_seconds)
    current = get_lease(session, name)
    if current is None:
        try:
            with session.begin_nested():
                session.add(
                    LeaseRow(name=name, holder=holder, acquired_at=at, renewed_at=at, expires_at=expires)
                )
            return True, Lease(name, holder, at, at, expires)
        except IntegrityError:  # another process inserted it first
            session.expire_all()
            current = get_lease(session, name)
            assert current is not None
    if current.holder != holder and not current.expired(at):
        return False, current
    acquired_at = current.acquired_at if current.holder == holder else at
    res = session.execute(
        update(LeaseRow)
        .where(
            LeaseRow.name == name,
            LeaseRow.holder == current.holder,
            LeaseRow.expires_at == current.expires_at,
        )
        .values(holder=holder, acquired_at=acquired_at, renewed_at=at, expires_at=expires)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    if res.rowcount != 1:  # someone else renewed or took it between our read and our update
        now_held = get_lease(session, name)
        assert now_held is not None
        return False, now_held
    return True, Lease(name, holder, acquired_at, at, expires)


def fence_lease(session: Session, name: str, holder: str, ttl_seconds: float, at: datetime) -> None:
    """Renew lease ``name`` inside the caller's transaction, or raise :class:`LeaseLost` if ``holder``
    no longer holds it (the caller must then roll back: another runner owns the store)."""
    at = utc(at)
    res = session.execute(
        update(LeaseRow)
        .where(LeaseRow.name == name, LeaseRow.holder == holder)
        .values(renewed_at=at, expires_at=at + timedelta(seconds=ttl_seconds))
        .execution_options(synchronize_session=False)
    )
    if res.rowcount != 1:
        current = get_lease(session, name)
        who = (
            f"held by {current.holder} until {current.expires_at:%Y-%m-%d %H:%M:%S} UTC"
            if current
            else "released"
        )
        raise LeaseLost(f"lease {name!r} is no longer ours ({holder}): {who}")


def release_lease(session: Session, name: str, holder: str) -> bool:
    """Give lease ``name`` up if ``holder`` holds it; returns whether it did."""
    res = session.execute(
        delete(LeaseRow)
        .where(LeaseRow.name == name, LeaseRow.holder == holder)
        .execution_options(synchronize_session=False)
    )
    return res.rowcount == 1


def get_watermark(session: Session, name: str) -> datetime | None:
    """The watermark ``name`` (aware UTC), or ``None`` if never set."""
    row = session.get(WatermarkRow, name)
    return None if row is None else row.value


def list_watermarks(
    session: Session, prefix: str = ""
) -> list[tuple[str, datetime, datetime, dict[str, Any]]]:
    """``(name, value, updated_at, detail)`` of every watermark whose name starts with ``prefix``."""
    rows = session.execute(
        select(WatermarkRow).where(WatermarkRow.name.startswith(prefix)).order_by(WatermarkRow.name)
    )
    return [(r.name, r.value, r.updated_at, dict(r.detail or {})) for r in rows.scalars()]


def advance_watermark(
    session: Session, name: str, value: datetime, at: datetime, detail: dict[str, Any] | None = None
) -> datetime:
    """Move watermark ``name`` forward to ``value`` (never back; ``detail`` replaced either way);
    returns the watermark now stored."""
    value, at = utc(value), utc(at)
    row = session.get(WatermarkRow, name)
    if row is None:
        try:
            with session.begin_nested():
                session.add(WatermarkRow(name=name, value=value, updated_at=at, detail=detail or {}))
            return value
        except IntegrityError:
            session.expire_all()
            row = session.get(WatermarkRow, name)
            assert row is not None
    row.value = max(row.value, value)
    row.updated_at = at
    if detail is not None:
        row.detail = detail
    session.flush()
    return row.value


def note_watermark(
    session: Session, name: str, initial: datetime, at: datetime, detail: dict[str, Any]
) -> None:
    """Merge ``detail`` into watermark ``name``'s detail (e.g. a source's last error) without moving
    it; a watermark never set starts at ``initial``."""
    row = session.get(WatermarkRow, name)
    if row is None:
        advance_watermark(session, name, initial, at, detail)
        return
    row.detail = {**(row.detail or {}), **detail}
    row.updated_at = utc(at)
    session.flush()
