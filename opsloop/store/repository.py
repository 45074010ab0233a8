"""Repository functions: one per store operation, called by the pipeline, CLI and (later) API alike.

Every function takes an open :class:`~sqlalchemy.orm.Session`; the caller commits.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from opsloop.domain import (
    ROLES,
    SEVERITY_RANK,
    ActionStatus,
    Assessment,
    AuditEvent,
    CycleReport,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    Policy,
    PolicyViolation,
    ProposedAction,
    Quarantined,
    Risk,
    Severity,
    Window,
    stable_hash,
)
from opsloop.store import audit
from opsloop.store.audit import GENESIS
from opsloop.store.models import (
    ActionRow,
    ApprovalRow,
    AuditRow,
    CycleRow,
    IncidentRow,
    MaintenanceRow,
    QuarantineRow,
    TokenRow,
)


class NotFound(LookupError):
    """No row with that id."""


class Conflict(RuntimeError):
    """A conditional state change did not apply (the row is not in the expected state)."""


def now() -> datetime:
    return datetime.now(UTC)


# -- audit --------------------------------------------------------------------------------------
def serialize_writers(session: Session) -> None:
    """Make the caller's write transaction the only one storing incidents and actions until it ends:
    on PostgreSQL the audit's transaction-scoped advisory lock taken up front (so a concurrent cycle
    waits, then reads what this one committed, instead of colliding on the same incident id); on
    SQLite ``BEGIN IMMEDIATE`` already does it."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7260001)"))


