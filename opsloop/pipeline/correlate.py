"""Reason stage, part 2: correlate anomalies and ticket clusters into incident candidates.

Two anomalies belong to one incident when their spans overlap (within ``tolerance``) and, for each
of the domain pack's ``correlation_labels`` (e.g. a deployment stage), they share a value or one of
them is not specific to a value. Connected components of that relation
(union-find) are the candidates. A ticket cluster joins the candidate whose span (extended by
``ticket_lag``, since customers write after the fact) holds most of its tickets. The fingerprint
hashes what failed (kind, detector and series of the primary anomaly), never when, so a recurring
problem maps to the same fingerprint across cycles; the direction is part of what failed (a drop
and a rise of one series are different problems).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pandas as pd

from opsloop.data.contracts import affected
from opsloop.detectors.severity import worst
from opsloop.domain import (
    KIND_PRECEDENCE,
    Anomaly,
    Incident,
    Severity,
    TicketCluster,
)

ALL = "all"
#: Series labels of the logs contract that also describe the blast radius.
CONTRACT_LABELS = ("endpoint",)


def scope_of(a: Anomaly, label: str) -> set[str]:
    """Values of ``label`` an anomaly is specific to (empty: not specific, e.g. an overall KPI)."""
    values = set(a.evidence.affected.get(label, []))
    own = a.evidence.labels.get(label)
    if own and own != ALL:
        values.add(own)
    return values


def _linked(a: Anomaly, b: Anomaly, tolerance: timedelta, labels: Sequence[str]) -> bool:
    if a.start - tolerance > b.end or b.start - tolerance > a.end:
        return False
    for label in labels:
        sa, sb = scope_of(a, label), scope_of(b, label)
        if sa and sb and not sa & sb:
            return False
    return True


def _components(anomalies: list[Anomaly], tolerance: timedelta, labels: Sequence[str]) -> list[list[Anomaly]]:
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
            if _linked(anomalies[i], anomalies[j], tolerance, labels):
                parent[find(j)] = find(i)
    groups: dict[int, list[Anomaly]] = {}
    for i in order:
        groups.setdefault(find(i), []).append(anomalies[i])
    return list(groups.values())


def primary(group: list[Anomaly]) -> Anomaly:
    """The anomaly that names an incident: worst kind, then earliest, then strongest; system signals
    before corroborating ones (ticket surges: customers write about many failures in the same words,
    so a surge's kind and theme are weaker evidence than a system signal)."""
    group = [a for a in group if not a.evidence.corroborating] or group
    return min(group, key=lambda a: (-KIND_PRECEDENCE[a.kind], a.start, -a.score, str(a.series)))


def _affected(group: list[Anomaly], clusters: list[TicketCluster], labels: Sequence[str]) -> dict[str, list[str]]:
    """The blast radius: the anomalies' affected labels, their own series labels that are blast
    labels (``labels`` and :data:`CONTRACT_LABELS`), and the ticket clusters' labels."""
    out: dict[str, set[str]] = {}
    for a in group:
        for k, vals in a.evidence.affected.items():
            out.setdefault(k, set()).update(vals)
        for k, v in a.evidence.labels.items():
            if (k in labels or k in CONTRACT_LABELS) and v and v != ALL:
                out.setdefault(k, set()).add(v)
    for c in clusters:
        for k, vals in c.affected.items():
            out.setdefault(k, set()).update(vals)
    return {k: sorted(v) for k, v in sorted(out.items())}


def _slice(c: TicketCluster, rows: pd.DataFrame, labels: Sequence[str]) -> TicketCluster:
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
        "last_seen": rows["created_at"].max().to_pydatetime(), "affected": affected(rows, labels),
        "ticket_ids": sorted(ids),
    })


def attach_clusters(
    groups: list[list[Anomaly]], clusters: list[TicketCluster], tickets: pd.DataFrame, ticket_lag: timedelta,
    labels: Sequence[str] = (), min_tickets: int = 3, min_burst: float = 5.0,
) -> dict[int, list[TicketCluster]]:
    """Map group index → the ticket themes that burst during that group's span.

    A theme (cluster) may span days and several incidents ("the app keeps failing" complaints recur). It is
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
                out.setdefault(gi, []).append(_slice(c, rows[inside.to_numpy()].reset_index(drop=True), labels))
    return out


def correlate(
    anomalies: list[Anomaly], clusters: list[TicketCluster], tickets: pd.DataFrame,
    labels: Sequence[str] = (), correlation_labels: Sequence[str] = (),
    tolerance: timedelta = timedelta(minutes=30), ticket_lag: timedelta = timedelta(hours=3),
) -> list[Incident]:
    """Incident candidates (ids not yet assigned) from anomalies and clusters.

    ``labels``: the domain pack's blast-radius labels; ``correlation_labels``: the labels two
    anomalies must agree on (see the module docstring). A lone anomaly of low severity with no
    ticket cluster is not an incident: it stays visible as an anomaly count in the cycle report but
    pages nobody.
    """
    groups = _components(anomalies, tolerance, correlation_labels)
    by_group = attach_clusters(groups, clusters, tickets, ticket_lag, labels)
    incidents = []
    for gi, group in enumerate(groups):
        cl = by_group.get(gi, [])
        if len(group) == 1 and group[0].severity == Severity.low and not cl:
            continue
        incidents.append(incident_of(group, cl, labels))
    return sorted(incidents, key=lambda i: i.first_seen)


def continues(stored: Incident, candidate: Incident, correlation_labels: Sequence[str] = (),
              tolerance: timedelta = timedelta(minutes=30)) -> bool:
    """Whether ``candidate`` (from a later cycle) is more of ``stored``: an anomaly of each would
    have joined one group had a single cycle seen both (:func:`_linked`). A window boundary then
    does not split what one cycle over the whole span would call one incident."""
    return any(_linked(a, b, tolerance, correlation_labels) for a in stored.anomalies for b in candidate.anomalies)


def incident_of(group: list[Anomaly], clusters: list[TicketCluster], labels: Sequence[str] = ()) -> Incident:
    """The incident candidate of a (non-empty) group of anomalies and its ticket clusters: named by
    its :func:`primary` anomaly, fingerprinted by what failed, spanning its anomalies, as severe as
    the worst of them."""
    p = primary(group)
    fingerprint = p.key()
    return Incident(
        id=f"cand-{fingerprint}", fingerprint=fingerprint, kind=p.kind,
        first_seen=min(a.start for a in group), last_seen=max(a.end for a in group),
        severity=worst([a.severity for a in group]), title=p.headline(),
        anomalies=sorted(group, key=lambda a: (a.start, str(a.series))), clusters=clusters,
        affected=_affected(group, clusters, labels),
    )
