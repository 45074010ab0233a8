"""``run_cycle``: one observe → reason → decide → act pass over already observed signals.

Stages only exchange typed values (DataFrames, domain models); this module wires them, times
them, records degradations, and stores the result deduplicated by fingerprint.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pandas as pd
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from opsloop.actions.catalog import load_catalog, propose_actions
from opsloop.actions.outbox import run_outbox
from opsloop.clustering.drain import LogTemplateMiners, detect_templates
from opsloop.clustering.embedders import get_embedder
from opsloop.clustering.logs import signatures
from opsloop.clustering.surges import ticket_surges
from opsloop.clustering.themes import CachedEmbedder
from opsloop.clustering.tickets import cluster
from opsloop.config import Settings
from opsloop.domain import (
    ActionStatus,
    Anomaly,
    Assessment,
    ContextNote,
    CycleReport,
    Incident,
    TicketCluster,
    Window,
)
from opsloop.packs import load_pack
from opsloop.packs.model import Pack
from opsloop.pipeline.correlate import continues, correlate
from opsloop.pipeline.decide import assess, incident_severity, risk_report
from opsloop.pipeline.detect import (
    DetectionSettings,
    detect_event_ratios,
    detect_kpi_funnels,
    detect_kpis,
    detect_log_errors,
)
from opsloop.pipeline.narration import queued
from opsloop.pipeline.observe import Signals
from opsloop.pipeline.paging import PagingJudge, page
from opsloop.pipeline.series import snapshot_series
from opsloop.rag.documents import load_default_documents, load_documents
from opsloop.rag.index import RunbookIndex
from opsloop.rag.store import open_knowledge_base
from opsloop.sources.alerts import alert_anomalies
from opsloop.store import repository as repo
from opsloop.store.session import Store
from opsloop.store.state import (
    StoreEmbeddingCache,
    load_drain_states,
    load_themes,
    save_drain_states,
    save_themes,
)

Progress = Callable[[str], None]


@dataclass
class CycleResult:
    """The stored cycle report and the incidents it created or updated (with their actions);
    ``index``: the runbook index the cycle retrieved from (``None`` if it needed none), for a runner
    to pass to its next cycle."""

    report: CycleReport
    incidents: list[Incident] = field(default_factory=list)
    anomalies: list[Anomaly] = field(default_factory=list)
    clusters: list[TicketCluster] = field(default_factory=list)
    index: RunbookIndex | None = None


class _Clock:
    def __init__(self, progress: Progress | None) -> None:
        self.seconds: dict[str, float] = {}
        self.progress = progress

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        if self.progress:
            self.progress(name)
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - t0, 3)


@dataclass
class LearnedState:
    """State learned in a cycle and stored with its results: ticket themes and drain3 snapshots,
    parameters chosen from the data, anomalies suppressed by maintenance windows."""

    themes: list = field(default_factory=list)
    drain: dict[str, bytes] = field(default_factory=dict)
    parameters: dict = field(default_factory=dict)
    maintenance_suppressed: int = 0


def reason(signals: Signals, settings: Settings, clock: _Clock | None = None, degradations: list[str] | None = None,
           store: Store | None = None, learned: LearnedState | None = None, pack: Pack | None = None,
           context: list[ContextNote] | None = None):
    """Anomalies, ticket clusters and the incident candidates that page for the window (nothing is
    stored), with what to watch, how to correlate and when to page from the domain ``pack``
    (default: ``settings.pack``). Candidates the paging rules (:mod:`opsloop.pipeline.paging`)
    demote are appended to ``context``; maintenance windows are the pack's and, with a ``store``,
    the stored ones overlapping the window.

    With a ``store``, embeddings come from its cache, ticket themes keep their ids from earlier
    cycles and log-template miners resume from their snapshots; the updated themes and snapshots are
    put in ``learned`` for the caller to store with the cycle. Returns ``(anomalies, clusters,
    candidates)``; appends to ``degradations`` what ran degraded.
    """
    clock = clock or _Clock(None)
    degradations = degradations if degradations is not None else []
    learned = learned if learned is not None else LearnedState()
    pack = pack or load_pack(settings.pack)
    ds = DetectionSettings(kpi_threshold=settings.detection.kpi_z_threshold,
                           count_threshold=settings.detection.count_threshold)
    w = signals.window
    known_themes, drain_states = [], {}
    windows = pack.paging.windows()
    if store is not None:
        with store() as s:
            known_themes, drain_states = load_themes(s), load_drain_states(s)
            windows += repo.list_maintenance(s, w.start, w.end)
    with clock.stage("detect"):
        anomalies = (detect_kpis(signals.kpis, w, pack, ds) + detect_kpi_funnels(signals.kpis, w, pack, ds)
                     + detect_log_errors(signals.logs, w, pack, ds) + detect_event_ratios(signals.logs, w, pack, ds))
        if not signals.logs.empty:
            miners = LogTemplateMiners(states=drain_states)
            anomalies += detect_templates(signals.logs, w, miners, pack.labels, severity=pack.severity).anomalies
            miners.save()
            learned.drain = miners.states()
        anomalies += alert_anomalies(signals.alerts, w, pack)
    with clock.stage("cluster"):
        t = signals.tickets
        in_window = t[(t["created_at"] >= pd.Timestamp(w.start)) & (t["created_at"] < pd.Timestamp(w.end))]
        lookback = t[t["created_at"] >= pd.Timestamp(w.start) - pd.Timedelta(days=7)]
        clusters: list[TicketCluster] = []
        if len(lookback):
            embedder, note = get_embedder(settings.embedder)
            if note:
                degradations.append(note)
            if store is not None:
                embedder = CachedEmbedder(embedder, StoreEmbeddingCache(store))
            if not getattr(embedder, "cacheable", embedder.name != "tfidf"):
                known_themes = []  # a corpus-fitted space (TF-IDF) differs per cycle: no theme carries over
            result = cluster(lookback, embedder, known_themes=known_themes, labels=pack.labels)
            clusters, learned.themes = result.clusters, result.themes
            learned.parameters.update(ticket_clustering=result.eps_source, ticket_eps=round(float(result.eps), 4),
                                      ticket_min_samples=result.min_samples)
            anomalies += ticket_surges(lookback, clusters, w, pack.labels, pack.tickets.hard_terms,
                                       severity=pack.severity)
    with clock.stage("correlate"):
        candidates = correlate(anomalies, clusters, in_window if len(t) else t, labels=pack.labels,
                               correlation_labels=pack.correlation_labels)
        judge = PagingJudge(pack, signals.kpis, signals.logs, windows)
        candidates, notes = page(candidates, judge, pack.labels)
        if context is not None:
            context.extend(notes)
        learned.parameters["maintenance_windows"] = len(windows)
        learned.maintenance_suppressed = sum(any(mw.covers(a) for mw in windows) for a in anomalies)
    return anomalies, clusters, candidates


def runbook_index(runbooks: Path | None, settings: Settings, degradations: list[str],
                   store: Store | None = None, pack: Pack | None = None) -> RunbookIndex | None:
    """The retrieval index: the persisted knowledge base when it holds documents (``opsloop rag
    ingest``), else the domain pack's and the uploaded runbooks (or ``runbooks`` when given)."""
    if runbooks is None and store is not None:
        try:
            kb = open_knowledge_base(settings, store)
            if kb.stats()["documents"]:
                if kb.degradation and kb.degradation not in degradations:
                    degradations.append(kb.degradation)
                return kb.load()
        except (OSError, ValueError, SQLAlchemyError) as exc:
            degradations.append(f"knowledge base unavailable ({exc}); using the bundled runbooks")
    try:
        bundled = (pack or load_pack(settings.pack)).runbooks_path
        chunks = load_documents(runbooks) if runbooks else load_default_documents(settings.home, bundled)
        if not chunks:
            degradations.append("no runbook retrieval: the domain pack bundles no runbooks and none were uploaded "
                                "(opsloop rag ingest, or --runbooks)")
            return None
    except (FileNotFoundError, ValueError) as exc:
        degradations.append(f"no runbook retrieval: {exc}")
        return None
    embedder, note = get_embedder(settings.embedder)
    if note and note not in degradations:
        degradations.append(note)
    if embedder.name == "tfidf":  # a TF-IDF space is per corpus: give the index its own
        embedder = type(embedder)()
    return RunbookIndex(chunks, embedder)


