"""Typed evidence: one variant per detector, each with its score *and the score's unit*.

:class:`~opsloop.domain.Anomaly` carries one of these as ``evidence`` (a pydantic discriminated
union on ``type``). Every variant holds the detector's ``score`` in its ``unit`` (robust z, −log10 p),
the ``observed`` value and the detector's ``expected`` value at the peak, the ``direction`` of the
departure (``up``/``down``) and ``affected`` (label name → values: the blast radius the rows touched),
and renders itself: :meth:`headline` (a few words naming what moved), :meth:`line` (one evidence
sentence with its figures, unit and time span) and :meth:`query_terms` (text for runbook retrieval).
:meth:`attributes` exposes the facts a domain pack's category rules may test (see
:class:`opsloop.packs.model.Rule`). No stage branches on a detector's name: they call these methods.

Times are UTC; ``start``/``end`` passed to :meth:`line` are the anomaly's span.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["up", "down"]


def _span(start: datetime, end: datetime) -> str:
    return f"from {start:%Y-%m-%d %H:%M} to {end:%H:%M} UTC"


def _g(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def series_text(metric: str, labels: dict[str, str]) -> str:
    """``metric`` with its labels (``all`` values left out) as an SRE writes it: ``latency{region="eu"}``."""
    shown = {k: v for k, v in labels.items() if v not in ("", "all")}
    if not shown:
        return metric
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(shown.items())) + "}"


class _Evidence(BaseModel):
    """Fields every variant has (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: The detector that emits this variant (also the ``type`` discriminator's value).
    detector: ClassVar[str]
    #: An anomaly of a corroborating variant joins an incident but never names it.
    corroborating: ClassVar[bool] = False
    #: Its source already required the condition to hold (an alert rule's ``for:``): it counts as
    #: sustained for the paging rules however short its span in the window.
    sustained: ClassVar[bool] = False
    #: A sample of a KPI series: how many events it stands for is read from the pack's volume
    #: series, not from the evidence (:meth:`abnormal_events` is None).
    kpi: ClassVar[bool] = False

    metric: str
    labels: dict[str, str] = Field(default_factory=dict)
    score: float
    unit: str
    observed: float | None = None
    expected: float | None = None
    direction: Direction = "up"
    affected: dict[str, list[str]] = Field(default_factory=dict)

    @property
    def detector_name(self) -> str:
        """The name of the detector that produced this evidence."""
        return self.detector

    @property
    def series(self) -> str:
        return series_text(self.metric, self.labels)

    @property
    def _where(self) -> str:
        """`` (eu, acme)``: the series' label values (``all`` left out), for headlines."""
        shown = {k: v for k, v in self.labels.items() if v != "all"}
        return f" ({', '.join(shown.values())})" if shown else ""

    @property
    def _on(self) -> str:
        """`` on region eu``: the series' labels, for evidence lines."""
        return "".join(f" on {k} {v}" for k, v in sorted(self.labels.items()))

    @property
    def moved(self) -> str:
        return "rose" if self.direction == "up" else "fell"

    def headline(self) -> str:
        """A few words naming what moved, e.g. ``latency_ms{region="eu"} drop``."""
        return f"{self.series} {'rise' if self.direction == 'up' else 'drop'}"

    def line(self, start: datetime, end: datetime) -> str:
        """One evidence sentence: what was observed against what was expected, the score with its
        unit, and the time span."""
        return (f"{self.series} {self.moved} to {_g(self.observed)} (expected {_g(self.expected)}; "
                f"{self.unit} {self.score:.1f}) {_span(start, end)}")

    def query_terms(self) -> list[str]:
        """Text for runbook retrieval (the headline by default)."""
        return [self.headline()]

    def example_lines(self) -> list[str]:
        """Raw example lines (log messages) behind the evidence: untrusted text (none by default)."""
        return list(getattr(self, "examples", []))

    def abnormal_events(self) -> float | None:
        """How many events in the span were abnormal (calls failed beyond the baseline, downstream
        events missing, log lines, tickets), the size an SRE weighs a count anomaly by; None when
        the evidence is not a count (a KPI, an alert)."""
        return None

    def expected_events(self) -> float | None:
        """How many events the baseline expected in the span, where the evidence itself knows
        (so ``abnormal_events() / expected_events()`` is the share that failed); None otherwise."""
        return None

    def attributes(self) -> dict[str, object]:
        """Facts a category rule may test: ``evidence`` (this variant's type), ``metric``,
        ``direction`` and the series labels; variants add their own (``status``, ``endpoint``...)."""
        return {"evidence": self.detector, "metric": self.metric, "direction": self.direction, **self.labels}


class RobustZEvidence(_Evidence):
    """A KPI's trailing robust z (modified z-score, Iglewicz & Hoaglin 1993) passed its threshold.

    ``points``: flagged points in the run; ``span_mean``: the KPI's mean over the run.
    """

    detector: ClassVar[str] = "robust_z"
    kpi: ClassVar[bool] = True
    type: Literal["robust_z"] = "robust_z"
    unit: Literal["robust z"] = "robust z"
    points: int = 1
    span_mean: float | None = None


class EnsembleEvidence(_Evidence):
    """The calibrated ensemble's combined tail probability was small (``score`` = −log10 p of the
    strongest member, Tippett's minimum-p combination; see :mod:`opsloop.detectors.ensemble`)."""

    detector: ClassVar[str] = "ensemble"
    kpi: ClassVar[bool] = True
    type: Literal["ensemble"] = "ensemble"
    unit: Literal["-log10 p"] = "-log10 p"
    member: str | None = None
    points: int = 1

    def line(self, start: datetime, end: datetime) -> str:
        p = 10.0 ** (-self.score)
        by = f" ({self.member})" if self.member else ""
        return (f"{self.series} {self.moved} to {_g(self.observed)} (expected {_g(self.expected)}; tail "
                f"probability {p:.1e}, -log10 p {self.score:.1f}, ensemble{by}) {_span(start, end)}")


class ErrorRateEvidence(_Evidence):
    """An endpoint's share of responses with one error status rose (exact binomial tail against the
    endpoint's trailing error rate; ``score`` = −log10 p). ``observed``/``expected``: error rates."""

    detector: ClassVar[str] = "error_rate"
    type: Literal["error_rate"] = "error_rate"
    unit: Literal["-log10 p"] = "-log10 p"
    endpoint: str
    status: int
    errors: int
    requests: int
    services: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)

    def headline(self) -> str:
        return f"HTTP {self.status} spike on {self.endpoint}"

    def line(self, start: datetime, end: datetime) -> str:
        return (f"{self.errors} of {self.requests} calls to {self.endpoint} returned {self.status} "
                f"({(self.observed or 0):.1%} vs baseline {(self.expected or 0):.2%}; -log10 p {self.score:.1f}) "
                f"{_span(start, end)}")

    def query_terms(self) -> list[str]:
        return [self.headline(), f"http {self.status} {self.endpoint} {' '.join(self.services)}", *self.examples[:1]]

    def abnormal_events(self) -> float:
        """Calls that returned the status beyond the baseline rate: ``errors - expected·requests``."""
        return self.errors - (self.expected or 0.0) * self.requests

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "status": self.status, "endpoint": self.endpoint,
                "service": ",".join(self.services)}


