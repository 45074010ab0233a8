"""Read-side queries for the API and UI: filtered, paginated lists with their total count, an
incident's timeline, and similar past incidents.

Every list function returns ``(items, count)`` where ``count`` is the number of rows matching the
filter before ``limit``/``offset``. Times are UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from opsloop.domain import (
    SEVERITY_RANK,
    ActionStatus,
    AuditEvent,
    CycleReport,
    Incident,
    ProposedAction,
    Severity,
)
from opsloop.store import audit
from opsloop.store.models import ActionRow, AuditRow, CycleRow, IncidentRow
from opsloop.store.repository import NotFound, action_from_row, incident_from_row

PENDING = (ActionStatus.proposed.value, ActionStatus.approved.value)


@dataclass(frozen=True)
class IncidentFilter:
    """What to list: each field narrows the list when set.

    ``labels``: ``(name, value)`` pairs that must all appear in the incident's blast radius
    (``affected``); ``since``/``until``: the incident was active at some time in ``[since, until)``
    (``last_seen >= since`` and ``first_seen < until``); ``q``: a case-insensitive substring of
    the id, title or category.
    """

    status: str | None = None
    severity: str | None = None
    kind: str | None = None
    category: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None


@dataclass(frozen=True)
class IncidentRowSummary:
    """An incident's list entry; ``pending_actions``: its proposed or approved actions."""

    incident: Incident
    category: str | None
    pending_actions: int


_SEVERITY_ORDER = case({s.value: -SEVERITY_RANK[s] for s in Severity}, value=IncidentRow.severity, else_=0)


def search_incidents(session: Session, f: IncidentFilter, limit: int = 50, offset: int = 0
                     ) -> tuple[list[IncidentRowSummary], int]:
    """Incidents matching ``f``, most severe first, then most recently seen."""
    q = select(IncidentRow)
    for column, value in ((IncidentRow.status, f.status), (IncidentRow.severity, f.severity),
                          (IncidentRow.kind, f.kind), (IncidentRow.category, f.category)):
        if value:
            q = q.where(column == value)
    if f.since:
        q = q.where(IncidentRow.last_seen >= f.since)
    if f.until:
        q = q.where(IncidentRow.first_seen < f.until)
    if f.q:
        pattern = f"%{f.q.lower()}%"
        q = q.where(func.lower(IncidentRow.title).like(pattern) | func.lower(IncidentRow.category).like(pattern)
                    | func.lower(IncidentRow.id).like(pattern))
    q = q.order_by(_SEVERITY_ORDER, IncidentRow.last_seen.desc(), IncidentRow.id)
    if f.labels:  # the blast radius lives in the incident's JSON: filter after loading
        rows = [r for r in session.execute(q).scalars()
                if all(v in (r.data.get("affected") or {}).get(k, ()) for k, v in f.labels)]
        count, rows = len(rows), rows[offset:offset + limit]
    else:
        count = session.execute(select(func.count()).select_from(q.order_by(None).subquery())).scalar_one()
        rows = list(session.execute(q.limit(limit).offset(offset)).scalars())
    pending = dict(session.execute(
        select(ActionRow.incident_id, func.count()).where(
            ActionRow.incident_id.in_([r.id for r in rows]), ActionRow.status.in_(PENDING)
        ).group_by(ActionRow.incident_id)).all()) if rows else {}
    return [IncidentRowSummary(incident_from_row(r), r.category or None, pending.get(r.id, 0)) for r in rows], count


def search_actions(session: Session, status: str | None = None, incident_id: str | None = None,
                   limit: int = 50, offset: int = 0) -> tuple[list[ProposedAction], int]:
    """Actions, oldest first, optionally of one ``status`` and/or one incident."""
    q = select(ActionRow)
    if status:
        q = q.where(ActionRow.status == status)
    if incident_id:
        q = q.where(ActionRow.incident_id == incident_id)
    count = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = session.execute(q.order_by(ActionRow.created_at, ActionRow.id).limit(limit).offset(offset)).scalars()
    return [action_from_row(r) for r in rows], count


def search_cycles(session: Session, limit: int = 50, offset: int = 0) -> tuple[list[CycleReport], int]:
    """Cycle reports, newest first."""
    count = session.execute(select(func.count()).select_from(CycleRow)).scalar_one()
    rows = session.execute(select(CycleRow).order_by(CycleRow.started_at.desc(), CycleRow.id)
                           .limit(limit).offset(offset)).scalars()
    return [CycleReport.model_validate(r.report) for r in rows], count


def search_audit(session: Session, actor: str | None = None, verb: str | None = None, subject: str | None = None,
                 since: datetime | None = None, until: datetime | None = None, limit: int = 100,
                 offset: int = 0) -> tuple[list[AuditEvent], int]:
    """Audit events, newest first. ``actor``: exact; ``verb`` and ``subject``: prefixes (``action.``
    lists every action event); ``since``/``until``: ``since <= at < until``."""
    q = select(AuditRow)
    if actor:
        q = q.where(AuditRow.actor == actor)
    if verb:
        q = q.where(AuditRow.verb.startswith(verb, autoescape=True))
    if subject:
        q = q.where(AuditRow.subject.startswith(subject, autoescape=True))
    if since:
        q = q.where(AuditRow.at >= since)
    if until:
        q = q.where(AuditRow.at < until)
    count = session.execute(select(func.count()).select_from(q.subquery())).scalar_one()
    rows = session.execute(q.order_by(AuditRow.seq.desc()).limit(limit).offset(offset)).scalars()
    return [audit.event_from_row(r) for r in rows], count