def append_audit(session: Session, actor: str, verb: str, subject: str, detail: dict[str, Any] | None = None) -> AuditEvent:
    """Append an audit event whose keyed hash covers its content and the previous event's hash
    (:mod:`opsloop.store.audit`); the head is checkpointed outside the database after commit.

    Appends are serialised: by ``BEGIN IMMEDIATE`` on SQLite, by a transaction-scoped advisory lock on
    PostgreSQL, so two writers never take the same ``seq``.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(7260001)"))
    last = session.execute(select(AuditRow).order_by(AuditRow.seq.desc()).limit(1)).scalar_one_or_none()
    seq = (last.seq + 1) if last else 1
    prev = last.hash if last else GENESIS
    at = now().replace(microsecond=0)
    detail = audit.detail_json(detail)
    h = audit.event_hash(audit.audit_key(session), seq, at, actor, verb, subject, detail, prev)
    session.add(AuditRow(seq=seq, at=at, actor=actor, verb=verb, subject=subject, detail=detail, prev_hash=prev, hash=h))
    session.flush()
    audit.checkpoint_after_commit(session, audit.Head(seq, h))
    return AuditEvent(seq=seq, at=at, actor=actor, verb=verb, subject=subject, detail=detail, prev_hash=prev, hash=h)


def verify_audit(session: Session) -> list[str]:
    """Problems in the audit trail (empty when intact): see :func:`opsloop.store.audit.verify`."""
    return audit.verify(session)


# -- cycles -------------------------------------------------------------------------------------
def cycle_id(window: Window, pack: str) -> str:
    """The id of the cycle over ``window`` with domain pack ``pack``: derived from both, so running a
    window again (after a crash, or by hand) updates one cycle row instead of adding another."""
    return "cyc-" + stable_hash([pack, window.start.isoformat(), window.end.isoformat()], 12)


def _outcome(report: CycleReport) -> str:
    return "failed" if report.errors else "degraded" if report.degradations else "ok"


def record_cycle(session: Session, report: CycleReport, trigger: str = "cli") -> None:
    """Store a cycle report and its quarantined rows; a report whose id is stored already (the same
    window again) replaces it, counts one more attempt and keeps its first start time.

    ``trigger``: what ran it (``cli``, ``schedule``, ``api``). The outcome is ``failed`` with errors,
    ``degraded`` with degradations, else ``ok``."""
    t = now()
    doc = report.model_dump(mode="json", exclude={"quarantined"})
    row = session.get(CycleRow, report.id)
    if row is None:
        session.add(CycleRow(id=report.id, window_start=report.window.start, window_end=report.window.end,
                             started_at=t, report=doc, trigger=trigger, outcome=_outcome(report), attempts=1,
                             finished_at=t))
    else:
        row.report, row.trigger, row.outcome, row.finished_at = doc, trigger, _outcome(report), t
        row.attempts += 1
        session.execute(delete(QuarantineRow).where(QuarantineRow.cycle_id == report.id))
    session.add_all(
        QuarantineRow(cycle_id=report.id, file=q.file, line=q.line, field=q.field, reason=q.reason)
        for q in report.quarantined
    )
    session.flush()


def cycle_durations(session: Session) -> list[tuple[str, str, float]]:
    """``(trigger, outcome, seconds in its stages)`` of every stored cycle, for ``/metrics``."""
    rows = session.execute(select(CycleRow.trigger, CycleRow.outcome, CycleRow.report)).all()
    return [(t, o, float(sum((r or {}).get("stage_seconds", {}).values()))) for t, o, r in rows]


def update_cycle_counts(session: Session, cycle_id: str, counts: dict[str, int]) -> CycleReport:
    """Merge ``counts`` into the stored report of cycle ``cycle_id`` (figures known only after the
    cycle's transaction committed, e.g. the outbox's); returns the updated report. ``NotFound`` if absent."""
    row = session.get(CycleRow, cycle_id)
    if row is None:
        raise NotFound(f"no cycle {cycle_id!r}")
    report = dict(row.report)
    report["counts"] = {**report.get("counts", {}), **counts}
    row.report = report  # a new dict, so the JSON column is written
    session.flush()
    return CycleReport.model_validate(report)


def list_cycles(session: Session, limit: int = 50) -> list[dict[str, Any]]:
    rows = session.execute(select(CycleRow).order_by(CycleRow.started_at.desc()).limit(limit)).scalars()
    return [r.report for r in rows]


def list_quarantine(session: Session, cycle_id: str) -> list[Quarantined]:
    rows = session.execute(select(QuarantineRow).where(QuarantineRow.cycle_id == cycle_id).order_by(QuarantineRow.id))
    return [Quarantined(file=r.file, line=r.line, field=r.field, reason=r.reason) for r in rows.scalars()]


# -- incidents ----------------------------------------------------------------------------------
def incident_from_row(row: IncidentRow, actions: list[ProposedAction] | None = None) -> Incident:
    data = dict(row.data)
    data.pop("evidence_keys", None)
    data.update(
        id=row.id, fingerprint=row.fingerprint, status=row.status, kind=row.kind, severity=row.severity,
        title=row.title, first_seen=row.first_seen, last_seen=row.last_seen, actions=actions or [],
    )
    return Incident.model_validate(data)


def _incident_data(inc: Incident) -> dict[str, Any]:
    data = inc.model_dump(mode="json", include={"anomalies", "clusters", "signatures", "affected", "assessment"})
    data["evidence_keys"] = sorted({inc.fingerprint, *(a.key() for a in inc.anomalies)})
    return data


def find_matching_incident(session: Session, inc: Incident, gap: timedelta,
                           linked: Callable[[Incident, Incident], bool] | None = None) -> IncidentRow | None:
    """The stored incident ``inc`` continues: one whose span, widened by ``gap``, overlaps ``inc``'s
    and that has ``inc``'s fingerprint, or shares an anomaly key with it (:meth:`Anomaly.key`), or,
    not resolved, satisfies ``linked(stored, inc)`` (e.g. :func:`opsloop.pipeline.correlate.continues`:
    a cycle that sees only part of a problem, like the tail of a window, still joins its incident).
    Same fingerprint first, then a shared key, then a link; not resolved before resolved; newest first."""
    keys = {inc.fingerprint, *(a.key() for a in inc.anomalies)}
    rows = session.execute(
        select(IncidentRow).where(IncidentRow.last_seen >= inc.first_seen - gap,
                                  IncidentRow.first_seen <= inc.last_seen + gap)
    ).scalars()
    ranked = []
    for r in rows:
        resolved = r.status == IncidentStatus.resolved.value
        if r.fingerprint == inc.fingerprint:
            rank = 0
        elif keys & set((r.data or {}).get("evidence_keys", ())):
            rank = 1
        elif linked is not None and not resolved and linked(incident_from_row(r), inc):
            rank = 2
        else:
            continue
        ranked.append(((rank, resolved, -r.last_seen.timestamp()), r))
    return min(ranked, key=lambda x: x[0])[1] if ranked else None


def _merged(old: Incident, inc: Incident) -> Incident:
    """``inc`` with the ``old`` (stored) incident's anomalies it does not repeat (newer evidence wins
    per key), clusters by id and blast radius unioned: an incident accumulates what each cycle saw."""
    new_keys = {a.key() for a in inc.anomalies}
    anomalies = inc.anomalies + [a for a in old.anomalies if a.key() not in new_keys]
    new_clusters = {x.id for x in inc.clusters}
    clusters = inc.clusters + [c for c in old.clusters if c.id not in new_clusters]
    affected = {k: sorted(set(old.affected.get(k, [])) | set(inc.affected.get(k, [])))
                for k in {*old.affected, *inc.affected}}
    return inc.model_copy(update={"anomalies": sorted(anomalies, key=lambda a: a.start), "clusters": clusters,
                                  "affected": affected})


def upsert_incident(session: Session, inc: Incident, gap: timedelta,
                    linked: Callable[[Incident, Incident], bool] | None = None) -> tuple[Incident, bool]:
    """Store ``inc`` deduplicated by fingerprint; returns (the stored incident, created?).

    A recurring problem (same fingerprint, or a shared anomaly key, and a span within ``gap`` of a
    stored incident: :func:`find_matching_incident`) updates that incident: span widened, severity
    raised to the worse of the two, anomalies and clusters accumulated (newer evidence wins per
    key), its clear-window count reset; a resolved one is reopened (audited ``incident.reopened``).
    Title, kind, category and assessment follow the newer sighting only when it has the same
    fingerprint.
    """
    row = find_matching_incident(session, inc, gap, linked)
    category = inc.assessment.category if inc.assessment else "unknown"
    t = now()
    if row is None:
        inc = inc.model_copy(update={"id": "inc-" + stable_hash([inc.fingerprint, inc.first_seen.isoformat()], 12)})
        session.add(
            IncidentRow(id=inc.id, fingerprint=inc.fingerprint, status=inc.status.value, kind=inc.kind.value,
                        severity=inc.severity.value, category=category, title=inc.title, first_seen=inc.first_seen,
                        last_seen=inc.last_seen, times_seen=1, data=_incident_data(inc), created_at=t, updated_at=t)
        )
        session.flush()
        append_audit(session, "opsloop", "incident.opened", inc.id,
                     {"fingerprint": inc.fingerprint, "severity": inc.severity.value, "title": inc.title})
        return inc, True
    row.clear_windows = 0
    if row.status == IncidentStatus.resolved.value:
        row.status, row.resolved_at = IncidentStatus.open.value, None
        append_audit(session, "opsloop", "incident.reopened", row.id,
                     {"from": "resolved", "reason": f"the problem recurred ({inc.first_seen:%Y-%m-%d %H:%M} UTC)"})
    severity = max(Severity(row.severity), inc.severity, key=SEVERITY_RANK.__getitem__)
    first, last = min(row.first_seen, inc.first_seen), max(row.last_seen, inc.last_seen)
    changed = (first, last, severity.value) != (row.first_seen, row.last_seen, row.severity)
    row.first_seen, row.last_seen, row.severity = first, last, severity.value
    old = incident_from_row(row)
    merged = _merged(old, inc).model_copy(update={"fingerprint": row.fingerprint})
    if row.fingerprint == inc.fingerprint:  # the same problem seen whole again: its newer reading stands
        row.kind, row.category, row.title = inc.kind.value, category, inc.title
    else:  # a partial sighting (shared anomaly key): it adds evidence, the stored reading stands
        merged = merged.model_copy(update={"assessment": old.assessment or inc.assessment})
    row.data = _incident_data(merged)
    row.updated_at = t
    if changed:
        row.times_seen += 1
    session.flush()
    return incident_from_row(row), False


def set_assessment(session: Session, incident_id: str, assessment: Assessment, expected: Assessment) -> bool:
    """Replace incident ``incident_id``'s assessment with ``assessment`` if the stored one is still
    ``expected`` (compare-and-set: a cycle that re-assessed the incident meanwhile wins). Returns
    whether it was written; ``NotFound`` if there is no such incident. The row is locked (``FOR
    UPDATE`` on PostgreSQL) between the read and the write."""
    row = session.execute(select(IncidentRow).where(IncidentRow.id == incident_id).with_for_update()).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    data = dict(row.data or {})
    if data.get("assessment") != expected.model_dump(mode="json"):
        return False
    data["assessment"] = assessment.model_dump(mode="json")
    row.data = data
    row.category = assessment.category
    row.updated_at = now()
    session.flush()
    return True


def list_incidents(session: Session, status: str | None = None) -> list[Incident]:
    """Incidents, most severe first, then most recent."""
    q = select(IncidentRow)
    if status:
        q = q.where(IncidentRow.status == status)
    rows = list(session.execute(q).scalars())
    rows.sort(key=lambda r: (-SEVERITY_RANK[Severity(r.severity)], -r.last_seen.timestamp()))
    return [incident_from_row(r) for r in rows]


def get_incident(session: Session, incident_id: str) -> Incident:
    """The incident with its actions; ``NotFound`` if absent."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    return incident_from_row(row, list_actions(session, incident_id=incident_id))


