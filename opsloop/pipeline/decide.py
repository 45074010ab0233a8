"""Decide stage: retrieve runbook passages, assess each incident by rules, estimate revenue at risk.

Facts before prose: every number in an assessment is computed here from the anomalies' evidence and
the KPI frame; the narrative only arranges them.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from opsloop.data import contracts as C
from opsloop.domain import Anomaly, Assessment, Citation, Incident, RiskReport
from opsloop.pipeline.correlate import describe
from opsloop.rag.index import RunbookIndex

#: The allowed assessment categories (each bundled runbook declares one of them).
CATEGORIES = ("webhook_auth", "api_auth", "event_loss", "cart_state", "latency", "conversion", "error_spike",
              "kpi_anomaly")

_ROOT_CAUSE = {
    "webhook_auth": "Merchant webhook endpoints are rejecting our signed deliveries (HTTP 401/403), most likely "
    "because the webhook signing secret changed on one side (secret rotation) and the other side still "
    "verifies with the old one.",
    "api_auth": "Checkout API calls are failing authentication (HTTP 401/403): merchant API credentials or "
    "tokens are invalid, expired or scoped to the wrong audience.",
    "event_loss": "Payments succeed but the downstream order.created event is missing for part of them: the "
    "order pipeline (event bus or order-service consumer) is dropping or not processing payment events.",
    "cart_state": "Checkout sessions are created but far fewer proceed to payment, with no HTTP errors: the "
    "backend sees carts without items (cart state not propagated), typically after a frontend change.",
    "latency": "Checkout/payment latency rose well above its usual level; slow calls time out or make "
    "customers abandon.",
    "conversion": "A business KPI fell with no technical error: customers reach checkout but stop converting "
    "(pricing, shipping, promotion or UX regression).",
    "error_spike": "An endpoint's error rate rose well above its trailing baseline.",
    "kpi_anomaly": "A KPI left its usual range; no more specific failure signature was found.",
}


def categorize(anomalies: list[Anomaly]) -> tuple[str, float]:
    """Rule-based category and its base confidence, most specific evidence first."""
    err = [a for a in anomalies if a.detector == "error_rate"]
    ratios = [a for a in anomalies if a.detector == "ratio"]
    auth = [a for a in err if a.evidence.get("status") in (401, 403)]
    if any("webhook" in str(a.evidence.get("endpoint", "")).lower() for a in auth):
        return "webhook_auth", 0.85
    if auth:
        return "api_auth", 0.85
    if any(a.evidence.get("downstream_event") == C.EVENT_ORDER_CREATED for a in ratios):
        return "event_loss", 0.8
    if any("latency" in a.series.metric for a in anomalies):
        return "latency", 0.75
    if any(a.evidence.get("upstream_event") == C.EVENT_SESSION_CREATED for a in ratios):
        return "cart_state", 0.7
    if err:
        return "error_spike", 0.6
    if any(a.detector == "kpi_funnel" or a.series.metric in (C.METRIC_CONVERSION, C.METRIC_SUCCESS_RATE)
           for a in anomalies):
        return "conversion", 0.6
    return "kpi_anomaly", 0.4


def build_query(incident: Incident) -> str:
    """Retrieval query from the incident's evidence: headlines, endpoints and codes, log templates,
    example log lines and ticket-cluster terms."""
    parts = [describe(a) for a in incident.anomalies[:6]]
    for a in incident.anomalies[:6]:
        ev = a.evidence
        if a.detector == "error_rate":
            parts.append(f"http {ev.get('status')} {ev.get('endpoint')} {' '.join(ev.get('services', []))}")
            parts.extend(ev.get("examples", [])[:1])
    parts.extend(s.template for s in incident.signatures[:3])
    for c in incident.clusters[:3]:
        parts.append(" ".join(c.top_terms) + ". " + c.label)
    return "\n".join(dict.fromkeys(p for p in parts if p))


def _evidence_lines(incident: Incident) -> list[str]:
    lines = []
    for a in incident.anomalies:
        ev, t0, t1 = a.evidence, a.start.strftime("%Y-%m-%d %H:%M"), a.end.strftime("%H:%M")
        if a.detector == "error_rate":
            lines.append(f"{ev['errors']} of {ev['requests']} calls to {ev['endpoint']} returned {ev['status']} "
                         f"({ev['error_rate']:.1%} vs baseline {ev['baseline_rate']:.2%}) from {t0} to {t1} UTC")
        elif a.detector == "ratio":
            lines.append(f"{ev['downstream']} {ev['downstream_event']} for {ev['upstream']} {ev['upstream_event']} "
                         f"on stage {ev['stage']} (ratio {ev['ratio']:.2f} vs baseline {ev['baseline_ratio']:.2f}; "
                         f"about {ev['missing']} missing) from {t0} to {t1} UTC")
        elif a.detector == "kpi_funnel":
            lines.append(f"{ev['downstream_metric']} per {ev['upstream_metric']} on stage {ev['stage']} fell to "
                         f"{ev['ratio']:.3f} (baseline {ev['baseline_ratio']:.3f}; about {ev['missing']:.0f} "
                         f"{ev['downstream_metric']} missing) from {t0} to {t1} UTC")
        else:
            lines.append(f"{a.series} {'fell' if a.direction == 'down' else 'rose'} to {a.observed:.4g} "
                         f"(expected {a.expected:.4g}, robust z {a.score:.1f}) from {t0} to {t1} UTC")
    for s in incident.signatures[:3]:
        lines.append(f"log template '{s.template}': {s.count} events ({s.rate:.1f}/h vs {s.baseline_rate:.1f}/h baseline)")
    for c in incident.clusters:
        lines.append(f"{c.size} support tickets about '{c.label}' ({', '.join(c.top_terms[:4])})")
    return lines


def choose_citations(hits: list[Citation], category: str, index: RunbookIndex, k: int) -> list[Citation]:
    """Up to ``k`` retrieved passages, those from the runbook of ``category`` first."""
    same = [h for h in hits if index.category_of(h.document) == category]
    rest = [h for h in hits if h not in same]
    return (same + rest)[:k]


def assess(incident: Incident, index: RunbookIndex | None, risk: RiskReport, k: int = 3) -> Assessment:
    """Rule-based assessment: category by :func:`categorize`, confidence raised when the best
    retrieved runbook agrees, evidence lines, blast radius and citations."""
    category, confidence = categorize(incident.anomalies)
    citations: list[Citation] = []
    uncertainties = []
    if index is not None:
        hits = index.query(build_query(incident), k=max(k * 3, 8))
        citations = choose_citations(hits, category, index, k)
        if citations and index.category_of(citations[0].document) == category:
            confidence = min(confidence + 0.1, 0.95)
        elif citations:
            uncertainties.append(f"the best-matching runbook ({citations[0].document}) is not the {category} runbook")
    if incident.clusters:
        confidence = min(confidence + 0.05, 0.95)
    else:
        uncertainties.append("no support-ticket cluster corroborates this incident yet")
    aff = incident.affected
    stages, merchants = aff.get("stage", []), aff.get("merchant_id", [])
    scope = (f"stage(s) {', '.join(stages)}" if stages else "all stages") + (
        f", {len(merchants)} merchant(s)" if merchants else "")
    money = ""
    if risk.revenue_at_risk_per_hour:
        money = f"; about {risk.revenue_at_risk_per_hour:,.0f} {risk.currency}/h of revenue at risk"
    summary = (f"{incident.kind.value.capitalize()} failure: {incident.title} on {scope} from "
               f"{incident.first_seen:%Y-%m-%d %H:%M} to {incident.last_seen:%H:%M} UTC{money}.")
    return Assessment(
        summary=summary, root_cause=_ROOT_CAUSE[category], category=category, confidence=round(confidence, 2),
        evidence=_evidence_lines(incident),
        assumptions=["detector baselines (trailing windows before each anomaly) reflect normal behaviour"],
        uncertainties=uncertainties,
        blast_radius={k2: v for k2, v in aff.items() if k2 in ("stage", "merchant_id", "endpoint")},
        risk=risk, citations=citations, generated_by="rules",
    )


def _stage_frame(kpis: pd.DataFrame, stage: str) -> pd.DataFrame:
    rows = kpis[kpis["stage"] == stage] if "stage" in kpis else kpis
    return rows.pivot_table(index="ts", columns="metric", values="value", aggfunc="mean")


def risk_report(incident: Incident, kpis: pd.DataFrame, baseline: timedelta = timedelta(hours=24)) -> RiskReport:
    """Lost orders and revenue at risk over the incident span (see :class:`~opsloop.domain.RiskReport`).

    Needs the ``sessions``, ``orders`` and ``avg_order_value`` KPIs (per stage, or overall with stage
    ``all``). Lost orders = Σ sessions × baseline conversion − Σ orders over ``[first_seen, last_seen]``,
    where the baseline conversion is Σ orders / Σ sessions over the ``baseline`` before ``first_seen``.
    Revenue = lost orders × the baseline median average order value. The 95% interval treats observed
    orders as Poisson.
    """
    need = {C.METRIC_SESSIONS, C.METRIC_ORDERS, C.METRIC_AOV}
    if kpis.empty or not need <= set(kpis["metric"].unique()):
        return RiskReport(method="not computed: needs sessions, orders and avg_order_value KPIs")
    stages = incident.affected.get("stage") or ["all"]
    if "stage" not in kpis or not set(stages) <= set(kpis["stage"].dropna().unique()):
        stages = ["all"]
    start, end = pd.Timestamp(incident.first_seen), pd.Timestamp(incident.last_seen)
    b0 = start - pd.Timedelta(baseline)
    lost = observed_total = 0.0
    aov_values = []
    for stage in stages:
        f = _stage_frame(kpis, stage)
        if not need <= set(f.columns):
            continue
        base, span = f[(f.index >= b0) & (f.index < start)], f[(f.index >= start) & (f.index <= end)]
        if base[C.METRIC_SESSIONS].sum() <= 0 or span.empty:
            continue
        conv = base[C.METRIC_ORDERS].sum() / base[C.METRIC_SESSIONS].sum()
        expected = float(span[C.METRIC_SESSIONS].sum() * conv)
        observed = float(span[C.METRIC_ORDERS].sum())
        lost += expected - observed
        observed_total += observed
        aov_values.append(float(base[C.METRIC_AOV].median()))
    if not aov_values:
        return RiskReport(method="not computed: no baseline sessions before the incident")
    lost = max(lost, 0.0)
    aov = float(np.mean(aov_values))
    hours = max((end - start).total_seconds() / 3600.0, 1 / 60)
    half = 1.96 * np.sqrt(max(observed_total, 1.0))
    revenue = lost * aov
    return RiskReport(
        lost_orders=round(lost, 1), revenue_at_risk_window=round(revenue, 2),
        revenue_at_risk_per_hour=round(revenue / hours, 2), revenue_at_risk_per_day=round(revenue / hours * 24, 2),
        interval=(round(max(lost - half, 0.0) * aov, 2), round((lost + half) * aov, 2)),
        method=(f"lost orders = sessions x baseline conversion ({baseline.total_seconds() / 3600:.0f} h before) "
                f"- observed orders over the incident span on stage(s) {', '.join(stages)}; revenue = lost orders x "
                f"baseline average order value ({aov:.2f}); per hour over {hours:.2f} h, per day = per hour x 24; "
                f"95% interval from Poisson noise of observed orders"),
    )
