"""The domain-pack schema: what a domain means, declared in YAML and validated by pydantic.

A pack is a directory with ``pack.yaml`` (this schema), an action catalog (``catalog.yaml`` by
default, see :mod:`opsloop.actions.catalog`) and optionally runbooks. Every model forbids unknown
keys, so a typo fails on load with the file and key named (:func:`opsloop.packs.load_pack`).

Matching of metric names uses shell-style globs (:func:`fnmatch.fnmatchcase`): ``"*latency*"``.
"""

from __future__ import annotations

import re
from datetime import datetime
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opsloop.domain import Category, Kind, MaintenanceWindow, Severity

BadDirection = Literal["up", "down", "both", "none"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MetricSpec(_Spec):
    """How a KPI is watched.

    ``match``: glob(s) on the metric name (the first spec that matches a metric applies);
    ``bad``: the direction that is bad (``none``: not watched on its own, e.g. a volume that only
    matters as a funnel's denominator); ``detector``: ``ensemble`` (calibrated, any series) or
    ``robust_z`` (trailing modified z with Stouffer smoothing, for per-minute rates whose lasting
    shift matters); ``kind``: what a failure of it is; ``unit``: shown with its values.
    ``volume``: the count KPI (same labels) behind each of its values, e.g. the requests behind a
    percentile, which the paging rules require to be large enough (``PagingRules.min_volume``);
    ``volume_only``: the metric is itself a volume (traffic), whose surges and dips alone are
    expected and open no incident (see :mod:`opsloop.pipeline.paging`).
    """

    match: list[str]
    bad: BadDirection = "both"
    detector: Literal["ensemble", "robust_z"] = "ensemble"
    kind: Kind = Kind.business
    unit: str = ""
    volume: str | None = None
    volume_only: bool = False

    @field_validator("match", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    def matches(self, metric: str) -> bool:
        return any(fnmatchcase(metric, g) for g in self.match)


class FunnelSpec(_Spec):
    """KPI counts whose ratio is a rate (``downstream`` out of ``upstream``), tested one-sided for a
    drop per value of ``group_by`` (and overall). ``name``: what the rate is called (``conversion``)."""

    name: str
    upstream: str
    downstream: str
    group_by: str | None = None
    kind: Kind = Kind.business


class EventPairSpec(_Spec):
    """Log events whose ratio ``downstream / upstream`` is an invariant of a healthy system, tested
    one-sided for a drop per value of ``group_by`` (and overall). ``id_column``: a log column that
    links an upstream event to its downstream one (ids of upstream events with no downstream event
    are reported as orphaned)."""

    upstream: str
    downstream: str
    group_by: str | None = None
    id_column: str | None = None
    kind: Kind = Kind.soft


class Rule(_Spec):
    """One evidence rule of a category: it matches an anomaly whose evidence has every listed fact.

    ``evidence``: evidence types (``error_rate``, ``ratio``, ``kpi_funnel``, ``robust_z``,
    ``ensemble``, ``log_template``, ``ticket_surge``); ``metric``: globs on the series' metric
    (``not_metric``: globs it must not match);
    ``status``: HTTP status codes; ``endpoint_contains``: a case-insensitive substring of the
    endpoint; ``upstream``/``downstream``: event or metric names of a ratio; ``direction``.
    """

    evidence: list[str] | None = None
    metric: list[str] | None = None
    not_metric: list[str] | None = None
    status: list[int] | None = None
    endpoint_contains: str | None = None
    upstream: str | None = None
    downstream: str | None = None
    direction: Literal["up", "down"] | None = None

    def matches(self, facts: dict[str, object]) -> bool:
        """Whether evidence with ``facts`` (:meth:`opsloop.evidence._Evidence.attributes`) matches."""
        return self.evidence_fits(facts) and self.mismatch(facts) is None

    def evidence_fits(self, facts: dict[str, object]) -> bool:
        """Whether the rule is about this kind of evidence at all (its ``evidence`` types, if any)."""
        return self.evidence is None or facts.get("evidence") in self.evidence

    def mismatch(self, facts: dict[str, object]) -> str | None:
        """The first condition (besides the evidence type) that ``facts`` fail, in words, e.g.
        ``"endpoint POST /v1/pay does not contain 'webhook'"``; ``None`` when all hold. Used as
        contrary evidence for a hypothesis whose rule nearly matched."""
        metric = str(facts.get("metric", ""))
        if self.metric is not None and not any(fnmatchcase(metric, g) for g in self.metric):
            return f"metric {metric} is not one of {', '.join(self.metric)}"
        if self.not_metric is not None and any(fnmatchcase(metric, g) for g in self.not_metric):
            return f"metric {metric} is excluded ({', '.join(self.not_metric)})"
        if self.status is not None:
            status = facts.get("status")
            codes = status if isinstance(status, list) else [status]
            if not any(c in self.status for c in codes):
                return f"status {status} is not {'/'.join(map(str, self.status))}"
        if self.endpoint_contains is not None and self.endpoint_contains.lower() not in str(
                facts.get("endpoint", "")).lower():
            return f"endpoint {facts.get('endpoint', '?')} does not contain '{self.endpoint_contains}'"
        for key in ("upstream", "downstream", "direction"):
            want = getattr(self, key)
            if want is not None and facts.get(key) != want:
                return f"{key} is {facts.get(key, 'unknown')}, not {want}"
        return None


class CategorySpec(_Spec):
    """An incident category: ``name`` (the runbooks' ``category``), ``title`` (how a summary starts),
    ``root_cause`` text, the base ``confidence`` when it is chosen, and the ``rules`` that imply it
    (any one matching any of an incident's anomalies). Categories are tried in the pack's order;
    the last must have no rules (the fallback)."""

    name: str
    title: str
    root_cause: str
    confidence: float = Field(ge=0.0, le=1.0)
    rules: list[Rule] = Field(default_factory=list)

    def category(self) -> Category:
        return Category(name=self.name, title=self.title, root_cause=self.root_cause)


class RevenueSpec(_Spec):
    """The revenue model: which KPIs give sessions (upstream), orders (downstream) and order value
    (money per order), in ``currency``; baseline conversion over ``baseline_hours`` before the
    incident, per value of ``group_by`` when the incident names them."""

    sessions: str
    orders: str
    order_value: str
    currency: str = "USD"
    baseline_hours: float = 24.0
    group_by: str | None = None


class SeverityRules(_Spec):
    """How severe is severe.

    An anomaly's severity comes from its evidence strength, ``score / threshold``: below
    ``steps[0]`` low, below ``steps[1]`` medium, below ``steps[2]`` high, else critical; ``kind_bump``
    adds steps per kind. ``evidence_max`` caps what evidence alone can reach. With a revenue model,
    revenue at risk per hour of at least ``revenue_per_hour[s]`` raises an incident to severity
    ``s``. ``single_point_max`` caps an incident made of one single-point anomaly.
    """

    steps: tuple[float, float, float] = (1.5, 3.0, 6.0)
    kind_bump: dict[Kind, int] = Field(default_factory=dict)
    evidence_max: Severity = Severity.high
    single_point_max: Severity = Severity.medium
    revenue_per_hour: dict[Severity, float] = Field(default_factory=dict)


class MaintenanceSpec(_Spec):
    """A maintenance window declared in the pack: ``start``/``end`` (ISO-8601, UTC if naive), an
    optional label selector (label name -> value) and the reason."""

    start: datetime
    end: datetime
    labels: dict[str, str] = Field(default_factory=dict)
    reason: str = ""

    def window(self) -> MaintenanceWindow:
        """As a :class:`~opsloop.domain.MaintenanceWindow` (``ValueError`` if ``end <= start``)."""
        return MaintenanceWindow(id="pack", start=self.start, end=self.end, labels=dict(self.labels),
                                 reason=self.reason, created_by="pack")


class PagingRules(_Spec):
    """When a candidate incident pages (see :mod:`opsloop.pipeline.paging`, which applies them).

    ``min_seconds``: evidence lasting at least this is *sustained* (else it needs a second
    detector or metric); ``min_events``: errors above baseline, missing events, log lines or
    tickets behind a count anomaly; ``min_share``: the share of its slice that failed (errors of
    the affected label values' requests, missing of a group's expected events) that makes an error
    rate or event ratio with fewer than ``min_events`` evidence all the same; ``min_volume``: the
    count of a KPI's ``volume`` metric summed over the anomaly's span; ``min_history_seconds``:
    data a series needs before an anomaly to have a baseline;
    ``seasonal_days``/``seasonal_minutes``/``seasonal_quantile``/``seasonal_min_points``:
    the same-time-of-day range on earlier days a KPI value must leave (0 days: off);
    ``maintenance``: declared windows. Zero switches a threshold off.
    """

    min_seconds: float = Field(default=0.0, ge=0)
    min_events: float = Field(default=0.0, ge=0)
    min_share: float = Field(default=0.0, ge=0, le=1)
    min_volume: float = Field(default=0.0, ge=0)
    min_history_seconds: float = Field(default=0.0, ge=0)
    seasonal_days: int = Field(default=0, ge=0)
    seasonal_minutes: int = Field(default=30, ge=0)
    seasonal_quantile: float = Field(default=0.99, gt=0.5, le=1.0)
    seasonal_min_points: int = Field(default=30, ge=1)
    maintenance: list[MaintenanceSpec] = Field(default_factory=list)

    def windows(self) -> list[MaintenanceWindow]:
        return [m.window() for m in self.maintenance]


class ActionsSpec(_Spec):
    """The pack's action catalog (path relative to the pack) and the action types that may run
    without a human (still only when the policy's risk and confidence rules allow)."""

    catalog: str = "catalog.yaml"
    auto_execute: list[str] = Field(default_factory=list)


class TicketsSpec(_Spec):
    """Ticket vocabulary: word stems that mark a ticket theme as a technical (``hard``) failure."""

    hard_terms: list[str] = Field(default_factory=list)


class LifecycleRules(_Spec):
    """When incidents move without a human (see :func:`opsloop.store.repository.review_incidents`).

    ``resolve_after_windows``: consecutive cycle windows in which none of an incident's anomalies
    recur before it is resolved (0: never). ``escalate_after_hours``: an incident still ``open``
    (unacknowledged) this many hours after it was first seen gets the catalog action
    ``escalate_with`` (``None``: no escalation), behind the approval gate like any other."""

    resolve_after_windows: int = Field(3, ge=0)
    escalate_after_hours: float = Field(48.0, gt=0)
    escalate_with: str | None = "page_oncall"


_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


class PromQuery(_Spec):
    """A PromQL query whose result becomes KPI series (see :mod:`opsloop.sources.prometheus`).

    ``name``: the KPI metric name its series get (a Prometheus metric name: letters, digits, ``_``,
    ``:``); ``query``: the PromQL expression, evaluated with ``query_range``; each result label set is
    one series whose labels are the result's labels (``__name__`` dropped) plus ``labels`` (constant
    labels added to every series, e.g. a correlation label the query does not carry). ``bad``,
    ``kind``, ``unit``: how the series is watched when no ``metrics`` entry of the pack matches
    ``name`` (unset: the pack's default, watched both ways).
    """

    name: str
    query: str
    bad: BadDirection | None = None
    kind: Kind | None = None
    unit: str = ""
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _metric_name(cls, v: str) -> str:
        if not _METRIC_NAME.match(v):
            raise ValueError(f"{v!r} is not a metric name (letters, digits, '_' or ':', "
                             "not starting with a digit)")
        return v

    @field_validator("query")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty PromQL query")
        return v.strip()

    def metric_spec(self) -> MetricSpec | None:
        """The :class:`MetricSpec` this query declares (``None`` when it declares neither ``bad`` nor
        ``kind``)."""
        if self.bad is None and self.kind is None:
            return None
        return MetricSpec(match=[self.name], bad=self.bad or "both", kind=self.kind or Kind.business,
                          unit=self.unit)


class AlertSpec(_Spec):
    """What kind of failure an Alertmanager alert is: ``match`` globs on its ``alertname``
    (:func:`fnmatch.fnmatchcase`), ``kind`` for the alerts they match (see
    :func:`opsloop.sources.alerts.alert_anomalies`; the first matching spec applies)."""

    match: list[str]
    kind: Kind

    @field_validator("match", mode="before")
    @classmethod
    def _listify(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    def matches(self, alertname: str) -> bool:
        return any(fnmatchcase(alertname, g) for g in self.match)


class Pack(_Spec):
    """A domain pack (see the module docstring). ``root``: the pack's directory (set on load).

    ``labels``: label columns that make up the blast radius; ``correlation_labels``: labels on
    which two anomalies must agree (when both name one) to join one incident; ``metrics``: how KPIs
    are watched (first match wins; a metric no spec matches is watched both ways by the ensemble);
    ``paging``: when a candidate pages (:class:`PagingRules`); ``lifecycle``: when incidents
    resolve or escalate on their own (:class:`LifecycleRules`);
    ``runbooks``: a directory relative to the pack; ``simulator``: ``module:function`` writing a
    scenario (see ``opsloop simulate``); ``prometheus``: PromQL queries read as KPIs
    (:class:`PromQuery`); ``alerts``: the kind of Alertmanager alerts by name (:class:`AlertSpec`;
    unmatched alerts are ``hard``).
    """

    name: str
    description: str = ""
    labels: list[str] = Field(default_factory=list)
    correlation_labels: list[str] = Field(default_factory=list)
    metrics: list[MetricSpec] = Field(default_factory=list)
    funnels: list[FunnelSpec] = Field(default_factory=list)
    event_pairs: list[EventPairSpec] = Field(default_factory=list)
    categories: list[CategorySpec]
    revenue: RevenueSpec | None = None
    severity: SeverityRules = Field(default_factory=SeverityRules)
    paging: PagingRules = Field(default_factory=PagingRules)
    lifecycle: LifecycleRules = Field(default_factory=LifecycleRules)
    actions: ActionsSpec = Field(default_factory=ActionsSpec)
    runbooks: str | None = None
    tickets: TicketsSpec = Field(default_factory=TicketsSpec)
    simulator: str | None = None
    prometheus: list[PromQuery] = Field(default_factory=list)
    alerts: list[AlertSpec] = Field(default_factory=list)
    root: Path | None = None

    @model_validator(mode="after")
    def _categories_ok(self) -> Pack:
        names = [c.name for c in self.categories]
        if len(set(names)) != len(names):
            raise ValueError(f"categories: duplicate names {sorted({n for n in names if names.count(n) > 1})}")
        if not self.categories or self.categories[-1].rules:
            raise ValueError("categories: the last category is the fallback and must have no rules")
        queries = [q.name for q in self.prometheus]
        if len(set(queries)) != len(queries):
            dups = sorted({n for n in queries if queries.count(n) > 1})
            raise ValueError(f"prometheus: duplicate names {dups}")
        return self

    # -- lookups --------------------------------------------------------------------------------
    def metric_spec(self, metric: str) -> MetricSpec:
        """The first spec matching ``metric``; then the one a ``prometheus`` query of that name
        declares; default: watched both ways by the ensemble."""
        for spec in self.metrics:
            if spec.matches(metric):
                return spec
        for q in self.prometheus:
            if q.name == metric and (declared := q.metric_spec()) is not None:
                return declared
        return MetricSpec(match=[metric])

    def alert_kind(self, alertname: str) -> Kind:
        """The kind of an alert named ``alertname``: the first matching ``alerts`` spec's, else hard."""
        for spec in self.alerts:
            if spec.matches(alertname):
                return spec.kind
        return Kind.hard

    @property
    def category_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.categories)

    def category(self, name: str) -> CategorySpec:
        for c in self.categories:
            if c.name == name:
                return c
        raise KeyError(f"pack {self.name!r} has no category {name!r}")

    @property
    def fallback(self) -> CategorySpec:
        return self.categories[-1]

    def path(self, relative: str) -> Path:
        """``relative`` resolved against the pack's directory."""
        base = self.root or Path(".")
        return (base / relative).resolve()

    @property
    def catalog_path(self) -> Path:
        return self.path(self.actions.catalog)

    @property
    def runbooks_path(self) -> Path | None:
        return self.path(self.runbooks) if self.runbooks else None