_OPEN = (IncidentStatus.open.value, IncidentStatus.acknowledged.value, IncidentStatus.mitigating.value)
_MOVES = {  # verb -> (statuses it applies to, status it sets)
    "acknowledged": ((IncidentStatus.open.value, IncidentStatus.mitigating.value), IncidentStatus.acknowledged),
    "resolved": (_OPEN, IncidentStatus.resolved),
    "reopened": ((IncidentStatus.resolved.value,), IncidentStatus.open),
}


def move_incident(session: Session, incident_id: str, verb: str, actor: str, reason: str | None = None,
                  at: datetime | None = None) -> Incident:
    """Acknowledge, resolve or reopen an incident (``verb``: ``acknowledged``, ``resolved``,
    ``reopened``) with one conditional UPDATE and an audit event ``incident.<verb>``.

    Raises ``NotFound``, or ``Conflict`` naming the current status when the move does not apply
    (e.g. acknowledging a resolved incident)."""
    sources, to = _MOVES[verb]
    at = at or now()
    values: dict[str, Any] = {"status": to.value, "updated_at": now()}
    if to == IncidentStatus.acknowledged:
        values.update(acknowledged_by=actor, acknowledged_at=at)
    elif to == IncidentStatus.resolved:
        values["resolved_at"] = at
    else:
        values.update(resolved_at=None, clear_windows=0)
    current = session.get(IncidentRow, incident_id)
    if current is None:
        raise NotFound(f"no incident {incident_id!r}")
    before = current.status
    res = session.execute(update(IncidentRow).where(IncidentRow.id == incident_id, IncidentRow.status == before,
                                                    IncidentRow.status.in_(sources))
                          .values(**values).execution_options(synchronize_session=False))
    session.expire_all()
    if res.rowcount != 1:
        now_status = session.get(IncidentRow, incident_id).status
        raise Conflict(f"incident {incident_id} is {now_status}; it cannot be {verb}")
    append_audit(session, actor, f"incident.{verb}", incident_id, {"from": before, "reason": reason,
                                                                    "at": at.isoformat()})
    return get_incident(session, incident_id)


