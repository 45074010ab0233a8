"""Domain models shared by every stage of the loop (see ``DESIGN.md``).

Entities travel as pydantic models; bulk signals (tickets, log events, KPI points) travel as
pandas DataFrames with a UTC ``ts`` column (see :mod:`opsloop.data.contracts`). All timestamps are
timezone-aware UTC; money is in the currency of the domain pack's revenue model.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator, model_validator

from opsloop.evidence import Evidence, RecordedEvidence


def utc(ts: datetime) -> datetime:
    """Return ``ts`` as an aware UTC datetime (naive input is taken to be UTC)."""
    if ts.tzinfo is None:
        return ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


def stable_hash(payload: Any, length: int = 16) -> str:
    """SHA-256 hex digest (first ``length`` chars) of ``payload`` serialised as canonical JSON."""
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:length]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Kind(str, Enum):
    """What sort of failure an anomaly or incident is.

    ``hard``: requests fail visibly (error status codes, latency); ``soft``: requests succeed but an
    expected downstream outcome is missing; ``business``: a business KPI moves with no technical error.
    """

    hard = "hard"
    soft = "soft"
    business = "business"


KIND_PRECEDENCE = {Kind.hard: 3, Kind.soft: 2, Kind.business: 1}


class Severity(str, Enum):
    """Incident / anomaly severity, ``critical`` highest."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


SEVERITY_RANK = {Severity.low: 1, Severity.medium: 2, Severity.high: 3, Severity.critical: 4}


class Risk(str, Enum):
    """Risk of executing an action."""

    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


class IncidentStatus(str, Enum):
    """Incident lifecycle: ``open → acknowledged → resolved`` (``mitigating`` while an action
    runs); ``resolved → open`` on a reopen or a recurrence within the merge gap."""

    open = "open"
    acknowledged = "acknowledged"
    mitigating = "mitigating"
    resolved = "resolved"


class ActionStatus(str, Enum):
    """Action lifecycle: ``proposed → approved|rejected|expired``, ``approved → executing →
    succeeded|failed``; ``executing → unknown`` when the claim outlived its executor's deadline plus
    a margin (a crash between claim and outcome: whether the side effect happened is not known), then
    ``unknown → succeeded|failed`` (an operator's resolution with a note) or ``unknown → executing``
    (a retry with the same idempotency key: by an operator, or once by the outbox when the executor
    is declared idempotent)."""

    proposed = "proposed"
    approved = "approved"
    rejected = "rejected"
    expired = "expired"
    executing = "executing"
    succeeded = "succeeded"
    failed = "failed"
    unknown = "unknown"


class Category(_Model):
    """An incident category as a domain pack declares it: ``name`` (what runbooks and actions refer
    to), ``title`` (how a summary names it) and the rule-based ``root_cause`` text."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    title: str
    root_cause: str


class Window(_Model):
    """Half-open UTC interval ``[start, end)``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: datetime
    end: datetime

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        return utc(v)

    @model_validator(mode="after")
    def _ordered(self) -> Window:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self

    def contains(self, ts: datetime) -> bool:
        return self.start <= utc(ts) < self.end