def decide(candidates: list[Incident], signals: Signals, index: RunbookIndex | None, settings: Settings,
           degradations: list[str] | None = None, pack: Pack | None = None) -> list[Incident]:
    """Log signatures, risk report, severity (the pack's rules) and rule-based assessment for each
    candidate. With a model configured the assessment is stored ``pending``: the narrative is
    written after the cycle commits (:mod:`opsloop.pipeline.narration`). Returns the assessed
    incidents; actions are proposed from these rule-based assessments (the LLM never picks actions).
    """
    degradations = degradations if degradations is not None else []
    pack = pack or load_pack(settings.pack)
    narrated = settings.llm.backend != "off"
    out: list[Incident] = []
    for inc in candidates:
        logs = signals.logs
        for label in pack.correlation_labels:  # the log lines of the incident's scope
            values = inc.affected.get(label)
            if values and label in logs and not logs.empty:
                logs = logs[logs[label].isin(values) | logs[label].isna()]
        sigs = signatures(logs, inc.first_seen, inc.last_seen) if not logs.empty else []
        risk = risk_report(inc, signals.kpis, pack.revenue)
        inc = inc.model_copy(update={"signatures": sigs, "severity": incident_severity(inc, risk, pack.severity)})
        rule = assess(inc, index, risk, pack, k=settings.rag.top_k)
        out.append(inc.model_copy(update={"assessment": queued(rule) if narrated else rule}))
    return out


