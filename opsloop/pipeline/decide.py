"""Decide stage: retrieve runbook passages, assess each incident by rules, estimate revenue at risk.

Facts before prose: every number in an assessment is computed here from the anomalies' evidence and
the KPI frame; the narrative only arranges them.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd

from opsloop.detectors.severity import at_least, at_most
from opsloop.domain import (
    SEVERITY_RANK,
    Assessment,
    Citation,
    Incident,
    MitigationStep,
    RiskReport,
    SectionKind,
    Severity,
)
from opsloop.packs.model import Pack, RevenueSpec, SeverityRules
from opsloop.pipeline.correlate import CONTRACT_LABELS
from opsloop.pipeline.hypotheses import rank
from opsloop.rag.index import RunbookIndex
from opsloop.rag.sections import steps


def build_query(incident: Incident) -> str:
    """Retrieval query from the incident's evidence: each anomaly's query terms (headline, and e.g.
    endpoint, status and an example line), log templates and ticket-cluster terms."""
    parts = [a.headline() for a in incident.anomalies[:6]]
    for a in incident.anomalies[:6]:
        parts.extend(a.evidence.query_terms())
    parts.extend(s.template for s in incident.signatures[:3])
    for c in incident.clusters[:3]:
        parts.append(" ".join(c.top_terms) + ". " + c.label)
    return "\n".join(dict.fromkeys(p for p in parts if p))


def _evidence_lines(incident: Incident) -> list[str]:
    lines = [a.line() for a in incident.anomalies]
    for s in incident.signatures[:3]:
        lines.append(f"log template '{s.template}': {s.count} events ({s.rate:.1f}/h vs {s.baseline_rate:.1f}/h baseline)")
    for c in incident.clusters:
        lines.append(f"{c.size} support tickets about '{c.label}' ({', '.join(c.top_terms[:4])})")
    return lines


def choose_citations(hits: list[Citation], category: str, index: RunbookIndex, k: int,
                     mitigation: list[Citation] | None = None) -> list[Citation]:
    """Up to ``k`` retrieved passages, those from the runbook of ``category`` first; the first
    ``mitigation`` passage (the one the quoted steps come from) is always among them."""
    same = [h for h in hits if index.category_of(h.document) == category]
    rest = [h for h in hits if h not in same]
    chosen = (same + rest)[:k]
    if mitigation and mitigation[0].chunk_id not in {c.chunk_id for c in chosen}:
        chosen = [*chosen[: max(k - 1, 0)], mitigation[0]]
    return chosen


def mitigation_passages(index: RunbookIndex, category: str, hits: list[Citation]) -> list[Citation]:
    """The mitigation passages of ``category``'s runbook (the first document naming it), else of
    the best retrieved document that has a mitigation section; empty when none has one."""
    docs = [*index.documents_of(category), *dict.fromkeys(h.document for h in hits)]
    for doc in dict.fromkeys(docs):
        found = index.passages(doc, SectionKind.mitigation)
        if found:
            return found
    return []


def mitigation_steps(passages: list[Citation], limit: int = 6) -> list[MitigationStep]:
    """Up to ``limit`` steps quoted from ``passages`` (:func:`opsloop.rag.sections.steps`), in order."""
    out: list[MitigationStep] = []
    for p in passages:
        for text in steps(p.text, limit=limit):
            out.append(MitigationStep(text=text, document=p.document, section=p.section, chunk_id=p.chunk_id))
    return out[:limit]


def _scope(affected: dict[str, list[str]], labels: list[str]) -> str:
    """`` on region eu, 3 customer values`` from the blast-radius labels (empty if none)."""
    parts = []
    for label in labels:
        vals = affected.get(label, [])
        if 0 < len(vals) <= 3:
            parts.append(f"{label} {', '.join(vals)}")
        elif vals:
            parts.append(f"{len(vals)} {label} values")
    return f" on {'; '.join(parts)}" if parts else ""


def assess(incident: Incident, index: RunbookIndex | None, risk: RiskReport, pack: Pack, k: int = 3) -> Assessment:
    """Rule-based assessment: ranked hypotheses (:func:`opsloop.pipeline.hypotheses.rank`), the top
    one's category, confidence and root-cause text, evidence lines (each with its detector's unit),
    mitigation steps quoted from its runbook, blast radius and citations (the mitigation passage
    among them)."""
    ranked = index.query(build_query(incident), k=max(k * 3, 30)) if index is not None else []
    hits = ranked[: max(k * 3, 8)]
    hypotheses, insufficient = rank(incident, pack, index, ranked)
    top = hypotheses[0]
    cat = next(c for c in pack.categories if c.name == top.category)
    category, confidence = cat.name, top.confidence
    citations: list[Citation] = []
    mitigation: list[MitigationStep] = []
    uncertainties = []
    if index is not None:
        passages = mitigation_passages(index, category, hits)
        mitigation = mitigation_steps(passages)
        citations = choose_citations(hits, category, index, k, passages)
        if hits and index.category_of(hits[0].document) != category:
            uncertainties.append(f"the best-matching runbook ({hits[0].document}) is not the {category} runbook")
        if not mitigation:
            uncertainties.append("no retrieved runbook has a mitigation section to quote")
    if not incident.clusters:
        uncertainties.append("no support-ticket cluster corroborates this incident yet")
    if insufficient and len(hypotheses) > 1:
        uncertainties.append(f"insufficient evidence to tell {hypotheses[0].title} "
                             f"({hypotheses[0].confidence:.2f}) from {hypotheses[1].title} ({hypotheses[1].confidence:.2f})")
    elif insufficient:
        uncertainties.append("insufficient evidence: no category's rules match the anomalies")
    uncertainties.extend(f"against {top.title}: {c}" for c in top.contrary[:2])
    money = ""
    if risk.revenue_at_risk_per_hour:
        money = f"; about {risk.revenue_at_risk_per_hour:,.0f} {risk.currency}/h of revenue at risk"
    summary = (f"{cat.title}: {incident.title}{_scope(incident.affected, pack.labels)} from "
               f"{incident.first_seen:%Y-%m-%d %H:%M} to {incident.last_seen:%H:%M} UTC{money}.")
    root_cause = cat.root_cause
    if insufficient and len(hypotheses) > 1:
        root_cause = (f"Insufficient evidence to choose: {hypotheses[0].title} or {hypotheses[1].title}. "
                      f"{cat.root_cause}")
    blast = [*pack.labels, *CONTRACT_LABELS]
    return Assessment(
        summary=summary, root_cause=root_cause, category=category, confidence=round(confidence, 2),
        evidence=_evidence_lines(incident),
        assumptions=["detector baselines (trailing windows before each anomaly) reflect normal behaviour"],
        uncertainties=uncertainties,
        blast_radius={k2: v for k2, v in incident.affected.items() if k2 in blast},
        risk=risk, citations=citations, hypotheses=hypotheses, insufficient_evidence=insufficient,
        mitigation=mitigation, generated_by="rules",
    )


def incident_severity(incident: Incident, risk: RiskReport, rules: SeverityRules) -> Severity:
    """The incident's severity under the pack's rules: its worst anomaly's (already capped at
    ``evidence_max``), at most ``single_point_max`` when it is one single-point anomaly, raised to
    the highest ``revenue_per_hour`` step its revenue at risk per hour reaches."""
    sev = incident.severity
    if len(incident.anomalies) == 1 and incident.anomalies[0].start == incident.anomalies[0].end:
        sev = at_most(sev, rules.single_point_max)
    per_hour = risk.revenue_at_risk_per_hour or 0.0
    for level, amount in sorted(rules.revenue_per_hour.items(), key=lambda kv: SEVERITY_RANK[kv[0]]):
        if per_hour >= amount:
            sev = at_least(sev, level)
    return sev


def _group_frame(kpis: pd.DataFrame, by: str | None, value: str) -> pd.DataFrame:
    rows = kpis[kpis[by] == value] if by and by in kpis else kpis
    return rows.pivot_table(index="ts", columns="metric", values="value", aggfunc="mean")


def risk_report(incident: Incident, kpis: pd.DataFrame, model: RevenueSpec | None) -> RiskReport:
    """Lost orders and revenue at risk over the incident span (see :class:`~opsloop.domain.RiskReport`)
    under the pack's revenue ``model``; no model, no money figure.

    Needs the model's sessions, orders and order-value KPIs (per value of its ``group_by`` label,
    or overall with value ``all``). Lost orders = Σ sessions × baseline conversion − Σ orders over
    ``[first_seen, last_seen]``, where the baseline conversion is Σ orders / Σ sessions over the
    ``baseline_hours`` before ``first_seen``. Revenue = lost orders × the baseline median order
    value, in the model's currency. The 95% interval treats observed orders as Poisson.
    """
    if model is None:
        return RiskReport(currency="", method="not computed: the domain pack has no revenue model")
    sessions, orders, value = model.sessions, model.orders, model.order_value
    need = {sessions, orders, value}
    if kpis.empty or not need <= set(kpis["metric"].unique()):
        return RiskReport(currency=model.currency,
                          method=f"not computed: needs the {sessions}, {orders} and {value} KPIs")
    by = model.group_by
    groups = incident.affected.get(by, []) if by else []
    if not groups or by not in kpis or not set(groups) <= set(kpis[by].dropna().unique()):
        groups = ["all"]
    start, end = pd.Timestamp(incident.first_seen), pd.Timestamp(incident.last_seen)
    baseline = timedelta(hours=model.baseline_hours)
    b0 = start - pd.Timedelta(baseline)
    lost = observed_total = 0.0
    aov_values = []
    for group in groups:
        f = _group_frame(kpis, by, group)
        if not need <= set(f.columns):
            continue
        base, span = f[(f.index >= b0) & (f.index < start)], f[(f.index >= start) & (f.index <= end)]
        if base[sessions].sum() <= 0 or span.empty:
            continue
        conv = base[orders].sum() / base[sessions].sum()
        expected = float(span[sessions].sum() * conv)
        observed = float(span[orders].sum())
        lost += expected - observed
        observed_total += observed
        aov_values.append(float(base[value].median()))
    if not aov_values:
        return RiskReport(currency=model.currency, method=f"not computed: no baseline {sessions} before the incident")
    lost = max(lost, 0.0)
    aov = float(np.mean(aov_values))
    hours = max((end - start).total_seconds() / 3600.0, 1 / 60)
    half = 1.96 * np.sqrt(max(observed_total, 1.0))
    revenue = lost * aov
    where = f" on {by} {', '.join(groups)}" if by else ""
    return RiskReport(
        lost_orders=round(lost, 1), revenue_at_risk_window=round(revenue, 2),
        revenue_at_risk_per_hour=round(revenue / hours, 2), revenue_at_risk_per_day=round(revenue / hours * 24, 2),
        interval=(round(max(lost - half, 0.0) * aov, 2), round((lost + half) * aov, 2)), currency=model.currency,
        method=(f"lost {orders} = {sessions} x baseline conversion ({model.baseline_hours:.0f} h before) - observed "
                f"{orders} over the incident span{where}; revenue = lost {orders} x baseline {value} ({aov:.2f}); "
                f"per hour over {hours:.2f} h, per day = per hour x 24; 95% interval from Poisson noise of observed "
                f"{orders}"),
    )