class SeriesKey(_Model):
    """Identity of one time series: a metric name plus sorted label pairs."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    metric: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, metric: str, **labels: Any) -> SeriesKey:
        return cls(metric=metric, labels=tuple(sorted((k, str(v)) for k, v in labels.items() if v is not None)))

    @property
    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)

    def __str__(self) -> str:
        if not self.labels:
            return self.metric
        inner = ",".join(f'{k}="{v}"' for k, v in self.labels)
        return f"{self.metric}{{{inner}}}"


class Ticket(_Model):
    """One support ticket (input contract: see :data:`opsloop.data.contracts.TICKETS`)."""

    id: str
    created_at: datetime
    subject: str
    body: str
    priority: str | None = None
    channel: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # any other column (e.g. a customer or region)


class LogEvent(_Model):
    """One application log event; ``latency_ms`` in milliseconds."""

    ts: datetime
    service: str
    endpoint: str
    status: int
    level: str
    message: str
    event: str | None = None
    latency_ms: float | None = None
    labels: dict[str, str] = Field(default_factory=dict)  # any other column (e.g. a customer or region)


class KpiPoint(_Model):
    """One KPI observation of ``key`` at ``ts``."""

    ts: datetime
    key: SeriesKey
    value: float


class Anomaly(_Model):
    """An anomalous interval found by one detector on one series.

    ``evidence`` is the detector's typed evidence (:mod:`opsloop.evidence`): its score *with its
    unit* (robust z, −log10 p), observed and expected values at ``peak``, direction, affected labels
    and detector-specific facts; it renders the anomaly's headline and evidence line. ``detector``,
    ``series``, ``score``, ``observed``, ``expected`` and ``direction`` are read from it (and
    serialised with the anomaly). Times are UTC.
    """

    kind: Kind
    start: datetime
    end: datetime
    peak: datetime
    severity: Severity
    evidence: Evidence

    @model_validator(mode="before")
    @classmethod
    def _derived_fields(cls, data: Any) -> Any:
        """Drop the serialised derived fields; read anomalies stored before evidence was typed
        (an untyped ``evidence`` dict) as :class:`~opsloop.evidence.RecordedEvidence`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        derived = {k: data.pop(k, None) for k in ("detector", "series", "score", "observed", "expected",
                                                   "direction", "unit")}
        ev = data.get("evidence")
        if isinstance(ev, dict) and "type" not in ev:
            series = derived["series"] or {}
            labels = dict(series.get("labels", ())) if isinstance(series, dict) else {}
            data["evidence"] = RecordedEvidence(
                metric=series.get("metric", "unknown") if isinstance(series, dict) else str(series),
                labels={str(k): str(v) for k, v in labels.items()}, score=float(derived["score"] or 0.0),
                recorded_detector=str(derived["detector"] or "unknown"), observed=derived["observed"],
                expected=derived["expected"], direction=derived["direction"] or "up",
                affected=ev.get("affected", {}) if isinstance(ev.get("affected"), dict) else {},
            )
        return data

    @computed_field  # type: ignore[prop-decorator]
    @property
    def detector(self) -> str:
        return self.evidence.detector_name

    @computed_field  # type: ignore[prop-decorator]
    @property
    def series(self) -> SeriesKey:
        return SeriesKey.of(self.evidence.metric, **self.evidence.labels)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def score(self) -> float:
        return self.evidence.score

    @computed_field  # type: ignore[prop-decorator]
    @property
    def unit(self) -> str:
        return self.evidence.unit

    @computed_field  # type: ignore[prop-decorator]
    @property
    def observed(self) -> float | None:
        return self.evidence.observed

    @computed_field  # type: ignore[prop-decorator]
    @property
    def expected(self) -> float | None:
        return self.evidence.expected

    @computed_field  # type: ignore[prop-decorator]
    @property
    def direction(self) -> str:
        return self.evidence.direction

    def key(self) -> str:
        """What failed, not when: a hash of kind, detector, series and direction. The same problem
        seen by the same detector in two cycles has one key; an incident's fingerprint is its
        primary anomaly's key."""
        return stable_hash([self.kind.value, self.detector, str(self.series), self.direction], 16)

    def headline(self) -> str:
        """A few words naming what moved (the evidence's headline)."""
        return self.evidence.headline()

    def line(self) -> str:
        """The evidence sentence with its figures, unit and span."""
        return self.evidence.line(self.start, self.end)