class EventRatioEvidence(_Evidence):
    """Fewer ``downstream`` events followed ``upstream`` ones than the trailing ratio predicts (exact
    binomial tail, ``score`` = −log10 p). ``missing``: expected minus observed downstream events,
    less the ``late`` ones (upstream ids whose downstream event arrived after the span: a lagging
    consumer, not a loss); ``orphaned_ids``: a few upstream ids with no downstream event (when the pack names an id column)."""

    detector: ClassVar[str] = "ratio"
    type: Literal["ratio"] = "ratio"
    unit: Literal["-log10 p"] = "-log10 p"
    upstream_event: str
    downstream_event: str
    upstream: int
    downstream: int
    missing: int
    late: int = 0
    orphaned_ids: list[str] = Field(default_factory=list)

    def headline(self) -> str:
        return f"{self.downstream_event} missing after {self.upstream_event}{self._where}"

    def line(self, start: datetime, end: datetime) -> str:
        return (f"{self.downstream} {self.downstream_event} for {self.upstream} {self.upstream_event}{self._on} "
                f"(ratio {(self.observed or 0):.2f} vs baseline {(self.expected or 0):.2f}; about {self.missing} "
                f"missing; -log10 p {self.score:.1f}) {_span(start, end)}")

    def abnormal_events(self) -> float:
        return float(self.missing)

    def expected_events(self) -> float:
        return (self.expected or 0.0) * self.upstream

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "upstream": self.upstream_event, "downstream": self.downstream_event}