@dataclass(frozen=True)
class Review:
    """What :func:`review_incidents` did: incidents auto-resolved, and those due for escalation
    (open, unacknowledged, older than the age limit, never escalated)."""

    resolved: list[str]
    escalate: list[Incident]


def review_incidents(session: Session, window: Window, touched: set[str], resolve_after_windows: int,
                     escalate_after: timedelta | None) -> Review:
    """The per-window review of incidents that are not resolved (times are the window's, so a replay
    reviews as if live).

    An incident seen in ``window`` (``touched``) has its clear-window count reset; any other one
    opened before ``window.end`` counts one more clear window and is resolved by ``opsloop`` once
    it reaches ``resolve_after_windows`` (0: never). An ``open`` incident whose first sighting is
    ``escalate_after`` or more before ``window.end`` and that was never escalated is returned in
    ``escalate`` and marked escalated (the caller proposes the escalation action)."""
    rows = list(session.execute(select(IncidentRow).where(IncidentRow.status.in_(_OPEN),
                                                          IncidentRow.first_seen < window.end)).scalars())
    resolved, escalate = [], []
    for row in rows:
        if row.id in touched:
            row.clear_windows = 0
        elif row.last_seen < window.start:
            row.clear_windows += 1
            if resolve_after_windows and row.clear_windows >= resolve_after_windows:
                row.status, row.resolved_at, row.updated_at = IncidentStatus.resolved.value, window.end, now()
                append_audit(session, "opsloop", "incident.resolved", row.id,
                             {"reason": f"clear for {row.clear_windows} windows", "at": window.end.isoformat()})
                resolved.append(row.id)
                continue
        if (escalate_after is not None and row.status == IncidentStatus.open.value and row.escalated_at is None
                and window.end - row.first_seen >= escalate_after):
            row.escalated_at = window.end
            append_audit(session, "opsloop", "incident.escalated", row.id,
                         {"age_hours": round((window.end - row.first_seen).total_seconds() / 3600, 1)})
            escalate.append(incident_from_row(row))
    session.flush()
    return Review(resolved=resolved, escalate=escalate)


def count_rows(session: Session) -> dict[str, int]:
    """Row counts of the main tables."""
    return {
        name: session.execute(select(func.count()).select_from(model)).scalar_one()
        for name, model in (("incidents", IncidentRow), ("actions", ActionRow), ("cycles", CycleRow),
                            ("audit_events", AuditRow))
    }


# -- actions ------------------------------------------------------------------------------------
def action_from_row(row: ActionRow) -> ProposedAction:
    return ProposedAction(
        id=row.id, incident_id=row.incident_id, type=row.type, params=row.params, rationale=row.rationale,
        risk=row.risk, confidence=row.confidence, requires_approval=row.requires_approval, status=row.status,
        idempotency_key=row.idempotency_key,
    )


def add_action(session: Session, action: ProposedAction, actor: str = "opsloop") -> tuple[ProposedAction, bool]:
    """Store a proposed action (``actor`` proposed it) unless one with its idempotency key exists;
    returns (stored, created?)."""
    return _add_action(session, action, actor)


def _add_action(session: Session, action: ProposedAction, actor: str) -> tuple[ProposedAction, bool]:
    existing = session.execute(
        select(ActionRow).where(ActionRow.idempotency_key == action.idempotency_key)
    ).scalar_one_or_none()
    if existing is not None:
        return action_from_row(existing), False
    t = now()
    session.add(
        ActionRow(id=action.id, incident_id=action.incident_id, type=action.type, params=action.params,
                  rationale=action.rationale, risk=action.risk.value, confidence=action.confidence,
                  requires_approval=action.requires_approval, status=ActionStatus.proposed.value,
                  idempotency_key=action.idempotency_key, created_at=t, updated_at=t, proposed_by=actor)
    )
    session.flush()
    append_audit(session, actor, "action.proposed", action.id,
                 {"type": action.type, "risk": action.risk.value, "incident": action.incident_id})
    return action.model_copy(update={"status": ActionStatus.proposed}), True