class TicketCluster(_Model):
    """A group of similar tickets (DBSCAN on sentence embeddings).

    ``affected`` maps a blast-radius label name (the domain pack's ``labels``) to the sorted values seen.
    """

    id: str
    size: int
    top_terms: list[str]
    examples: list[dict[str, Any]]
    label: str
    first_seen: datetime
    last_seen: datetime
    affected: dict[str, list[str]] = Field(default_factory=dict)
    ticket_ids: list[str] = Field(default_factory=list)


class LogSignature(_Model):
    """A log template and its rate in the window against a trailing baseline (events per hour)."""

    template_id: str
    template: str
    count: int
    baseline_rate: float
    rate: float


class SectionKind(str, Enum):
    """What a runbook section is for (see :func:`opsloop.rag.sections.section_kind`): how the
    problem shows (``symptoms``), how to find its cause (``diagnosis``), what to do (``mitigation``)
    and how to tell it is over (``verification``); ``other`` for the rest (impact, escalation...)."""

    symptoms = "symptoms"
    diagnosis = "diagnosis"
    mitigation = "mitigation"
    verification = "verification"
    other = "other"


class Citation(_Model):
    """A retrieved runbook passage that an assessment relies on; ``kind`` is its section's."""

    chunk_id: str
    document: str
    section: str
    score: float
    text: str = ""
    kind: SectionKind = SectionKind.other


class Hypothesis(_Model):
    """One candidate explanation of an incident: a category of the domain pack, the evidence items
    that ``supporting`` it and those ``contrary`` to it (sentences), and a ``confidence`` in [0, 1]
    from their balance (see :func:`opsloop.pipeline.hypotheses.rank`). ``explanation``: why, in a
    sentence (the rules' root-cause text, or the model's when a model ranked it)."""

    category: str
    title: str
    confidence: float = Field(ge=0.0, le=1.0)
    explanation: str = ""
    supporting: list[str] = Field(default_factory=list)
    contrary: list[str] = Field(default_factory=list)


class MitigationStep(_Model):
    """A step quoted verbatim (whitespace collapsed) from a runbook's mitigation section:
    ``section`` is its heading path, ``chunk_id`` the passage it is quoted from."""

    text: str
    document: str
    section: str
    chunk_id: str


class Narrative(str, Enum):
    """Who wrote an assessment's prose: ``rules`` (no model configured), ``pending`` (a model is
    configured and has not answered yet: narration runs after the cycle is stored), ``written``
    (a model's answer validated) or ``fell_back`` (the model's answer was not used; the rules' text
    stands and ``fallback_reason`` says why)."""

    rules = "rules"
    pending = "pending"
    written = "written"
    fell_back = "fell_back"

    @property
    def phrase(self) -> str:
        """How the CLI and the UI say it: ``narrative by the rules``, ``… pending``, ``… fell back``."""
        return "narrative " + {"rules": "by the rules", "fell_back": "fell back"}.get(self.value, self.value)


class RiskReport(_Model):
    """Revenue at risk for one incident.

    ``lost_orders`` is expected minus observed orders over the incident span (expected from the
    pre-incident conversion rate applied to observed sessions) under the domain pack's revenue model;
    money in its ``currency``.
    ``interval`` is an approximate 95% interval on revenue at risk for the window. Fields are ``None``
    where the inputs needed (orders, sessions, average order value) are absent; ``method`` says why.
    """

    lost_orders: float | None = None
    revenue_at_risk_window: float | None = None
    revenue_at_risk_per_hour: float | None = None
    revenue_at_risk_per_day: float | None = None
    interval: tuple[float, float] | None = None
    currency: str = ""
    method: str = ""


