"""Request and response bodies of the API (inputs are validated; unknown fields are rejected)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from opsloop.domain import (
    Anomaly,
    CycleReport,
    IncidentStatus,
    Kind,
    ProposedAction,
    Quarantined,
    Role,
    Severity,
)

T = TypeVar("T")

_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*")


def _iso_only(value: Any) -> Any:
    """Refuse numbers (which pydantic would read as Unix times): the contract is ISO-8601 text."""
    if isinstance(value, int | float) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        raise ValueError("expected an ISO-8601 date-time, e.g. 2026-11-01T08:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]
"""A date-time given as ISO-8601 text (UTC when it has no offset); a bare number is refused."""


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SignalsIn(_In):
    """Signals to observe, inline (rows in the input contracts) and/or as paths of files on the server
    under ``OPSLOOP_HOME``.

    Rows follow the contracts of README "Inputs"; at most 200,000 rows per signal inline.
    """

    tickets: list[dict[str, Any]] | None = Field(default=None, max_length=200_000)
    logs: list[dict[str, Any]] | None = Field(default=None, max_length=200_000)
    kpis: list[dict[str, Any]] | None = Field(default=None, max_length=200_000)
    tickets_path: str | None = None
    logs_path: str | None = None
    kpis_paths: list[str] | None = None
    start: IsoDateTime | None = None
    end: IsoDateTime | None = None


class CandidateOut(BaseModel):
    title: str
    kind: str
    severity: str
    first_seen: datetime
    last_seen: datetime
    fingerprint: str
    anomalies: int
    clusters: int


class ObserveOut(BaseModel):
    """What a cycle would see and conclude, with nothing stored."""

    window: dict[str, datetime]
    counts: dict[str, int]
    quarantined: list[Quarantined]
    anomalies: list[Anomaly]
    candidates: list[CandidateOut]


class RejectIn(_In):
    reason: str = Field(min_length=1, max_length=2000)


class IncidentMoveIn(_In):
    """Why an incident is acknowledged, resolved or reopened (kept in the audit trail)."""

    reason: str | None = Field(None, max_length=2000)


class TokenIn(_In):
    name: str = Field(min_length=1, max_length=128)
    role: str = Field(pattern="^(viewer|operator|approver|admin)$")
    expires_in_days: float | None = Field(90.0, ge=1 / 24, le=3660)  # at least an hour


class TokenOut(BaseModel):
    name: str
    role: str
    token: str


class CycleOut(BaseModel):
    report: CycleReport
    incident_ids: list[str]


class RagStats(BaseModel):
    documents: int
    chunks: int
    uploaded: list[str]
    index: str  # flat | hnsw (knowledge base) or files (bundled + uploaded, not yet ingested)


class FieldError(BaseModel):
    """One invalid input: where (``loc``, e.g. ``["query", "limit"]``) and why."""

    loc: list[str | int]
    msg: str


class ErrorOut(BaseModel):
    """Every 4xx body: a one-line ``detail``; ``errors`` lists each invalid field on a 422 from
    request validation (``null`` otherwise)."""

    detail: str
    errors: list[FieldError] | None = None


class MaintenanceIn(_In):
    """A maintenance window to declare: ``start``/``end`` (ISO-8601; UTC if no offset), an optional
    label selector (label name -> value) and the reason."""

    start: IsoDateTime
    end: IsoDateTime
    labels: dict[str, str] = Field(default_factory=dict, max_length=20)
    reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _ordered(self) -> MaintenanceIn:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self


class Me(BaseModel):
    """The caller as the API sees it: the token's ``name`` and ``role``."""

    name: str
    role: Role


class ListOut(BaseModel, Generic[T]):
    """A page of a list: ``data`` (at most ``limit`` items from ``offset``) and ``count``, the number of
    items matching the filter in all."""

    data: list[T]
    count: int


class IncidentSummary(BaseModel):
    """An incident's entry in a list: what an on-call engineer scans (full detail at
    ``GET /incidents/{id}``). ``revenue_at_risk_window`` is in ``currency`` over the incident's span,
    ``None`` where the domain pack has no revenue model; ``pending_actions``: proposed or approved."""

    id: str
    title: str
    status: IncidentStatus
    severity: Severity
    kind: Kind
    category: str | None
    confidence: float | None
    first_seen: datetime
    last_seen: datetime
    affected: dict[str, list[str]]
    revenue_at_risk_window: float | None
    currency: str
    pending_actions: int


class TimelineEntryOut(BaseModel):
    """One moment of an incident (UTC): who did what to the incident or one of its actions."""

    at: datetime
    actor: str
    verb: str
    subject: str
    text: str


class SimilarIncidentOut(BaseModel):
    """A past incident like this one: ``score`` in [0, 1] and what the two share."""

    id: str
    title: str
    status: IncidentStatus
    severity: Severity
    category: str | None
    first_seen: datetime
    last_seen: datetime
    score: float
    shared: list[str]


class ApprovalOut(BaseModel):
    approver: str
    at: datetime


class ActionDetail(BaseModel):
    """An action with its history: who proposed and decided it, each approval, how many approvals
    its risk needs (``approvals_needed``) and the executor's result."""

    action: ProposedAction
    proposed_by: str | None
    decided_by: str | None
    reason: str | None
    result: dict[str, Any] | None
    created_at: datetime
    updated_at: datetime
    approved_at: datetime | None
    approvals: list[ApprovalOut]
    approvals_needed: int


class ApproveOut(BaseModel):
    """The action after an approval; ``approved`` is false while it waits for another approver."""

    action: ProposedAction
    approved: bool


class AuditVerifyOut(BaseModel):
    """Whether the audit hash chain verifies: ``events`` checked and each problem found."""

    intact: bool
    events: int
    problems: list[str]


class UploadOut(BaseModel):
    """An uploaded runbook: its ``chunks`` and what the knowledge base did (``added``, ``unchanged``,
    ``replaced`` documents ...)."""

    document: str
    chunks: int
    knowledge_base: dict[str, int]


class DeletedOut(BaseModel):
    """The uploaded runbooks removed."""

    deleted: list[str]


class AuditHeadOut(BaseModel):
    """The audit trail's head in the database and in this server's checkpoint file (``None`` when
    none was written yet)."""

    seq: int
    hash: str
    checkpoint_seq: int | None
    checkpoint_hash: str | None
