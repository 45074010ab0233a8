"""Store pushed tickets, log lines and Alertmanager alerts until a cycle reads them.

Every writer is idempotent: a ticket by its external id, a log line by its content hash (see
:func:`log_ids`), an alert by ``(fingerprint, status, starts_at)``. They insert with
``INSERT ... ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL), so two requests pushing the same row
at once store it once, and return ``(stored, duplicates)``. They only add rows to the caller's
session: the caller's transaction decides, so a request is stored whole or not at all. Readers
(:func:`pushed_rows`, :func:`alerts_between`) never write; :func:`prune` drops what no later
window can read.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased

from opsloop.domain import Alert, stable_hash
from opsloop.store.models import AlertRow, PushedSignalRow

KINDS = ("tickets", "logs")
#: Longest external id the store keeps (the ``pushed_signals.external_id`` column).
MAX_EXTERNAL_ID = 256
_CHUNK = 500
_Firing = aliased(AlertRow)


@dataclass(frozen=True)
class PushedRecord:
    """One pushed row in its contract's columns: ``row`` (JSON values; timestamps as ISO-8601 UTC
    strings), its event time ``ts`` (aware UTC) and ``external_id`` (what makes it unique within its
    kind; at most :data:`MAX_EXTERNAL_ID` characters)."""

    external_id: str
    ts: datetime
    row: dict[str, Any]


def log_ids(rows: Sequence[dict[str, Any]]) -> list[str]:
    """External ids for log rows: a hash of the row's content and of how many identical rows came
    before it in the same batch. Re-pushing a batch (a shipper's retry) stores nothing twice, while
    identical lines inside one batch (a burst of the same error in one second) are all kept."""
    seen: dict[str, int] = {}
    out = []
    for row in rows:
        h = stable_hash(row, 32)
        n = seen.get(h, 0)
        seen[h] = n + 1
        out.append(f"{h}:{n}")
    return out


def _insert(session: Session, table, values: list[dict[str, Any]], conflict: list[str]) -> int:
    """Insert ``values`` skipping rows that violate the unique ``conflict`` columns; the rows stored."""
    if not values:
        return 0
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}.get(dialect)
    if insert is None:
        raise RuntimeError(f"store dialect {dialect!r} is not supported for pushed signals")
    stored = 0
    for i in range(0, len(values), _CHUNK):
        stmt = insert(table).on_conflict_do_nothing(index_elements=conflict).returning(table.c.id)
        stored += len(session.execute(stmt, values[i: i + _CHUNK]).all())
    return stored


def _add(session: Session, kind: str, records: Sequence[PushedRecord]) -> tuple[int, int]:
    now = datetime.now(UTC)
    unique: dict[str, PushedRecord] = {}
    for r in records:
        if len(r.external_id) > MAX_EXTERNAL_ID:
            raise ValueError(f"external id {r.external_id[:40]!r}... is longer than "
                             f"{MAX_EXTERNAL_ID} characters")
        unique.setdefault(r.external_id, r)
    values = [{"kind": kind, "external_id": r.external_id, "ts": r.ts, "row": r.row, "received_at": now}
              for r in unique.values()]
    stored = _insert(session, PushedSignalRow.__table__, values, ["kind", "external_id"])
    return stored, len(records) - stored


def add_tickets(session: Session, records: Sequence[PushedRecord]) -> tuple[int, int]:
    """Store pushed tickets (rows in the tickets contract), idempotent by external id; returns
    ``(stored, duplicates)`` (a duplicate: already stored, or repeated in ``records``). Raises
    ``ValueError`` for an external id over :data:`MAX_EXTERNAL_ID` characters."""
    return _add(session, "tickets", records)


def add_logs(session: Session, records: Sequence[PushedRecord]) -> tuple[int, int]:
    """Store pushed log lines (rows in the logs contract), idempotent by external id (use
    :func:`log_ids`); returns ``(stored, duplicates)``."""
    return _add(session, "logs", records)


def add_alerts(session: Session, alerts: Sequence[Alert]) -> tuple[int, int]:
    """Store Alertmanager alerts, idempotent by ``(fingerprint, status, starts_at)`` (Alertmanager
    re-sends a group's alerts on every change and repeat); returns ``(stored, duplicates)``."""
    now = datetime.now(UTC)
    unique: dict[tuple[str, str, datetime], Alert] = {}
    for a in alerts:
        unique.setdefault((a.fingerprint, a.status, a.starts_at), a)
    values = [{"fingerprint": a.fingerprint, "status": a.status, "starts_at": a.starts_at,
               "ends_at": a.ends_at, "labels": dict(a.labels), "annotations": dict(a.annotations),
               "group_key": a.group_key, "received_at": now} for a in unique.values()]
    stored = _insert(session, AlertRow.__table__, values, ["fingerprint", "status", "starts_at"])
    return stored, len(alerts) - stored


def pushed_rows(session: Session, kind: str, since: datetime, until: datetime) -> list[dict[str, Any]]:
    """The stored rows of ``kind`` (``tickets`` or ``logs``) with event time in ``[since, until)``,
    oldest first (ties in arrival order)."""
    if kind not in KINDS:
        raise ValueError(f"unknown pushed signal kind {kind!r} (expected one of {', '.join(KINDS)})")
    q = (select(PushedSignalRow.row).where(PushedSignalRow.kind == kind, PushedSignalRow.ts >= since,
                                           PushedSignalRow.ts < until)
         .order_by(PushedSignalRow.ts, PushedSignalRow.id))
    return list(session.scalars(q))


def alerts_between(session: Session, start: datetime, end: datetime) -> list[Alert]:
    """The stored alert rows that may concern ``[start, end)``, ordered by fingerprint, start and
    arrival: every row (firing and resolved) of each alert episode -- one ``(fingerprint,
    starts_at)`` -- that started before ``end`` and was not resolved by ``start``, and of the later
    episodes of those fingerprints (a newer episode ends an older one whose resolution was lost).
    :func:`opsloop.sources.push.firing_during` decides which were firing."""
    resolved_before = (select(AlertRow.id).where(
        AlertRow.fingerprint == _Firing.fingerprint, AlertRow.starts_at == _Firing.starts_at,
        AlertRow.status == "resolved", AlertRow.ends_at <= start).exists())
    open_rows = select(_Firing.fingerprint, _Firing.starts_at).where(
        _Firing.starts_at < end, _Firing.status == "firing", ~resolved_before)
    late_resolved = select(AlertRow.fingerprint, AlertRow.starts_at).where(
        AlertRow.starts_at < end, AlertRow.status == "resolved", AlertRow.ends_at > start)
    first: dict[str, datetime] = {}
    for fp, ts in [*session.execute(open_rows), *session.execute(late_resolved)]:
        first[fp] = min(ts, first.get(fp, ts))
    rows: list[AlertRow] = []
    fps = sorted(first)
    for i in range(0, len(fps), _CHUNK):
        q = select(AlertRow).where(AlertRow.fingerprint.in_(fps[i: i + _CHUNK]), AlertRow.starts_at < end)
        rows += [r for r in session.scalars(q) if r.starts_at >= first[r.fingerprint]]
    rows.sort(key=lambda r: (r.fingerprint, r.starts_at, r.id))
    return [Alert(fingerprint=r.fingerprint, status=r.status, labels=r.labels, annotations=r.annotations,
                  starts_at=r.starts_at, ends_at=r.ends_at, group_key=r.group_key) for r in rows]


def prune(session: Session, before: datetime) -> tuple[int, int]:
    """Delete what no window from ``before`` on can read: pushed rows with event time before it and
    alert episodes resolved before it (all their rows). Returns ``(rows, alert rows)`` deleted. For
    the runner, once every window up to ``before`` (less its history reach) is processed."""
    rows = session.execute(delete(PushedSignalRow).where(PushedSignalRow.ts < before)).rowcount
    ended = select(AlertRow.fingerprint, AlertRow.starts_at).where(
        AlertRow.status == "resolved", AlertRow.ends_at < before)
    episodes = list(session.execute(ended))
    alerts = 0
    for i in range(0, len(episodes), _CHUNK):
        chunk = episodes[i: i + _CHUNK]
        alerts += session.execute(delete(AlertRow).where(
            tuple_(AlertRow.fingerprint, AlertRow.starts_at).in_([tuple(e) for e in chunk]))).rowcount
    return rows or 0, alerts or 0


def newest_event(session: Session) -> datetime | None:
    """The newest event time held: a pushed row's ``ts`` or an alert's start or end (``None``: empty)."""
    times = [session.scalar(select(func.max(PushedSignalRow.ts))),
             session.scalar(select(func.max(AlertRow.starts_at))),
             session.scalar(select(func.max(AlertRow.ends_at)))]
    known = [t for t in times if t is not None]
    return max(known) if known else None