@dataclass(frozen=True)
class TimelineEntry:
    """One moment of an incident: when (UTC), who, what (``verb``, on ``subject``) and a sentence."""

    at: datetime
    actor: str
    verb: str
    subject: str
    text: str


def _sentence(e: AuditEvent, titles: dict[str, str]) -> str:
    d: dict[str, Any] = e.detail or {}
    what = titles.get(e.subject, e.subject)
    noun, _, verb = e.verb.partition(".")
    if e.verb == "action.approval":
        return f"{e.actor} approved {what} ({d.get('approvals')} of {d.get('needed')} approvals)"
    reason = f": {d['reason']}" if d.get("reason") else ""
    by = "" if e.actor == "opsloop" else f" by {e.actor}"
    if noun == "incident":
        return f"incident {verb}{by}{reason}"
    return f"{what} {verb}{by}{reason}"


def incident_timeline(session: Session, incident_id: str) -> list[TimelineEntry]:
    """First seen, every audit event on the incident or on its actions, and the latest update, oldest
    first; ``NotFound`` for an unknown incident."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    actions = session.execute(select(ActionRow.id, ActionRow.type).where(ActionRow.incident_id == incident_id)).all()
    titles = {a.id: f"action {a.type} ({a.id})" for a in actions}
    events = session.execute(select(AuditRow).where(AuditRow.subject.in_([incident_id, *titles]))
                             .order_by(AuditRow.seq)).scalars()
    out = [TimelineEntry(row.first_seen, "opsloop", "incident.first_seen", incident_id,
                         f"first anomalous evidence: {row.title}")]
    out += [TimelineEntry(e.at, e.actor, e.verb, e.subject, _sentence(e, titles)) for e in map(audit.event_from_row, events)]
    if row.times_seen > 1:
        out.append(TimelineEntry(row.updated_at, "opsloop", "incident.updated", incident_id,
                                 f"seen again in {row.times_seen - 1} later cycle(s); evidence until "
                                 f"{row.last_seen:%Y-%m-%d %H:%M} UTC"))
    return sorted(out, key=lambda t: t.at)


@dataclass(frozen=True)
class SimilarIncident:
    """A past incident like another: ``score`` in [0, 1] and what they ``shared``."""

    incident: Incident
    category: str | None
    score: float
    shared: list[str]


def _traits(inc: Incident, category: str | None) -> dict[str, set[str]]:
    return {
        "series": {str(a.series) for a in inc.anomalies},
        "metric": {a.series.metric for a in inc.anomalies},
        "detector": {f"{a.detector} {a.direction}" for a in inc.anomalies},
        "label": {f"{k}={v}" for k, vs in inc.affected.items() for v in vs},
        "category": {category} if category else set(),
        "theme": {c.label for c in inc.clusters if c.label},
    }


_WEIGHTS = {"series": 0.2, "metric": 0.2, "category": 0.25, "label": 0.15, "detector": 0.1, "theme": 0.1}


def similar_incidents(session: Session, incident_id: str, limit: int = 5, pool: int = 500) -> list[SimilarIncident]:
    """Other incidents most like ``incident_id``, best first, among the ``pool`` most recently seen.

    The score is a weighted sum of Jaccard overlaps of what the incidents' evidence names: anomalous
    series (0.2) and their metrics (0.2), category (0.25), blast-radius labels (0.15), detector and
    direction (0.1) and ticket-theme labels (0.1). Incidents sharing nothing but a detector are left out. ``NotFound`` if unknown."""
    row = session.get(IncidentRow, incident_id)
    if row is None:
        raise NotFound(f"no incident {incident_id!r}")
    mine = _traits(incident_from_row(row), row.category or None)
    rows = session.execute(select(IncidentRow).where(IncidentRow.id != incident_id)
                           .order_by(IncidentRow.last_seen.desc()).limit(pool)).scalars()
    out: list[SimilarIncident] = []
    for r in rows:
        other = incident_from_row(r)
        theirs = _traits(other, r.category or None)
        score, shared = 0.0, []
        for name, weight in _WEIGHTS.items():
            union = mine[name] | theirs[name]
            common = mine[name] & theirs[name]
            if union:
                score += weight * len(common) / len(union)
            shared += [f"{name} {c}" for c in sorted(common)]
        if any(not s.startswith("detector ") for s in shared):  # a shared detector alone says little
            out.append(SimilarIncident(other, r.category or None, round(score, 3), shared))
    out.sort(key=lambda s: (-s.score, -s.incident.last_seen.timestamp()))
    return out[:limit]