def act(session: Session, incidents: list[Incident], settings: Settings,
        rules: list[Assessment] | None = None, pack: Pack | None = None) -> tuple[list[Incident], dict[str, int]]:
    """Store incidents (dedup by fingerprint) and propose catalog actions from the rule-based assessment
    (``rules``, one per incident; default the incident's own). An action the pack and the policy let
    run alone is stored ``approved`` by ``policy``, not executed: :func:`~opsloop.actions.outbox.run_outbox`
    runs it after the caller's transaction commits."""
    rules = rules if rules is not None else [inc.assessment for inc in incidents]
    pack = pack or load_pack(settings.pack)
    catalog, policy = load_catalog(pack.catalog_path), settings.policy(pack)
    gap = timedelta(seconds=settings.correlation.merge_gap_seconds)

    def linked(stored: Incident, candidate: Incident) -> bool:
        return continues(stored, candidate, pack.correlation_labels)

    counts = {"incidents_new": 0, "incidents_updated": 0, "actions_new": 0, "actions_auto_approved": 0}
    stored: list[str] = []
    seen: set[str] = set()
    repo.serialize_writers(session)
    for inc, rule in zip(incidents, rules, strict=True):
        inc, created = repo.upsert_incident(session, inc, gap, linked)
        counts["incidents_new" if created else "incidents_updated"] += 1
        for action in propose_actions(inc.model_copy(update={"assessment": rule}), catalog, policy):
            action, new = repo.add_action(session, action)
            counts["actions_new"] += new
            if new and not action.requires_approval:
                repo.transition_action(session, action.id, ActionStatus.proposed, ActionStatus.approved, "policy",
                                       reason="low risk above the auto-execute confidence")
                counts["actions_auto_approved"] += 1
        if inc.id not in seen:
            seen.add(inc.id)
            stored.append(inc.id)
    return [repo.get_incident(session, i) for i in stored], counts


def run_cycle(
    signals: Signals, store: Store, settings: Settings | None = None,
    runbooks: Path | None = None, progress: Progress | None = None, pack: Pack | None = None,
    trigger: str = "cli", in_commit: Callable[[Session, CycleReport], None] | None = None,
    index: RunbookIndex | None = None, window: Window | None = None,
) -> CycleResult:
    """Run reason → decide → act on ``signals`` and store the results.

    ``pack``: the domain pack (default ``settings.pack``). ``runbooks``: a directory (or file) of
    runbooks; default the knowledge base, else the pack's and uploaded ones (``index``: an index
    already built, e.g. kept by a runner across windows). Returns the report (also stored) and the
    stored incidents. The cycle id is derived from the window and the pack
    (:func:`~opsloop.store.repository.cycle_id`): running the same window twice updates one cycle
    row and creates no new incidents or actions. ``trigger`` is stored with the cycle (``cli``,
    ``schedule``, ``api``); ``in_commit(session, report)`` runs inside the transaction that stores
    the results (a runner advances its watermark and checks its lease there; raising rolls the
    whole window back). Actions run after that transaction commits. ``window``: the cycle's own
    window (its id and report) when ``signals.window``, the span anomalies are reported for, starts
    earlier (a runner re-judges the recent past, so a blip can page once it is sustained).
    """
    settings = settings or Settings()
    pack = pack or load_pack(settings.pack)
    clock = _Clock(progress)
    degradations: list[str] = []
    learned = LearnedState()
    context: list[ContextNote] = []
    anomalies, clusters, candidates = reason(signals, settings, clock, degradations, store, learned, pack, context)
    with clock.stage("retrieve"):
        if candidates and index is None:
            index = runbook_index(runbooks, settings, degradations, store, pack)
    with clock.stage("assess"):
        assessed = decide(candidates, signals, index, settings, degradations, pack)
    with clock.stage("act"), store.begin() as session:
        incidents, act_counts = act(session, assessed, settings, pack=pack)
        snapshot_series(session, incidents, signals, pack, settings)
        report = CycleReport(
            id=repo.cycle_id(window or signals.window, pack.name), window=window or signals.window,
            counts={**signals.counts(), "anomalies": len(anomalies), "clusters": len(clusters),
                    "incidents": len(incidents), "context": len(context),
                    "maintenance_suppressed": learned.maintenance_suppressed,
                    **act_counts, "actions_auto_executed": 0, "actions_failed": 0},
            stage_seconds=clock.seconds, degradations=degradations, quarantined=signals.quarantined,
            incident_ids=[i.id for i in incidents], parameters=learned.parameters, context=context,
        )
        repo.record_cycle(session, report, trigger)
        if learned.themes:  # a cycle without tickets leaves the themes as they are
            save_themes(session, learned.themes)
        save_drain_states(session, learned.drain)
        if in_commit is not None:
            in_commit(session, report)
    with clock.stage("outbox"):  # side effects only after the cycle's results are committed
        outbox = run_outbox(store, settings, policy=settings.policy(pack))
        report.counts.update(actions_auto_executed=outbox.executed, actions_failed=outbox.failed,
                             actions_stale=outbox.stale)
        with store.begin() as session:
            repo.update_cycle_counts(session, report.id, report.counts)
        if outbox.executed:
            with store() as session:
                incidents = [repo.get_incident(session, i.id) for i in incidents]
    report.stage_seconds["act"] = clock.seconds.get("act", 0.0)
    report.stage_seconds["outbox"] = clock.seconds.get("outbox", 0.0)
    return CycleResult(report=report, incidents=incidents, anomalies=anomalies, clusters=clusters, index=index)