def list_actions(session: Session, status: str | None = None, incident_id: str | None = None) -> list[ProposedAction]:
    q = select(ActionRow).order_by(ActionRow.created_at, ActionRow.id)
    if status:
        q = q.where(ActionRow.status == status)
    if incident_id:
        q = q.where(ActionRow.incident_id == incident_id)
    return [action_from_row(r) for r in session.execute(q).scalars()]


def approved_auto_actions(session: Session, limit: int | None = None) -> list[ProposedAction]:
    """Actions the policy approved to run without a human (``approved``, ``requires_approval`` false,
    decided by ``policy``), oldest first, at most ``limit``: the outbox's queue."""
    q = (select(ActionRow).where(ActionRow.status == ActionStatus.approved.value, ActionRow.requires_approval.is_(False),
                                 ActionRow.decided_by == "policy")
         .order_by(ActionRow.created_at, ActionRow.id))
    if limit is not None:
        q = q.limit(limit)
    return [action_from_row(r) for r in session.execute(q).scalars()]


def stale_executions(session: Session, older_than_seconds: float, at: datetime | None = None) -> list[ProposedAction]:
    """Actions claimed (``executing``) more than ``older_than_seconds`` before ``at`` (default now,
    UTC) and never finished: a crash between claim and outcome. Oldest claim first.

    ``claim_execution`` only moves ``approved`` actions, so nothing runs them again; the outbox's
    next pass moves each past its own executor's deadline to ``unknown`` (:func:`mark_unknown`), for
    an operator to resolve or retry."""
    if older_than_seconds < 0:
        raise ValueError(f"older_than_seconds must be >= 0, got {older_than_seconds}")
    cutoff = (at or now()) - timedelta(seconds=older_than_seconds)
    q = (select(ActionRow).where(ActionRow.status == ActionStatus.executing.value, ActionRow.updated_at < cutoff)
         .order_by(ActionRow.updated_at, ActionRow.id))
    return [action_from_row(r) for r in session.execute(q).scalars()]


def get_action(session: Session, action_id: str) -> ProposedAction:
    row = session.get(ActionRow, action_id)
    if row is None:
        raise NotFound(f"no action {action_id!r}")
    return action_from_row(row)


def transition_action(
    session: Session, action_id: str, expected: ActionStatus, to: ActionStatus, actor: str,
    reason: str | None = None, result: dict[str, Any] | None = None,
) -> ProposedAction:
    """Move an action ``expected → to`` with one conditional UPDATE, so a race or a retry applies it
    at most once; appends an audit event. Raises ``NotFound`` or ``Conflict`` (naming the state)."""
    values: dict[str, Any] = {"status": to.value, "updated_at": now()}
    if to in (ActionStatus.approved, ActionStatus.rejected):
        values.update(decided_by=actor, reason=reason)
    if to == ActionStatus.approved:
        values["approved_at"] = values["updated_at"]
    if result is not None:
        values["result"] = result
    res = session.execute(
        update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == expected.value).values(**values)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    if res.rowcount != 1:
        current = get_action(session, action_id)  # raises NotFound
        raise Conflict(f"action {action_id} is {current.status.value}, not {expected.value}; cannot move to {to.value}")
    append_audit(session, actor, f"action.{to.value}", action_id, {"from": expected.value, "reason": reason, "result": result})
    return get_action(session, action_id)


def _expire_if_stale(session: Session, row: ActionRow, policy: Policy, at: datetime) -> bool:
    """Move a proposal/approval older than the TTL to ``expired``; True if it did. The caller commits
    (so the expiry is kept) and then reports the action as expired."""
    ttl = timedelta(seconds=policy.approval_ttl_seconds)
    stamp = row.approved_at if row.status == ActionStatus.approved.value else row.created_at
    if row.status in (ActionStatus.proposed.value, ActionStatus.approved.value) and stamp and at - stamp > ttl:
        transition_action(session, row.id, ActionStatus(row.status), ActionStatus.expired, "policy",
                          reason=f"no decision within {policy.approval_ttl_seconds:.0f} s")
        return True
    return False


