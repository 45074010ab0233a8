"""Ranked hypotheses for an incident: which of the domain pack's categories explains its evidence.

Each category of the pack is a hypothesis. Evidence items for and against it are read from the
incident, never from a model:

* **anomalies** — one that matches one of the category's rules supports it (weight 1). One whose
  evidence type the category's rules are about but that fails a condition argues against it
  (``endpoint POST /v1/pay does not contain 'webhook'``, weight 1). One that also matches the rule
  of a category listed earlier in the pack (the pack orders categories from specific to general)
  argues against the later, more general one (weight 1). One that matches no rule of this category
  but does match another's is left unexplained by it: against it (weight 0.5) when it began no
  later than the category's own evidence, a likely consequence (listed, weight 0) when it began
  after (a cause precedes its effects: a conversion drop that follows an error spike);
* **runbooks** — the category's runbook among the three best retrieved documents supports it
  (weight 0.5 when it is the best, 0.25 as second or third);
* **tickets and log templates** — each ticket cluster (its label and terms) and log template is
  looked up in the runbook index on its own: when the best match is the category's runbook, it
  supports it (weight 0.5). This is how tickets count as a signal.

The confidence of a hypothesis is its category's base confidence from the pack, raised by 0.1 when
its runbook is the best retrieved one and by 0.05 when a ticket cluster corroborates the incident
(capped at 0.95), times ``S / (S + C)`` for supporting weight ``S`` and contrary weight ``C``. With
nothing against it this is exactly the confidence the rules have always given. Hypotheses are
ranked by confidence, ties in the pack's order; at most three with support are kept. A category
that only a runbook or tickets point at (no anomaly matches its rules) is an alternative, with
"no anomaly matches its rules" against it (weight 1). The evidence
is *insufficient* when no category's rules match (only the pack's fallback remains) or the top two
are within :data:`TIE` of each other.

This is the decision-support reading of "differential diagnosis" (rank candidate causes by the
findings that support and refute each), with rules as findings; it is ours, not a published method.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from opsloop.domain import Anomaly, Citation, Hypothesis, Incident
from opsloop.packs.model import CategorySpec, Pack
from opsloop.rag.index import RunbookIndex

#: Confidence gap under which the top two hypotheses are not told apart.
TIE = 0.05
#: At most this many hypotheses are reported.
MAX_HYPOTHESES = 3


@dataclass
class _Tally:
    cat: CategorySpec
    order: int
    rule_support: int = 0
    support: list[tuple[str, float]] = field(default_factory=list)
    contrary: list[tuple[str, float]] = field(default_factory=list)
    runbook_top: bool = False
    unexplained: list[Anomaly] = field(default_factory=list)

    def weight(self, items: list[tuple[str, float]]) -> float:
        return sum(w for _, w in items)


def _corroboration(incident: Incident, index: RunbookIndex | None) -> list[tuple[str, str | None, str]]:
    """(evidence sentence, category of the best-matching runbook, document) per ticket cluster and
    log template of ``incident`` (at most three clusters and two templates)."""
    if index is None:
        return []
    index.prime([f"{c.label}. {' '.join(c.top_terms)}" for c in incident.clusters[:3]]
                + [s.template for s in incident.signatures[:2]])
    out = []
    for c in incident.clusters[:3]:
        hits = index.query_documents(f"{c.label}. {' '.join(c.top_terms)}", k=1)
        if hits:
            doc = hits[0].document
            out.append(((f"{c.size} support tickets about '{c.label}' read like the "
                        f"'{index.title_of(doc)}' runbook"), index.category_of(doc), doc))
    for s in incident.signatures[:2]:
        hits = index.query_documents(s.template, k=1)
        if hits:
            doc = hits[0].document
            out.append(((f"log template '{s.template[:80]}' ({s.count} events) reads like the "
                        f"'{index.title_of(doc)}' runbook"), index.category_of(doc), doc))
    return out


def rank(incident: Incident, pack: Pack, index: RunbookIndex | None,
         hits: list[Citation]) -> tuple[list[Hypothesis], bool]:
    """The ranked hypotheses for ``incident`` and whether the evidence is insufficient.

    ``hits``: passages retrieved for the incident, best first (their documents' categories count as
    runbook support). Returns at most :data:`MAX_HYPOTHESES` hypotheses, best first; the pack's
    fallback category (no rules) is the one hypothesis when no other has rule support.
    """
    ruled = [c for c in pack.categories if c.rules]
    tallies = {c.name: _Tally(c, i) for i, c in enumerate(pack.categories)}
    facts = [(a, a.evidence.attributes()) for a in incident.anomalies]
    for a, f in facts:
        matched = [c.name for c in ruled if any(r.matches(f) for r in c.rules)]
        for i, cat in enumerate(ruled):
            t = tallies[cat.name]
            if cat.name in matched:
                t.rule_support += 1
                t.support.append((a.line(), 1.0))
                earlier = next((m for m in matched[: matched.index(cat.name)]), None)
                if earlier is not None:
                    spec = tallies[earlier].cat
                    t.contrary.append((f"{a.headline()} also fits the more specific '{spec.title}' rule", 1.0))
                continue
            near = [r.mismatch(f) for r in cat.rules if r.evidence_fits(f) and r.evidence is not None]
            near = [m for m in near if m]
            if near:
                t.contrary.append((f"{a.headline()}: {near[0]}", 1.0))
            elif matched:
                t.unexplained.append(a)
    for t in tallies.values():
        onset = min((a.start for a, f in facts if any(r.matches(f) for r in t.cat.rules)), default=None)
        for a in t.unexplained:
            if onset is not None and a.start > onset:
                t.support.append((f"{a.headline()} began after it (a likely consequence)", 0.0))
            else:
                t.contrary.append((f"{a.headline()} is not explained by it", 0.5))
    if index is not None:
        docs = list(dict.fromkeys(h.document for h in hits))[:3]
        seen: set[str] = set()
        for rank_, doc in enumerate(docs):
            cat = index.category_of(doc)
            if cat in tallies and cat not in seen:
                seen.add(cat)
                t = tallies[cat]
                t.runbook_top = rank_ == 0
                where = "best" if rank_ == 0 else f"#{rank_ + 1}"
                t.support.append((f"the '{index.title_of(doc)}' runbook is the {where} retrieved match",
                                  0.5 if rank_ == 0 else 0.25))
    for text, cat, _doc in _corroboration(incident, index):
        if cat in tallies:
            tallies[cat].support.append((text, 0.5))
    fallback = tallies[pack.fallback.name]
    if not any(t.rule_support for t in tallies.values()):
        fallback.support.insert(0, ("no more specific failure signature matched any anomaly", 1.0))
        fallback.rule_support = 1
    corroborated = bool(incident.clusters)
    scored = []
    for t in tallies.values():
        if (t is fallback and not t.rule_support) or not t.support:
            continue
        if not t.rule_support:  # a runbook or tickets point at it, no anomaly does: an alternative
            t.contrary.insert(0, ("no anomaly matches its rules", 1.0))
        s, c = t.weight(t.support), t.weight(t.contrary)
        base = t.cat.confidence + (0.1 if t.runbook_top else 0.0) + (0.05 if corroborated else 0.0)
        conf = min(base, 0.95) * s / (s + c) if s > 0 else 0.0
        scored.append((round(conf, 2), t))
    scored.sort(key=lambda x: (-x[0], x[1].order))
    out = [Hypothesis(category=t.cat.name, title=t.cat.title, confidence=conf, explanation=t.cat.root_cause,
                      supporting=[s for s, _ in t.support][:6], contrary=[c for c, _ in t.contrary][:6])
           for conf, t in scored[:MAX_HYPOTHESES]]
    insufficient = (not out or out[0].category == pack.fallback.name
                    or (len(out) > 1 and out[0].confidence - out[1].confidence < TIE))
    return out, insufficient
