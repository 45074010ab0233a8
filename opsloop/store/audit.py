"""The audit trail's integrity: a keyed hash chain anchored outside the database.

* **Keyed.** Each event's ``hash`` is HMAC-SHA256 (RFC 2104) under the audit key of the event's
  content and the previous event's hash. Whoever can write the database but not read the key cannot
  edit an event, insert one, or re-hash the chain after an edit. The key is ``OPSLOOP_AUDIT_KEY``
  (share it between every process writing one PostgreSQL store), else a 32-byte key file created on
  first use with owner-only permissions (0600): ``audit.key`` beside the SQLite database, or in
  ``OPSLOOP_HOME`` for a server database.
* **Anchored.** After each commit that appended events, the head (``seq`` and ``hash``) is written
  to a checkpoint file outside the database (``<database>.audit-head.json`` beside SQLite, else
  ``OPSLOOP_HOME/audit/head-<store id>.json``); ``GET /audit/head`` serves the head for an external
  monitor to record. Deleting the newest events leaves the checkpoint pointing past the chain's end.
* **State follows the trail.** :func:`verify` also checks that each action's and incident's stored
  status is the one its audit events lead to, so a status written directly into a table is named.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from opsloop.domain import ActionStatus, AuditEvent
from opsloop.store.models import ActionRow, AuditRow, IncidentRow

GENESIS = "0" * 64
_INCIDENT_STATUS = {"incident.opened": "open", "incident.reopened": "open", "incident.acknowledged": "acknowledged",
                    "incident.resolved": "resolved"}
_ACTION_STATUS = {f"action.{s.value}": s.value for s in ActionStatus}


def _home() -> Path:
    return Path(os.environ.get("OPSLOOP_HOME") or Path.home() / ".opsloop")


def _sqlite_file(session: Session) -> Path | None:
    url = session.get_bind().url
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        return Path(url.database).resolve()
    return None


def key_path(session: Session) -> Path:
    """Where the key file of ``session``'s store lives (used when ``OPSLOOP_AUDIT_KEY`` is unset)."""
    db = _sqlite_file(session)
    return db.parent / "audit.key" if db else _home() / "audit.key"


_KEYS: dict[Path, bytes] = {}


def audit_key(session: Session) -> bytes:
    """The HMAC key: ``OPSLOOP_AUDIT_KEY`` (its UTF-8 bytes), else the key file, created (0600) with
    32 random bytes if absent."""
    env = os.environ.get("OPSLOOP_AUDIT_KEY")
    if env:
        return env.encode()
    path = key_path(session)
    if path not in _KEYS:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as fh:
                    fh.write(secrets.token_hex(32))
            except FileExistsError:  # another process created it first
                pass
        _KEYS[path] = path.read_text().strip().encode()
    return _KEYS[path]


def event_hash(key: bytes, seq: int, at: datetime, actor: str, verb: str, subject: str, detail: dict,
               prev: str) -> str:
    """HMAC-SHA256 (hex) under ``key`` of the event's canonical JSON and ``prev``."""
    payload = json.dumps([seq, at.astimezone(UTC).isoformat(), actor, verb, subject, detail, prev],
                         sort_keys=True, default=str, separators=(",", ":"))
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def head_path(session: Session) -> Path:
    """The checkpoint file of ``session``'s store."""
    db = _sqlite_file(session)
    if db:
        return db.with_name(db.name + ".audit-head.json")
    url = session.get_bind().url
    ident = hashlib.sha256(f"{url.get_backend_name()}://{url.host}:{url.port}/{url.database}".encode()).hexdigest()
    return _home() / "audit" / f"head-{ident[:16]}.json"


@dataclass(frozen=True)
class Head:
    """The newest audit event: ``seq`` and ``hash``."""

    seq: int
    hash: str


def read_head(path: Path) -> Head | None:
    """The checkpointed head, or ``None`` if there is no (readable) checkpoint."""
    try:
        doc = json.loads(path.read_text())
        return Head(int(doc["seq"]), str(doc["hash"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_head(path: Path, head: Head) -> None:
    """Advance the checkpoint to ``head`` (never backwards), atomically."""
    old = read_head(path)
    if old is not None and old.seq >= head.seq:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"seq": head.seq, "hash": head.hash, "at": datetime.now(UTC).isoformat()}))
    os.replace(tmp, path)