def approve_action(session: Session, action_id: str, approver: str, policy: Policy,
                   at: datetime | None = None) -> tuple[ProposedAction, bool]:
    """Record ``approver``'s approval; the action becomes ``approved`` once the policy's number of
    distinct approvers is reached. Returns (action, approved now?).

    A proposal older than the TTL is moved to ``expired`` and returned as such (not approved).
    Raises ``NotFound``; ``Conflict`` if the action is not ``proposed`` or this approver already
    approved it; ``PolicyViolation`` if the approver proposed it by hand. The approval row is
    unique per (action, approver), so racing approvers are counted once each, and the final
    ``proposed → approved`` is one conditional UPDATE.
    """
    at = at or now()
    row = session.get(ActionRow, action_id)
    if row is None:
        raise NotFound(f"no action {action_id!r}")
    if row.status != ActionStatus.proposed.value:
        raise Conflict(f"action {action_id} is {row.status}, not proposed; cannot approve")
    if _expire_if_stale(session, row, policy, at):
        return get_action(session, action_id), False
    if row.proposed_by == approver:
        raise PolicyViolation(f"{approver} proposed action {action_id} and may not approve it")
    try:
        with session.begin_nested():
            session.add(ApprovalRow(action_id=action_id, approver=approver, at=at))
    except IntegrityError:
        raise Conflict(f"{approver} has already approved action {action_id}") from None
    count = session.execute(select(func.count()).select_from(ApprovalRow).where(ApprovalRow.action_id == action_id)).scalar_one()
    needed = policy.approvers_needed(Risk(row.risk))
    if count < needed:
        append_audit(session, approver, "action.approval", action_id, {"approvals": count, "needed": needed})
        return get_action(session, action_id), False
    res = session.execute(
        update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == ActionStatus.proposed.value)
        .values(status=ActionStatus.approved.value, decided_by=approver, approved_at=at, updated_at=at)
        .execution_options(synchronize_session=False)
    )
    session.expire_all()
    if res.rowcount != 1:
        raise Conflict(f"action {action_id} is {get_action(session, action_id).status.value}, not proposed; cannot approve")
    append_audit(session, approver, "action.approved", action_id, {"approvals": count, "needed": needed})
    return get_action(session, action_id), True


def reject_action(session: Session, action_id: str, actor: str, reason: str) -> ProposedAction:
    """``proposed → rejected``; a rejection needs a non-empty reason (``ValueError``)."""
    if not reason or not reason.strip():
        raise ValueError("a rejection needs a reason")
    return transition_action(session, action_id, ActionStatus.proposed, ActionStatus.rejected, actor, reason.strip())


def claim_execution(session: Session, action_id: str, actor: str, policy: Policy,
                    at: datetime | None = None) -> ProposedAction:
    """``approved → executing``, claimed once: of any number of racing or retried calls exactly one
    succeeds; the others get ``Conflict``. An approval older than the TTL expires instead (the
    action is returned with status ``expired``)."""
    at = at or now()
    row = session.get(ActionRow, action_id)
    if row is None:
        raise NotFound(f"no action {action_id!r}")
    if row.status == ActionStatus.approved.value and _expire_if_stale(session, row, policy, at):
        return get_action(session, action_id)
    return transition_action(session, action_id, ActionStatus.approved, ActionStatus.executing, actor)


def finish_execution(session: Session, action_id: str, actor: str, ok: bool, result: dict[str, Any],
                     reason: str | None = None) -> ProposedAction:
    """``executing → succeeded|failed`` with the executor's result (stored on the action) and, for a
    failure, its ``reason`` (also in the audit event). An action found overdue and marked ``unknown``
    while its executor still ran takes the outcome the executor did report (``unknown →
    succeeded|failed``). ``Conflict`` naming the status otherwise."""
    to = ActionStatus.succeeded if ok else ActionStatus.failed
    try:
        return transition_action(session, action_id, ActionStatus.executing, to, actor, reason=reason, result=result)
    except Conflict:
        if get_action(session, action_id).status != ActionStatus.unknown:
            raise
    late = f"outcome recorded after the claim was marked unknown{': ' + reason if reason else ''}"
    return transition_action(session, action_id, ActionStatus.unknown, to, actor, reason=late, result=result)


def mark_unknown(session: Session, action_id: str, deadline_seconds: float,
                 at: datetime | None = None) -> ProposedAction | None:
    """``executing → unknown`` if the action's claim is older than ``deadline_seconds`` (its executor's
    deadline plus the margin) at ``at`` (default now, UTC): one conditional UPDATE on the status and
    the claim time, so a finish or another marker racing it leaves it as they put it. Audited
    ``action.unknown`` with ``claimed_at`` and ``deadline`` (both ISO-8601 UTC) and ``deadline_seconds``.
    Returns the action now ``unknown``, or ``None`` when the move does not apply (not executing, not
    overdue, or changed meanwhile). Raises ``NotFound``."""
    if deadline_seconds < 0:
        raise ValueError(f"deadline_seconds must be >= 0, got {deadline_seconds}")
    row = session.get(ActionRow, action_id)
    if row is None:
        raise NotFound(f"no action {action_id!r}")
    claimed_at = row.updated_at
    cutoff = (at or now()) - timedelta(seconds=deadline_seconds)
    if row.status != ActionStatus.executing.value or claimed_at >= cutoff:
        return None
    res = session.execute(
        update(ActionRow).where(ActionRow.id == action_id, ActionRow.status == ActionStatus.executing.value,
                                ActionRow.updated_at == claimed_at)
        .values(status=ActionStatus.unknown.value, updated_at=now()).execution_options(synchronize_session=False)
    )
    session.expire_all()
    if res.rowcount != 1:
        return None
    deadline = claimed_at + timedelta(seconds=deadline_seconds)
    append_audit(session, "opsloop", "action.unknown", action_id,
                 {"from": ActionStatus.executing.value, "claimed_at": claimed_at.isoformat(),
                  "deadline": deadline.isoformat(), "deadline_seconds": deadline_seconds})
    return get_action(session, action_id)