class Assessment(_Model):
    """What an incident is, why we think so, and how sure we are. ``confidence`` in [0, 1].

    ``generated_by``: ``"rules"`` or ``"<backend>:<model>"`` of the LLM that wrote the narrative;
    ``latency_s``: seconds spent getting the LLM narrative (a cache hit costs about 0; ``None`` when
    no LLM was asked); ``fallback_reason``: why an LLM narrative was asked for and not used (``None``
    otherwise); ``narrative``: where the prose stands (:class:`Narrative`).

    ``hypotheses``: up to three ranked explanations with their supporting and contrary evidence
    (the first is ``category``'s unless a model re-ranked them); ``insufficient_evidence``: nothing
    separates the top two (or nothing supports any); ``mitigation``: steps quoted from the top
    hypothesis' runbook's mitigation section; ``rule_category``: the rules' category when a model's
    answer changed ``category`` with evidence for its choice (both are shown), else ``None``.
    """

    summary: str
    root_cause: str
    category: str
    confidence: float = Field(ge=0.0, le=1.0)
    evidence: list[str]
    assumptions: list[str] = Field(default_factory=list)
    uncertainties: list[str] = Field(default_factory=list)
    blast_radius: dict[str, list[str]] = Field(default_factory=dict)
    risk: RiskReport = Field(default_factory=RiskReport)
    citations: list[Citation] = Field(default_factory=list)
    hypotheses: list[Hypothesis] = Field(default_factory=list)
    insufficient_evidence: bool = False
    mitigation: list[MitigationStep] = Field(default_factory=list)
    rule_category: str | None = None
    generated_by: str = "rules"
    narrative: Narrative = Narrative.rules
    latency_s: float | None = None
    fallback_reason: str | None = None


class ProposedAction(_Model):
    """An action proposed for an incident, waiting behind the approval gate unless auto-executed."""

    id: str
    incident_id: str
    type: str
    params: dict[str, Any] = Field(default_factory=dict)
    rationale: str
    risk: Risk
    confidence: float = Field(ge=0.0, le=1.0)
    requires_approval: bool
    status: ActionStatus = ActionStatus.proposed
    idempotency_key: str


class Incident(_Model):
    """A deduplicated problem: correlated anomalies, ticket clusters and log signatures.

    ``fingerprint`` is stable across cycles for the same problem (it hashes what failed, not when),
    so a recurring problem updates its open incident instead of opening a new one.
    """

    id: str
    fingerprint: str
    status: IncidentStatus = IncidentStatus.open
    kind: Kind
    first_seen: datetime
    last_seen: datetime
    severity: Severity
    title: str = ""
    anomalies: list[Anomaly] = Field(default_factory=list)
    clusters: list[TicketCluster] = Field(default_factory=list)
    signatures: list[LogSignature] = Field(default_factory=list)
    affected: dict[str, list[str]] = Field(default_factory=dict)
    assessment: Assessment | None = None
    actions: list[ProposedAction] = Field(default_factory=list)


class AuditEvent(_Model):
    """One append-only audit record; ``hash`` covers the event and ``prev_hash`` (a hash chain)."""

    seq: int
    at: datetime
    actor: str
    verb: str
    subject: str
    detail: dict[str, Any] = Field(default_factory=dict)
    prev_hash: str
    hash: str


class Quarantined(_Model):
    """A rejected input row: where it came from and why."""

    file: str
    line: int
    field: str | None = None
    reason: str


class Alert(_Model):
    """An alert as Alertmanager sends it (webhook version 4): ``status`` ``firing`` or ``resolved``,
    its ``labels`` (``alertname``, ``severity``, ...), ``annotations``, UTC ``starts_at`` and
    ``ends_at`` (``None`` while open-ended) and Alertmanager's ``fingerprint`` of the label set."""

    fingerprint: str
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    starts_at: datetime
    ends_at: datetime | None = None
    group_key: str = ""

    @field_validator("starts_at", "ends_at")
    @classmethod
    def _utc(cls, v: datetime | None) -> datetime | None:
        return None if v is None else utc(v)