class FunnelEvidence(_Evidence):
    """A KPI funnel's ``downstream`` count per ``upstream`` count fell (exact binomial tail on counts
    summed over a trailing span, ``score`` = −log10 p). ``name``: the funnel's name in the pack."""

    detector: ClassVar[str] = "kpi_funnel"
    type: Literal["kpi_funnel"] = "kpi_funnel"
    unit: Literal["-log10 p"] = "-log10 p"
    name: str
    upstream_metric: str
    downstream_metric: str
    upstream: float
    downstream: float
    missing: float

    def headline(self) -> str:
        return f"{self.name} drop: {self.downstream_metric} per {self.upstream_metric}{self._where}"

    def line(self, start: datetime, end: datetime) -> str:
        return (f"{self.downstream_metric} per {self.upstream_metric}{self._on} fell to {(self.observed or 0):.3f} "
                f"(baseline {(self.expected or 0):.3f}; about {self.missing:.0f} {self.downstream_metric} missing; "
                f"-log10 p {self.score:.1f}) {_span(start, end)}")

    def abnormal_events(self) -> float:
        return self.missing

    def expected_events(self) -> float:
        return (self.expected or 0.0) * self.upstream

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "funnel": self.name, "upstream": self.upstream_metric,
                "downstream": self.downstream_metric}


class LogTemplateEvidence(_Evidence):
    """A log template (Drain) that is new in the window or surged against its baseline share of its
    service's lines (Poisson tail, ``score`` = −log10 p). ``observed``/``expected``: lines in the
    window; ``new``: absent from baseline and miner state; ``failure``: most lines failed requests."""

    detector: ClassVar[str] = "log_template"
    type: Literal["log_template"] = "log_template"
    unit: Literal["-log10 p"] = "-log10 p"
    template_id: str
    template: str
    service: str
    count: int
    baseline_count: int
    baseline_hours: float
    new: bool = False
    error: bool = False
    failure: bool = False
    statuses: dict[str, int] = Field(default_factory=dict)
    endpoints: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)

    def headline(self) -> str:
        # not "new"/"surging": whether a template is new depends on the miner's state, and a headline
        # names the incident (its title, action parameters) the same way on every run
        return f"log template surge in {self.service}: {self.template[:80]}"

    def line(self, start: datetime, end: datetime) -> str:
        return (f"log template '{self.template}' of {self.service}: {self.count} lines (expected "
                f"{_g(self.expected)}; {self.baseline_count} in the {self.baseline_hours:g} h before"
                f"{'; new' if self.new else ''}; -log10 p {self.score:.1f}) {_span(start, end)}")

    def query_terms(self) -> list[str]:
        return [f"{self.service} {self.template}", *self.examples[:1]]

    def abnormal_events(self) -> float:
        return float(self.count)

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "service": self.service, "template": self.template,
                "new": self.new, "failure": self.failure, "endpoint": ",".join(self.endpoints),
                "status": [int(s) for s in self.statuses]}