def reclaim_execution(session: Session, action_id: str, actor: str, reason: str) -> ProposedAction:
    """``unknown → executing``: claim an interrupted execution again (same action, so the same
    idempotency key), once of any racing calls; ``reason`` (e.g. who retried and why) goes to the
    audit event. Raises ``NotFound``; ``Conflict`` naming the status if the action is not ``unknown``."""
    return transition_action(session, action_id, ActionStatus.unknown, ActionStatus.executing, actor, reason=reason)


def reclaims(session: Session, action_id: str) -> int:
    """How many times the action was claimed again after becoming ``unknown`` (its audit events)."""
    events = session.execute(select(AuditRow.detail).where(AuditRow.subject == action_id,
                                                           AuditRow.verb == "action.executing")).scalars()
    return sum(1 for d in events if (d or {}).get("from") == ActionStatus.unknown.value)


def resolve_unknown(session: Session, action_id: str, actor: str, outcome: ActionStatus, note: str) -> ProposedAction:
    """``unknown → succeeded|failed`` as ``actor`` found it (e.g. in the receiver's console), with a
    required ``note``: kept as the action's result (``{"resolved_by", "note"}``) and in the audit
    event. ``ValueError`` for another outcome or an empty note; ``NotFound``; ``Conflict`` naming
    the status if the action is not ``unknown``."""
    if outcome not in (ActionStatus.succeeded, ActionStatus.failed):
        raise ValueError(f"an unknown execution resolves as succeeded or failed, not {outcome.value}")
    note = (note or "").strip()
    if not note:
        raise ValueError("resolving an unknown execution needs a note (what was checked)")
    return transition_action(session, action_id, ActionStatus.unknown, outcome, actor, reason=note,
                             result={"resolved_by": actor, "note": note})


def action_detail(session: Session, action_id: str) -> dict[str, Any]:
    """The action with who proposed, approved and decided it, approvals and result."""
    row = session.get(ActionRow, action_id)
    if row is None:
        raise NotFound(f"no action {action_id!r}")
    approvals = session.execute(select(ApprovalRow).where(ApprovalRow.action_id == action_id).order_by(ApprovalRow.id)).scalars()
    return {
        **action_from_row(row).model_dump(mode="json"), "proposed_by": row.proposed_by, "decided_by": row.decided_by,
        "reason": row.reason, "result": row.result, "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(), "approved_at": row.approved_at.isoformat() if row.approved_at else None,
        "approvals": [{"approver": a.approver, "at": a.at.isoformat()} for a in approvals],
    }


# -- tokens -------------------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


RESERVED_NAMES = frozenset({"policy", "opsloop", "system", "admin"})
"""Names the automation acts under (and the bootstrap admin): no token may take one."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never its secret): owner ``name``, ``role``, UTC times; ``state`` is
    ``active``, ``expired`` or ``revoked``."""

    name: str
    role: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    state: str


def _token_state(row: TokenRow, at: datetime) -> str:
    if row.revoked_at is not None:
        return "revoked"
    return "expired" if row.expires_at is not None and row.expires_at <= at else "active"


def create_token(session: Session, name: str, role: str, expires_at: datetime | None = None,
                 actor: str = "admin") -> str:
    """Create an API token for ``name`` with ``role``, valid until ``expires_at`` (UTC; ``None``:
    until revoked); returns the token (only its hash is stored). Audited as ``actor``.

    Raises ``ValueError`` for an unknown role, a reserved name (:data:`RESERVED_NAMES`) or an
    expiry in the past, ``Conflict`` if the name is taken.
    """
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; roles: {', '.join(ROLES)}")
    if name.strip().lower() in RESERVED_NAMES or not name.strip():
        raise ValueError(f"the token name {name!r} is reserved for opsloop's own actors ({', '.join(sorted(RESERVED_NAMES))})")
    if expires_at is not None and expires_at <= now():
        raise ValueError(f"expiry {expires_at.isoformat()} is in the past")
    if session.execute(select(TokenRow).where(TokenRow.name == name)).scalar_one_or_none() is not None:
        raise Conflict(f"a token named {name!r} exists")
    token = "opl_" + secrets.token_urlsafe(32)
    session.add(TokenRow(name=name, role=role, token_hash=_token_hash(token), created_at=now(), expires_at=expires_at))
    session.flush()
    append_audit(session, actor, "token.created", name,
                 {"role": role, "expires_at": expires_at.isoformat() if expires_at else None})
    return token