class MaintenanceWindow(Window):
    """A declared maintenance window: anomalies inside ``[start, end)`` on series matching every
    ``labels`` pair (label name -> value; empty: every series) are expected, recorded as context
    and page nobody. Times are aware UTC. Raises ``ValueError`` if ``end <= start``."""

    id: str = ""
    labels: dict[str, str] = Field(default_factory=dict)
    reason: str = ""
    created_by: str = ""

    def covers(self, anomaly: Anomaly) -> bool:
        """Whether ``anomaly`` overlaps the window and names every selected label value (in its
        series labels or its affected values)."""
        if anomaly.end < self.start or anomaly.start >= self.end:
            return False
        ev = anomaly.evidence
        return all(ev.labels.get(k) == v or v in ev.affected.get(k, []) or ev.attributes().get(k) == v
                   for k, v in self.labels.items())


class ContextNote(_Model):
    """A candidate incident the paging rules demoted to context (see :mod:`opsloop.pipeline.paging`):
    what it was, when, and the ``reason`` (a :data:`opsloop.pipeline.paging.REASONS` key)."""

    title: str
    kind: Kind
    first_seen: datetime
    last_seen: datetime
    reason: str
    anomalies: int = 1


class CycleReport(_Model):
    """What one cycle did: counts per stage, seconds per stage, degradations and errors; ``context``:
    the candidates demoted to context by the paging rules (they open no incident)."""

    id: str
    window: Window
    counts: dict[str, int] = Field(default_factory=dict)
    stage_seconds: dict[str, float] = Field(default_factory=dict)
    degradations: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    quarantined: list[Quarantined] = Field(default_factory=list)
    incident_ids: list[str] = Field(default_factory=list)
    parameters: dict[str, Any] = Field(default_factory=dict)  # values chosen from the data, e.g. the ticket clustering's radius
    context: list[ContextNote] = Field(default_factory=list)


class Role(str, Enum):
    """API/CLI roles, in increasing order of power: ``viewer < operator < approver < admin``."""

    viewer = "viewer"
    operator = "operator"
    approver = "approver"
    admin = "admin"

    @property
    def rank(self) -> int:
        """0 for ``viewer`` … 3 for ``admin``; a caller may do what any role of lower or equal rank may."""
        return ROLES.index(self.value)


ROLES: tuple[str, ...] = tuple(r.value for r in Role)


class Policy(BaseModel):
    """The approval policy: what may run by itself, how many approvers the rest need, and for how long
    an approval stays valid. Enforced by :mod:`opsloop.store.repository`, never by a UI.

    ``auto_execute_confidence``: a ``low``-risk action whose assessment confidence is at least this
    runs without approval. ``auto_execute_types``: when set, only these action types may run without
    approval (``None``: any low-risk type). ``approvers``: distinct approvers needed per risk
    (``critical`` needs two). ``approval_ttl_seconds``: an approval older than this no longer allows
    execution, and a proposal older than this expires. Nobody may approve an action they proposed by
    hand; a rejection needs a reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    auto_execute_confidence: float = 0.7
    auto_execute_types: frozenset[str] | None = None
    approvers: dict[Risk, int] = {Risk.low: 1, Risk.medium: 1, Risk.high: 1, Risk.critical: 2}
    approval_ttl_seconds: float = 4 * 3600.0

    def auto_executes(self, risk: Risk, confidence: float, action_type: str | None = None,
                      read_only: bool = False) -> bool:
        """Whether an action of ``risk`` and assessment ``confidence`` (in [0, 1]) may run without a
        human. With an allow-list (``auto_execute_types``) the ``action_type`` must be in it; an
        unnamed type is then never allowed. A ``read_only`` low-risk action (it changes nothing, e.g.
        collecting diagnostics) needs no particular confidence."""
        if risk != Risk.low or (confidence < self.auto_execute_confidence and not read_only):
            return False
        return self.auto_execute_types is None or (action_type is not None and action_type in self.auto_execute_types)

    def approvers_needed(self, risk: Risk) -> int:
        return self.approvers[risk]


class PolicyViolation(PermissionError):
    """The actor may not make this change (e.g. approving their own proposal)."""
