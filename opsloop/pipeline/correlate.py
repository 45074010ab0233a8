"""Reason stage, part 2: correlate anomalies and ticket clusters into incident candidates.

Two anomalies belong to one incident when their spans overlap (within ``tolerance``) and they share
a stage, or one of them is not specific to a stage. Connected components of that relation
(union-find) are the candidates. A ticket cluster joins the candidate whose span (extended by
``ticket_lag``, since customers write after the fact) holds most of its tickets. The fingerprint
hashes what failed (kind, detector and series of the primary anomaly), never when, so a recurring
problem maps to the same fingerprint across cycles.
"""

from __future__ import annotations

from datetime import timedelta

import pandas as pd

from opsloop.data.contracts import affected
from opsloop.domain import (
    KIND_PRECEDENCE,
    SEVERITY_RANK,
    Anomaly,
    Incident,
    Severity,
    TicketCluster,
    stable_hash,
)


def stages_of(a: Anomaly) -> set[str]:
    """Stages an anomaly is specific to (empty: global, e.g. an overall KPI or an endpoint)."""
    stages = set(a.evidence.get("affected", {}).get("stage", []))
    label = a.series.label_dict.get("stage")
    if label and label != "all":
        stages.add(label)
    return stages


def _linked(a: Anomaly, b: Anomaly, tolerance: timedelta) -> bool:
    if a.start - tolerance > b.end or b.start - tolerance > a.end:
        return False
    sa, sb = stages_of(a), stages_of(b)
    return not sa or not sb or bool(sa & sb)