def token_identity(session: Session, token: str) -> tuple[str, str] | None:
    """(name, role) of a valid token (not revoked, not expired), else ``None``."""
    row = session.execute(select(TokenRow).where(TokenRow.token_hash == _token_hash(token))).scalar_one_or_none()
    if row is None or _token_state(row, now()) != "active":
        return None
    return row.name, row.role


def list_tokens(session: Session) -> list[TokenInfo]:
    """Every token by name, with its state."""
    at = now()
    return [TokenInfo(r.name, r.role, r.created_at, r.expires_at, r.revoked_at, _token_state(r, at))
            for r in session.execute(select(TokenRow).order_by(TokenRow.name)).scalars()]


def has_admin_token(session: Session) -> bool:
    """Whether an active admin token exists (until then the CLI may create the first token)."""
    return any(t.role == "admin" and t.state == "active" for t in list_tokens(session))


def revoke_token(session: Session, name: str, actor: str) -> TokenInfo:
    """Revoke ``name``'s token (audited); ``NotFound`` if unknown, ``Conflict`` if already revoked."""
    row = session.execute(select(TokenRow).where(TokenRow.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no token named {name!r}")
    changed = session.execute(update(TokenRow).where(TokenRow.id == row.id, TokenRow.revoked_at.is_(None))
                              .values(revoked_at=now())).rowcount
    if not changed:
        raise Conflict(f"the token {name!r} is revoked already")
    session.refresh(row)
    append_audit(session, actor, "token.revoked", name, {"role": row.role})
    return TokenInfo(row.name, row.role, row.created_at, row.expires_at, row.revoked_at, "revoked")


def rotate_token(session: Session, name: str, actor: str, expires_at: datetime | None = None) -> str:
    """A new secret for ``name`` (same role; the old secret stops working at once), valid until
    ``expires_at``; audited. ``NotFound`` if unknown, ``Conflict`` if revoked."""
    row = session.execute(select(TokenRow).where(TokenRow.name == name)).scalar_one_or_none()
    if row is None:
        raise NotFound(f"no token named {name!r}")
    if row.revoked_at is not None:
        raise Conflict(f"the token {name!r} is revoked; create a new one")
    token = "opl_" + secrets.token_urlsafe(32)
    row.token_hash, row.expires_at, row.created_at = _token_hash(token), expires_at, now()
    session.flush()
    append_audit(session, actor, "token.rotated", name,
                 {"role": row.role, "expires_at": expires_at.isoformat() if expires_at else None})
    return token


def list_audit(session: Session, limit: int = 100, after: int = 0) -> list[AuditEvent]:
    rows = session.execute(select(AuditRow).where(AuditRow.seq > after).order_by(AuditRow.seq).limit(limit)).scalars()
    return [audit.event_from_row(r) for r in rows]


# -- maintenance windows ------------------------------------------------------------------------


def _window_from_row(row: MaintenanceRow) -> MaintenanceWindow:
    return MaintenanceWindow(id=row.id, start=row.start, end=row.end, labels=dict(row.labels), reason=row.reason,
                             created_by=row.created_by)


def add_maintenance(session: Session, window: MaintenanceWindow, actor: str) -> MaintenanceWindow:
    """Store a declared maintenance window (a new ``mw-…`` id; audited); returns it with its id."""
    wid = "mw-" + secrets.token_hex(6)
    session.add(MaintenanceRow(id=wid, start=window.start, end=window.end, labels=dict(window.labels),
                               reason=window.reason, created_by=actor, created_at=now()))
    session.flush()
    append_audit(session, actor, "maintenance.added", wid, {
        "start": window.start.isoformat(), "end": window.end.isoformat(), "labels": dict(window.labels),
        "reason": window.reason})
    return window.model_copy(update={"id": wid, "created_by": actor})


def list_maintenance(session: Session, start: datetime | None = None, end: datetime | None = None
                     ) -> list[MaintenanceWindow]:
    """Maintenance windows by start time; with ``start``/``end``, only those overlapping ``[start, end)``."""
    q = select(MaintenanceRow).order_by(MaintenanceRow.start, MaintenanceRow.id)
    if end is not None:
        q = q.where(MaintenanceRow.start < end)
    if start is not None:
        q = q.where(MaintenanceRow.end > start)
    return [_window_from_row(r) for r in session.execute(q).scalars()]


def remove_maintenance(session: Session, window_id: str, actor: str) -> MaintenanceWindow:
    """Delete a maintenance window (audited); ``NotFound`` if absent."""
    row = session.get(MaintenanceRow, window_id)
    if row is None:
        raise NotFound(f"no maintenance window {window_id!r}")
    window = _window_from_row(row)
    session.delete(row)
    session.flush()
    append_audit(session, actor, "maintenance.removed", window_id, {"start": window.start.isoformat(),
                                                                    "end": window.end.isoformat()})
    return window