def checkpoint_after_commit(session: Session, head: Head) -> None:
    """Write ``head`` to the checkpoint once the session's transaction commits (not if it rolls back)."""
    pending: Head | None = session.info.get("audit_head")
    session.info["audit_head"] = head if pending is None or head.seq > pending.seq else pending
    if pending is not None:
        return
    path = head_path(session)

    def committed(s: Session) -> None:
        h = s.info.pop("audit_head", None)
        if h is not None:
            _write_head(path, h)

    def rolled_back(s: Session, _transaction: Any) -> None:
        s.info.pop("audit_head", None)

    event.listen(session, "after_commit", committed, once=True)
    event.listen(session, "after_soft_rollback", rolled_back, once=True)


def verify(session: Session) -> list[str]:
    """Problems in the audit trail, first problem first (empty when intact): a missing, inserted,
    edited or re-hashed event; a chain shorter than its checkpoint (the newest events deleted); an
    action or incident whose stored status is not the one its audit events lead to."""
    key = audit_key(session)
    problems: list[str] = []
    prev, expected_seq = GENESIS, 1
    last: Head | None = None
    hashes: dict[int, str] = {}
    status_of: dict[str, str] = {}
    for row in session.execute(select(AuditRow).order_by(AuditRow.seq)).scalars():
        if row.seq != expected_seq:
            problems.append(f"audit event {expected_seq} is missing (next is {row.seq})")
        if row.prev_hash != prev:
            problems.append(f"audit event {row.seq}: prev_hash does not match the previous event")
        if event_hash(key, row.seq, row.at, row.actor, row.verb, row.subject, row.detail, row.prev_hash) != row.hash:
            problems.append(f"audit event {row.seq}: content does not match its keyed hash (edited, inserted "
                            "or re-hashed without the audit key, or written under another key: every process "
                            "writing one store needs the same OPSLOOP_AUDIT_KEY)")
        target = _ACTION_STATUS.get(row.verb) or _INCIDENT_STATUS.get(row.verb)
        if target:
            status_of[row.subject] = target
        prev, expected_seq, last = row.hash, row.seq + 1, Head(row.seq, row.hash)
        hashes[row.seq] = row.hash
    anchor = read_head(head_path(session))
    if anchor is not None:
        if last is None or anchor.seq > last.seq:
            problems.append(f"the chain ends at event {last.seq if last else 0} but the checkpoint records event "
                            f"{anchor.seq}: the newest events were deleted")
        elif hashes.get(anchor.seq) != anchor.hash:
            problems.append(f"audit event {anchor.seq}: its hash differs from the checkpoint's (rewritten)")
    problems += _state_problems(session, status_of)
    return problems


def _state_problems(session: Session, status_of: dict[str, str]) -> list[str]:
    out: list[str] = []
    for kind, model in (("action", ActionRow), ("incident", IncidentRow)):
        for rid, status in session.execute(select(model.id, model.status).order_by(model.id)).all():
            trail = status_of.get(rid)
            if trail is None:
                out.append(f"{kind} {rid} is {status} but has no audit event")
            elif trail != status and not (kind == "incident" and status == "mitigating" and trail != "resolved"):
                out.append(f"{kind} {rid} is {status} but its audit events lead to {trail} (changed outside opsloop)")
    return out


def event_from_row(r: AuditRow) -> AuditEvent:
    """The stored event as the domain's :class:`~opsloop.domain.AuditEvent`."""
    return AuditEvent(seq=r.seq, at=r.at, actor=r.actor, verb=r.verb, subject=r.subject, detail=r.detail,
                      prev_hash=r.prev_hash, hash=r.hash)


def head(session: Session) -> Head | None:
    """The newest event in the database (``None`` for an empty trail)."""
    row = session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    return Head(row.seq, row.hash) if row else None


def detail_json(detail: dict[str, Any] | None) -> dict[str, Any]:
    """``detail`` as stored (JSON round-trip, so the hash covers exactly what is read back)."""
    return json.loads(json.dumps(detail or {}, default=str))