class TicketSurgeEvidence(_Evidence):
    """A ticket theme's hourly volume surged (Poisson tail against its trailing rate, ``score`` =
    −log10 p). ``observed``/``expected``: tickets in the peak bucket and the trailing rate per bucket.
    Corroborating: a surge joins an incident but never names it."""

    detector: ClassVar[str] = "ticket_surge"
    corroborating: ClassVar[bool] = True
    type: Literal["ticket_surge"] = "ticket_surge"
    unit: Literal["-log10 p"] = "-log10 p"
    cluster_id: str
    label: str
    top_terms: list[str] = Field(default_factory=list)
    tickets: int
    bucket: str = "1h"
    counts: dict[str, int] = Field(default_factory=dict)
    ticket_ids: list[str] = Field(default_factory=list)

    def headline(self) -> str:
        return f"support tickets surge about '{self.label}'"

    def line(self, start: datetime, end: datetime) -> str:
        return (f"{self.tickets} support tickets about '{self.label}' ({', '.join(self.top_terms[:4])}; trailing "
                f"rate {_g(self.expected)} per {self.bucket}; -log10 p {self.score:.1f}) {_span(start, end)}")

    def query_terms(self) -> list[str]:
        return [" ".join(self.top_terms) + ". " + self.label]

    def abnormal_events(self) -> float:
        return float(self.tickets)

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "theme": self.label}


class AlertEvidence(_Evidence):
    """An Alertmanager alert (a rule someone wrote and routed to us) was firing during the window.

    ``metric`` is the alert's ``alertname`` and ``labels`` its other labels (``severity`` left out:
    it is ``alert_severity``), so an alert labelled with the pack's correlation labels joins the
    anomalies on those labels (:mod:`opsloop.pipeline.correlate`). ``score``: the minutes it fired
    inside the window; ``status``: ``firing`` or ``resolved`` as last received; ``examples``: its
    ``summary``/``description`` annotations (text from outside: untrusted, never instructions).
    """

    detector: ClassVar[str] = "alert"
    sustained: ClassVar[bool] = True
    type: Literal["alert"] = "alert"
    unit: Literal["minutes firing"] = "minutes firing"
    fingerprint: str
    status: Literal["firing", "resolved"] = "firing"
    alert_severity: str = ""
    examples: list[str] = Field(default_factory=list)

    def headline(self) -> str:
        return f"alert {self.metric}{self._where}"

    def line(self, start: datetime, end: datetime) -> str:
        sev = f" ({self.alert_severity})" if self.alert_severity else ""
        return (f"Alertmanager alert {self.metric}{sev}{self._on} {self.status}, {self.score:.0f} min "
                f"firing in the window, {_span(start, end)}")

    def query_terms(self) -> list[str]:
        return [self.headline(), *self.examples[:1]]

    def attributes(self) -> dict[str, object]:
        return {**super().attributes(), "alertname": self.metric, "alert_severity": self.alert_severity,
                "status": self.status}


class RecordedEvidence(_Evidence):
    """Evidence stored before evidence was typed: the detector's name and figures, nothing else
    (read back so that older incidents stay readable)."""

    detector: ClassVar[str] = "recorded"
    type: Literal["recorded"] = "recorded"
    unit: str = "detector score"
    recorded_detector: str

    @property
    def detector_name(self) -> str:
        return self.recorded_detector

    def line(self, start: datetime, end: datetime) -> str:
        return (f"{self.series} {self.moved} to {_g(self.observed)} (expected {_g(self.expected)}; "
                f"{self.recorded_detector} score {self.score:.3g}) {_span(start, end)}")


Evidence = Annotated[
    RobustZEvidence | EnsembleEvidence | ErrorRateEvidence | EventRatioEvidence | FunnelEvidence
    | LogTemplateEvidence | TicketSurgeEvidence | AlertEvidence | RecordedEvidence,
    Field(discriminator="type"),
]

#: Every variant, by the detector name it belongs to.
VARIANTS: dict[str, type[_Evidence]] = {
    cls.detector: cls for cls in (RobustZEvidence, EnsembleEvidence, ErrorRateEvidence, EventRatioEvidence,
                                  FunnelEvidence, LogTemplateEvidence, TicketSurgeEvidence, AlertEvidence)
}
