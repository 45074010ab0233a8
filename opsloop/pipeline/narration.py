"""Narration queue: the LLM writes its narrative *after* a cycle has stored its incidents and actions.

A cycle stores each incident with its rule-based assessment; when a model is configured the
assessment's ``narrative`` is ``pending``, and that is the queue (it lives in the store, so any
process can drain it: the cycle's own process right after its commit, ``opsloop narrate``, the
scheduler after each window). A slow or absent model therefore never delays detection, paging or
the approval gate.

:func:`narrate_pending` takes the pending incidents, asks the model *outside* any transaction
(:func:`opsloop.llm.narrate`, answers cached in the store by incident fingerprint + evidence hash),
then writes each result in its own short transaction, and only if the stored assessment is still
the one it narrated (a newer cycle that re-assessed the incident meanwhile wins; its assessment is
pending again and is narrated next).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from opsloop.config import Settings
from opsloop.domain import Assessment, Incident, IncidentStatus, Narrative
from opsloop.llm import llm_from_settings, narrate
from opsloop.llm.base import LLM
from opsloop.packs import load_pack
from opsloop.packs.model import Pack
from opsloop.store import repository as repo
from opsloop.store.models import IncidentRow
from opsloop.store.session import Store
from opsloop.store.state import StoreLLMCache


@dataclass
class NarrationReport:
    """What one pass over the queue did: counts (``llm_calls``, ``llm_cache_hits``,
    ``llm_validated``, ``llm_fallbacks``, ``narratives_superseded``), one line per fallback
    (``degradations``) and its wall time in seconds."""

    counts: dict[str, int] = field(default_factory=dict)
    degradations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add(self, key: str, n: int = 1) -> None:
        self.counts[key] = self.counts.get(key, 0) + n


def pending(session: Session, incident_ids: list[str] | None = None) -> list[Incident]:
    """Stored incidents whose assessment waits for its narrative (of ``incident_ids`` only, when
    given): open ones before resolved ones, most recently updated first."""
    resolved = IncidentRow.status == IncidentStatus.resolved.value
    q = select(IncidentRow).order_by(resolved, IncidentRow.updated_at.desc())
    if incident_ids is not None:
        q = q.where(IncidentRow.id.in_(incident_ids))
    out = []
    for row in session.execute(q).scalars():
        a = (row.data or {}).get("assessment") or {}
        if a.get("narrative") == Narrative.pending.value:
            out.append(repo.incident_from_row(row))
    return out


def narrate_pending(store: Store, settings: Settings, pack: Pack | None = None,
                    incident_ids: list[str] | None = None, llm: LLM | None = None,
                    budget_seconds: float | None = None) -> NarrationReport:
    """Narrate the pending incidents (``incident_ids`` only, when given) with ``llm`` (default: the
    configured backend; none configured: nothing to do) and store the results.

    ``budget_seconds``: stop taking new incidents once this much time has passed (what is left
    stays pending for the next pass). Never raises for model trouble (each incident falls back to
    the rules with its reason).
    """
    report = NarrationReport()
    t0 = time.perf_counter()
    llm = llm if llm is not None else llm_from_settings(settings.llm)
    if llm is None:
        return report
    pack = pack or load_pack(settings.pack)
    cache = StoreLLMCache(store)
    with store() as session:
        queue = pending(session, incident_ids)
    for inc in queue:
        if budget_seconds is not None and time.perf_counter() - t0 > budget_seconds:
            break
        rule = inc.assessment
        assert rule is not None  # pending() only returns assessed incidents
        assessment, meta = narrate(inc, rule, rule.citations, llm, cache, categories=pack.category_names,
                                   timeout=settings.llm.timeout)
        report.add("llm_cache_hits" if meta["cache_hit"] else "llm_calls")
        if meta["fallback_reason"]:
            report.add("llm_fallbacks")
            report.degradations.append(f"LLM narrative for '{inc.title}' not used: {meta['fallback_reason']}")
        else:
            report.add("llm_validated")
        with store.begin() as session:
            if not repo.set_assessment(session, inc.id, assessment, expected=rule):
                report.add("narratives_superseded")
    report.seconds = round(time.perf_counter() - t0, 4)
    return report


def queued(assessment: Assessment) -> Assessment:
    """``assessment`` marked as waiting for its narrative."""
    return assessment.model_copy(update={"narrative": Narrative.pending})