def _components(anomalies: list[Anomaly], tolerance: timedelta) -> list[list[Anomaly]]:
    parent = list(range(len(anomalies)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = sorted(range(len(anomalies)), key=lambda i: anomalies[i].start)
    for pos, i in enumerate(order):  # sweep: only anomalies starting before i's end can link
        for j in order[pos + 1 :]:
            if anomalies[j].start - tolerance > anomalies[i].end:
                break
            if _linked(anomalies[i], anomalies[j], tolerance):
                parent[find(j)] = find(i)
    groups: dict[int, list[Anomaly]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(anomalies[i])
    return list(groups.values())


#: Detectors whose anomalies corroborate an incident but never name it: customers write about many
#: failures in the same words, so a ticket surge's kind and theme are weaker evidence than a system signal.
CORROBORATING = ("ticket_surge",)


def primary(group: list[Anomaly]) -> Anomaly:
    """The anomaly that names an incident: worst kind, then earliest, then strongest; system signals
    before :data:`CORROBORATING` ones."""
    group = [a for a in group if a.detector not in CORROBORATING] or group
    return min(group, key=lambda a: (-KIND_PRECEDENCE[a.kind], a.start, -a.score, str(a.series)))


def describe(a: Anomaly) -> str:
    """One-line headline of an anomaly."""
    ev, labels = a.evidence, a.series.label_dict
    where = f" ({labels['stage']})" if labels.get("stage") and labels["stage"] != "all" else ""
    if a.detector == "error_rate":
        return f"HTTP {ev.get('status')} spike on {ev.get('endpoint')}"
    if a.detector == "ratio":
        return f"{ev.get('downstream_event')} missing after {ev.get('upstream_event')}{where}"
    if a.detector == "kpi_funnel":
        return f"conversion drop: {ev.get('downstream_metric')} per {ev.get('upstream_metric')}{where}"
    return f"{a.series.metric} {'drop' if a.direction == 'down' else 'rise'}{where}"


def _affected(group: list[Anomaly], clusters: list[TicketCluster]) -> dict[str, list[str]]:
    out: dict[str, set[str]] = {}
    for a in group:
        for k, vals in a.evidence.get("affected", {}).items():
            out.setdefault(k, set()).update(vals)
        for k in ("stage", "endpoint"):
            v = a.series.label_dict.get(k)
            if v and v != "all":
                out.setdefault(k, set()).add(v)
    for c in clusters:
        for k, vals in c.affected.items():
            out.setdefault(k, set()).update(vals)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _slice(c: TicketCluster, rows: pd.DataFrame) -> TicketCluster:
    """The part of theme ``c`` made of ``rows`` (its tickets inside one incident's span)."""
    ids = rows["id"].astype(str)
    examples = [e for e in c.examples if e["id"] in set(ids)]
    for _, r in rows.sort_values("created_at").iterrows():
        if len(examples) >= 3:
            break
        if all(e["id"] != str(r["id"]) for e in examples):
            examples.append({"id": str(r["id"]), "subject": str(r["subject"]), "created_at": r["created_at"].isoformat()})
    return c.model_copy(update={
        "size": len(rows), "examples": examples, "first_seen": rows["created_at"].min().to_pydatetime(),
        "last_seen": rows["created_at"].max().to_pydatetime(), "affected": affected(rows), "ticket_ids": sorted(ids),
    })


def attach_clusters(
    groups: list[list[Anomaly]], clusters: list[TicketCluster], tickets: pd.DataFrame, ticket_lag: timedelta,
    min_tickets: int = 3, min_burst: float = 5.0,
) -> dict[int, list[TicketCluster]]:
    """Map group index → the ticket themes that burst during that group's span.

    A theme (cluster) may span days and several incidents ("checkout failing" complaints recur). It is
    attached to an anomaly group when at least ``min_tickets`` of its tickets fall in the group's span
    extended by ``ticket_lag`` (customers write after the fact) and its ticket rate there is at least
    ``min_burst`` times its rate elsewhere in the window. What is attached is the slice of the theme
    inside the span, so counts and examples are this incident's.
    """
    out: dict[int, list[TicketCluster]] = {}
    if not clusters or tickets.empty:
        return out
    by_id = tickets.assign(_id=tickets["id"].astype(str)).set_index("_id")
    total_hours = max((tickets["created_at"].max() - tickets["created_at"].min()).total_seconds() / 3600.0, 1.0)
    for c in clusters:
        rows = by_id.reindex(c.ticket_ids).dropna(subset=["created_at"])
        times = rows["created_at"]
        for gi, g in enumerate(groups):
            start, end = min(a.start for a in g), max(a.end for a in g) + ticket_lag
            inside = (times >= start) & (times <= end)
            n_in = int(inside.sum())
            if n_in < min_tickets:
                continue
            span_h = max((end - start).total_seconds() / 3600.0, 0.25)
            out_rate = (len(times) - n_in) / max(total_hours - span_h, span_h)
            if n_in / span_h >= min_burst * max(out_rate, 1.0 / total_hours):
                out.setdefault(gi, []).append(_slice(c, rows[inside.to_numpy()].reset_index(drop=True)))
    return out


def correlate(
    anomalies: list[Anomaly], clusters: list[TicketCluster], tickets: pd.DataFrame,
    tolerance: timedelta = timedelta(minutes=30), ticket_lag: timedelta = timedelta(hours=3),
) -> list[Incident]:
    """Incident candidates (ids not yet assigned) from anomalies and clusters.

    A lone anomaly of low severity with no ticket cluster is not an incident: it stays visible as an
    anomaly count in the cycle report but pages nobody.
    """
    groups = _components(anomalies, tolerance)
    by_group = attach_clusters(groups, clusters, tickets, ticket_lag)
    incidents = []
    for gi, group in enumerate(groups):
        cl = by_group.get(gi, [])
        worst = max((a.severity for a in group), key=SEVERITY_RANK.__getitem__)
        if len(group) == 1 and worst == Severity.low and not cl:
            continue
        p = primary(group)
        fingerprint = stable_hash([p.kind.value, p.detector, str(p.series)], 16)
        incidents.append(Incident(
            id=f"cand-{fingerprint}", fingerprint=fingerprint, kind=p.kind,
            first_seen=min(a.start for a in group), last_seen=max(a.end for a in group), severity=worst,
            title=describe(p), anomalies=sorted(group, key=lambda a: (a.start, str(a.series))), clusters=cl,
            affected=_affected(group, cl),
        ))
    return sorted(incidents, key=lambda i: i.first_seen)
