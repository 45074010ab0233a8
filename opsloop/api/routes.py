"""The API's routes. Each calls the same repository / service function the CLI uses."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, BackgroundTasks, File, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import Field

from opsloop.actions import service
from opsloop.actions.outbox import stale_after_seconds
from opsloop.api.deps import Admin, Approver, Operator, SessionDep, SettingsDep, StoreDep, Viewer
from opsloop.api.health import Health
from opsloop.api.health import health as health_report
from opsloop.api.schemas import (
    ActionDetail,
    ApproveOut,
    AuditHeadOut,
    AuditVerifyOut,
    CandidateOut,
    CycleOut,
    DeletedOut,
    IncidentMoveIn,
    IncidentSummary,
    IsoDateTime,
    ListOut,
    MaintenanceIn,
    Me,
    ObserveOut,
    RagStats,
    RejectIn,
    SignalsIn,
    SimilarIncidentOut,
    TimelineEntryOut,
    TokenIn,
    TokenOut,
    UploadOut,
)
from opsloop.config import Settings
from opsloop.data.loaders import InputError
from opsloop.domain import (
    ActionStatus,
    AuditEvent,
    Citation,
    CycleReport,
    Incident,
    IncidentStatus,
    Kind,
    MaintenanceWindow,
    ProposedAction,
    Role,
    Severity,
)
from opsloop.pipeline.observe import Signals, observe
from opsloop.rag.documents import SUPPORTED, load_default_documents, uploads_dir
from opsloop.store import queries
from opsloop.store import repository as repo
from opsloop.store.session import Store

router = APIRouter()
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_INPUT_BYTES = 200 * 1024 * 1024
MAX_CHUNKS = 10_000  # passages per uploaded document
PARSE_SECONDS = 60.0  # time limit for parsing one uploaded document


@router.get("/health", tags=["system"], responses={503: {"description": "the store is unreachable"}})
def health(store: StoreDep, settings: SettingsDep, response: Response) -> Health:
    """Each dependency's status (store, LLM, knowledge base, runner, sources) and an overall one
    (no token needed); 503 when the store is unreachable."""
    report = health_report(store, settings)
    if report.status == "down":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return report


@router.get("/metrics", tags=["system"], response_class=Response)
def metrics(request: Request) -> Response:
    """Prometheus exposition format (no token needed)."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/me", tags=["system"], responses={401: {"description": "missing, unknown or revoked token"}})
def me(caller: Viewer) -> Me:
    """Who the token belongs to (the UI signs in with this)."""
    return Me(name=caller.name, role=Role(caller.role))


def _server_path(path: str, root: Path) -> Path:
    """A server-side input path, which must be a regular file under ``OPSLOOP_HOME``."""
    try:
        p = Path(path).resolve()
        ok = p.is_relative_to(Path(root).resolve()) and p.is_file()
    except (OSError, ValueError):  # e.g. a NUL byte or an over-long name
        ok = False
    if not ok:
        raise HTTPException(422, f"{path}: server-side inputs must be files under OPSLOOP_HOME")
    return p


def _observe(body: SignalsIn, workdir: Path, root: Path) -> Signals:
    def inline(name: str, rows, path) -> Path | None:
        rows = rows or None  # an empty list gives nothing
        if rows is not None and path:
            raise HTTPException(422, f"give {name} inline or as a path, not both")
        if rows is None:
            return _server_path(path, root) if path else None
        (workdir / name).mkdir(exist_ok=True)
        f = workdir / name / f"{name}.jsonl"
        f.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        return f

    kpis = [_server_path(p, root) for p in body.kpis_paths or []]
    if body.kpis:
        kpis.append(inline("kpis", body.kpis, None))
    return _observe_staged(workdir, tickets=inline("tickets", body.tickets, body.tickets_path),
                           logs=inline("logs", body.logs, body.logs_path), kpis=kpis, start=body.start, end=body.end)


def _observe_staged(workdir: Path, **inputs) -> Signals:
    """:func:`observe` on inputs staged under ``workdir``, with errors and quarantined rows naming the
    user's file (or the inline signal), never the staging path; 422 for unusable inputs."""
    try:
        signals = observe(**inputs)
    except (InputError, ValueError) as exc:
        raise HTTPException(422, _unstaged(str(exc), workdir)) from None
    signals.quarantined = [q.model_copy(update={"file": _unstaged(q.file, workdir)}) for q in signals.quarantined]
    return signals


@router.post("/observe", tags=["cycles"])
def observe_signals(body: SignalsIn, store: StoreDep, settings: SettingsDep, _: Operator) -> ObserveOut:
    """Load and validate signals for a window and run detection, correlation and the paging rules
    (with the stored maintenance windows); stores nothing."""
    with tempfile.TemporaryDirectory() as tmp:
        signals = _observe(body, Path(tmp), settings.home)
    return _reasoned(signals, settings, store)


def _reasoned(signals: Signals, settings, store) -> ObserveOut:
    from opsloop.pipeline.cycle import reason

    anomalies, _clusters, candidates = reason(signals, settings, store=store)
    return ObserveOut(
        window={"start": signals.window.start, "end": signals.window.end}, counts=signals.counts(),
        quarantined=signals.quarantined, anomalies=anomalies,
        candidates=[CandidateOut(title=c.title, kind=c.kind.value, severity=c.severity.value, first_seen=c.first_seen,
                                 last_seen=c.last_seen, fingerprint=c.fingerprint, anomalies=len(c.anomalies),
                                 clusters=len(c.clusters)) for c in candidates],
    )


@router.post("/cycles", tags=["cycles"], status_code=status.HTTP_201_CREATED)
def run_cycle_route(body: SignalsIn, request: Request, store: StoreDep, settings: SettingsDep, _: Operator,
                    background: BackgroundTasks) -> CycleOut:
    """Run one observe → reason → decide → act cycle and store its results. With a model
    configured, the narratives are written after the response (the incidents' ``narrative`` is
    ``pending`` until then)."""
    from opsloop.pipeline.cycle import run_cycle

    with tempfile.TemporaryDirectory() as tmp:
        signals = _observe(body, Path(tmp), settings.home)
    result = run_cycle(signals, store, settings, trigger="api")
    queue_narration(background, store, settings, [i.id for i in result.incidents])
    return CycleOut(report=result.report, incident_ids=[i.id for i in result.incidents])


def queue_narration(background: BackgroundTasks, store: Store, settings: Settings, incident_ids: list[str]) -> None:
    """Narrate ``incident_ids`` after the response is sent (nothing without a model)."""
    if settings.llm.backend != "off" and incident_ids:
        from opsloop.pipeline.narration import narrate_pending

        background.add_task(narrate_pending, store, settings, None, incident_ids)


Limit = Annotated[int, Query(ge=1, le=500, description="Items per page.")]
Offset = Annotated[int, Query(ge=0, le=10**9, description="Items to skip.")]


_INPUT_SUFFIXES = (".csv", ".jsonl", ".json", ".ndjson", ".parquet")


async def _staged(upload: UploadFile | None, name: str, workdir: Path) -> Path | None:
    """Write an uploaded input to ``workdir`` under its own (base) name so loaders and quarantine
    name the user's file; 413 over the upload limit, 415 for an unknown suffix."""
    if upload is None:
        return None
    base = _safe_name(upload.filename or name) or name
    if Path(base).suffix.lower() not in _INPUT_SUFFIXES:
        raise HTTPException(415, f"{base}: {name} must be one of {', '.join(_INPUT_SUFFIXES)}")
    data = await upload.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise HTTPException(413, f"{base}: larger than {MAX_INPUT_BYTES} bytes")
    target = workdir / name
    target.mkdir(exist_ok=True)
    (target / base).write_bytes(data)
    return target / base


async def _observe_files(tickets: UploadFile | None, logs: UploadFile | None, kpis: list[UploadFile],
                         workdir: Path) -> Signals:
    if not (tickets or logs or kpis):
        raise HTTPException(422, "give at least one of the files tickets, logs, kpis")
    staged_kpis = [await _staged(k, f"kpis{i}", workdir) for i, k in enumerate(kpis)]
    staged = {"tickets": await _staged(tickets, "tickets", workdir), "logs": await _staged(logs, "logs", workdir)}
    return await run_in_threadpool(_observe_staged, workdir, **staged,
                                   kpis=[k for k in staged_kpis if k is not None])


def _unstaged(text: str, workdir: Path) -> str:
    """``text`` with staged paths (``workdir/<input>/<name>``) shortened to the uploaded ``name``."""
    return re.sub(re.escape(str(workdir)) + r"/[^/\s]+/", "", text)


UploadOpt = Annotated[UploadFile, File(description="CSV, JSONL or Parquet in the input contract.")]
_UPLOAD_ERRORS = {413: {"description": "a file is too large"}, 415: {"description": "unsupported file type"},
                  422: {"description": "no file given, or a file names a bad row (file, line, field)"}}


@router.post("/cycles/files", tags=["cycles"], status_code=status.HTTP_201_CREATED, responses=_UPLOAD_ERRORS)
async def run_cycle_files(store: StoreDep, settings: SettingsDep, _: Operator, background: BackgroundTasks,
                          tickets: UploadOpt = None, logs: UploadOpt = None,
                          kpis: Annotated[list[UploadFile], File()] = []  # noqa: B006
                          ) -> CycleOut:
    """Run one cycle on uploaded files (any subset of tickets, logs and KPI files) and store its results."""
    from opsloop.pipeline.cycle import run_cycle

    with tempfile.TemporaryDirectory() as tmp:
        signals = await _observe_files(tickets, logs, kpis, Path(tmp))
        result = await run_in_threadpool(run_cycle, signals, store, settings, trigger="api")
    queue_narration(background, store, settings, [i.id for i in result.incidents])
    return CycleOut(report=result.report, incident_ids=[i.id for i in result.incidents])


@router.post("/observe/files", tags=["cycles"], responses=_UPLOAD_ERRORS)
async def observe_files(store: StoreDep, settings: SettingsDep, _: Operator, tickets: UploadOpt = None,
                        logs: UploadOpt = None, kpis: Annotated[list[UploadFile], File()] = []  # noqa: B006
                        ) -> ObserveOut:
    """Detect, correlate and page on uploaded files without storing anything (like ``POST /observe``)."""
    with tempfile.TemporaryDirectory() as tmp:
        signals = await _observe_files(tickets, logs, kpis, Path(tmp))
    return await run_in_threadpool(_reasoned, signals, settings, store)


@router.get("/cycles", tags=["cycles"])
def list_cycles(session: SessionDep, _: Viewer, limit: Limit = 50, offset: Offset = 0) -> ListOut[CycleReport]:
    """Cycle reports, newest first."""
    data, count = queries.search_cycles(session, limit, offset)
    return ListOut(data=data, count=count)


def _label_pairs(labels: list[str]) -> tuple[tuple[str, str], ...]:
    pairs = []
    for item in labels:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise HTTPException(422, f"label {item!r}: expected NAME=VALUE")
        pairs.append((name, value))
    return tuple(pairs)


def _summary(s: queries.IncidentRowSummary) -> IncidentSummary:
    inc, a = s.incident, s.incident.assessment
    return IncidentSummary(
        id=inc.id, title=inc.title, status=inc.status, severity=inc.severity, kind=inc.kind, category=s.category,
        confidence=a.confidence if a else None, first_seen=inc.first_seen, last_seen=inc.last_seen,
        affected=inc.affected, revenue_at_risk_window=a.risk.revenue_at_risk_window if a else None,
        currency=a.risk.currency if a else "", pending_actions=s.pending_actions)


@router.get("/incidents", tags=["incidents"], responses={422: {"description": "a bad filter value"}})
def list_incidents(
    session: SessionDep, _: Viewer,
    status_: Annotated[IncidentStatus | None, Query(alias="status")] = None,
    severity: Severity | None = None,
    kind: Kind | None = None,
    category: Annotated[str | None, Query(max_length=64)] = None,
    label: Annotated[list[Annotated[str, Field(pattern=r"^[^=]+=.*$", max_length=300)]], Query(max_length=20, description=(
        "`NAME=VALUE` in the incident's blast radius; repeat to require several."))] = [],  # noqa: B006
    since: Annotated[IsoDateTime | None, Query(description="Active at or after (UTC).")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Active before (UTC).")] = None,
    q: Annotated[str | None, Query(max_length=200, description="Substring of the id, title or category.")] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> ListOut[IncidentSummary]:
    """Incidents matching the filters, most severe first, then most recently seen."""
    f = queries.IncidentFilter(
        status=status_.value if status_ else None, severity=severity.value if severity else None,
        kind=kind.value if kind else None, category=category, labels=_label_pairs(label),
        since=since, until=until, q=q)
    data, count = queries.search_incidents(session, f, limit, offset)
    return ListOut(data=[_summary(s) for s in data], count=count)


@router.get("/incidents/{incident_id}", tags=["incidents"], responses={404: {"description": "no such incident"}})
def get_incident(incident_id: str, session: SessionDep, _: Viewer) -> Incident:
    """One incident with its assessment, evidence, citations and actions."""
    return repo.get_incident(session, incident_id)


@router.get("/incidents/{incident_id}/timeline", tags=["incidents"],
            responses={404: {"description": "no such incident"}})
def incident_timeline(incident_id: str, session: SessionDep, _: Viewer) -> ListOut[TimelineEntryOut]:
    """First seen, status changes and everything done to the incident's actions, oldest first."""
    entries = queries.incident_timeline(session, incident_id)
    return ListOut(data=[TimelineEntryOut(**vars(e)) for e in entries], count=len(entries))


@router.get("/incidents/{incident_id}/similar", tags=["incidents"],
            responses={404: {"description": "no such incident"}})
def similar_incidents(incident_id: str, session: SessionDep, _: Viewer,
                      limit: Annotated[int, Query(ge=1, le=50)] = 5) -> ListOut[SimilarIncidentOut]:
    """Other incidents whose evidence names the same series, category, labels, detectors or ticket
    themes, most alike first (``score`` in [0, 1])."""
    found = queries.similar_incidents(session, incident_id, limit)
    return ListOut(data=[SimilarIncidentOut(
        id=s.incident.id, title=s.incident.title, status=s.incident.status, severity=s.incident.severity,
        category=s.category, first_seen=s.incident.first_seen, last_seen=s.incident.last_seen, score=s.score,
        shared=s.shared) for s in found], count=len(found))


_MOVED = {404: {"description": "no such incident"}, 409: {"description": "the move does not apply"}}


def _move(store, incident_id: str, verb: str, caller, body: IncidentMoveIn | None) -> Incident:
    with store.begin() as s:
        return repo.move_incident(s, incident_id, verb, caller.name, body.reason if body else None)


@router.post("/incidents/{incident_id}/acknowledge", tags=["incidents"], responses=_MOVED)
def acknowledge_incident(incident_id: str, store: StoreDep, caller: Operator,
                         body: IncidentMoveIn | None = None) -> Incident:
    """Acknowledge an open or reopened incident as the caller (audited); 409 names its status otherwise."""
    return _move(store, incident_id, "acknowledged", caller, body)


@router.post("/incidents/{incident_id}/resolve", tags=["incidents"], responses=_MOVED)
def resolve_incident(incident_id: str, store: StoreDep, caller: Operator,
                     body: IncidentMoveIn | None = None) -> Incident:
    """Resolve an incident as the caller (audited); 409 if it is resolved already."""
    return _move(store, incident_id, "resolved", caller, body)


@router.post("/incidents/{incident_id}/reopen", tags=["incidents"], responses=_MOVED)
def reopen_incident(incident_id: str, store: StoreDep, caller: Operator,
                    body: IncidentMoveIn | None = None) -> Incident:
    """Reopen a resolved incident as the caller (audited); 409 names its status otherwise."""
    return _move(store, incident_id, "reopened", caller, body)


@router.get("/actions", tags=["actions"])
def list_actions(
    session: SessionDep, settings: SettingsDep, _: Viewer,
    status_: Annotated[ActionStatus | None, Query(alias="status")] = None,
    incident_id: Annotated[str | None, Query(max_length=64)] = None,
    stale: Annotated[bool, Query(description=(
        "Only stale claims: actions left `executing` longer than their executor's deadline plus "
        "`OPSLOOP_ACTION_STALE_MARGIN_SECONDS` (a crash between claim and outcome). They are never run "
        "again; an operator checks whether the side effect happened. Oldest claim first."))] = False,
    older_than_seconds: Annotated[float | None, Query(ge=0, le=10**9, description=(
        "With `stale=true`: claimed more than this many seconds ago (default: the longest executor "
        "deadline plus the margin)."))] = None,
    limit: Limit = 50, offset: Offset = 0,
) -> ListOut[ProposedAction]:
    """Actions, oldest first; with ``stale=true``, the claims that never finished."""
    if not stale:
        data, count = queries.search_actions(session, status_.value if status_ else None, incident_id, limit, offset)
        return ListOut(data=data, count=count)
    if status_ not in (None, ActionStatus.executing):  # a stale claim is executing: no other status has one
        return ListOut(data=[], count=0)
    threshold = older_than_seconds if older_than_seconds is not None else stale_after_seconds(settings)
    stale_actions = [a for a in repo.stale_executions(session, threshold)
                     if incident_id is None or a.incident_id == incident_id]
    return ListOut(data=stale_actions[offset:offset + limit], count=len(stale_actions))


@router.get("/actions/{action_id}", tags=["actions"], responses={404: {"description": "no such action"}})
def get_action(action_id: str, session: SessionDep, settings: SettingsDep, _: Viewer) -> ActionDetail:
    """One action with who proposed, approved and executed it, and how many approvals it needs."""
    d = repo.action_detail(session, action_id)
    action = repo.get_action(session, action_id)
    return ActionDetail(
        action=action, proposed_by=d["proposed_by"], decided_by=d["decided_by"], reason=d["reason"],
        result=d["result"], created_at=d["created_at"], updated_at=d["updated_at"], approved_at=d["approved_at"],
        approvals=d["approvals"], approvals_needed=settings.policy().approvers_needed(action.risk))


_CONFLICT = {404: {"description": "no such action"}, 409: {"description": "not in a state that allows this"},
             403: {"description": "not allowed for this caller"}}


@router.post("/actions/{action_id}/approve", tags=["actions"], responses=_CONFLICT)
def approve(action_id: str, store: StoreDep, settings: SettingsDep, caller: Approver) -> ApproveOut:
    """Approve a proposed action (critical actions need two distinct approvers); ``approved`` is false
    while it waits for another approver."""
    action, done = service.approve(store, action_id, caller.name, settings.policy())
    return ApproveOut(action=action, approved=done)


@router.post("/actions/{action_id}/reject", tags=["actions"], responses=_CONFLICT)
def reject(action_id: str, body: RejectIn, store: StoreDep, caller: Approver) -> ProposedAction:
    """Reject a proposed action with a reason."""
    return service.reject(store, action_id, caller.name, body.reason)


@router.post("/actions/{action_id}/execute", tags=["actions"], responses=_CONFLICT)
def execute(action_id: str, store: StoreDep, settings: SettingsDep, caller: Operator) -> ProposedAction:
    """Execute an approved action exactly once; a second call gets 409."""
    return service.execute(store, action_id, caller.name, settings.policy(), settings)


@router.post("/rag/documents", tags=["rag"], status_code=status.HTTP_201_CREATED,
             responses={413: {"description": "too large"}, 415: {"description": "unsupported type"}})
async def upload_document(store: StoreDep, settings: SettingsDep, _: Operator, file: Annotated[UploadFile, File()]) -> UploadOut:
    """Add a runbook (Markdown, text or PDF, at most 5 MiB) to the knowledge base, together with the
    bundled runbooks (unchanged documents are no-ops)."""
    from opsloop.rag.check import CheckFailed, count_passages
    from opsloop.rag.store import default_sources, open_knowledge_base

    name = _safe_name(file.filename or "")
    if not name or Path(name).suffix.lower() not in SUPPORTED:
        raise HTTPException(415, f"unsupported document {name!r}; supported: {', '.join(SUPPORTED)}")
    data = await file.read(MAX_UPLOAD_BYTES + 1)
    if len(data) > MAX_UPLOAD_BYTES:
        raise HTTPException(413, f"{name}: larger than {MAX_UPLOAD_BYTES} bytes")
    target = uploads_dir(settings.home)
    target.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / name
        staged.write_bytes(data)
        try:  # parsed in a child process with a time limit: PDF parsing would stall the API
            n_chunks = await count_passages(staged, PARSE_SECONDS)
        except CheckFailed as exc:
            raise HTTPException(422, str(exc).replace(str(staged), name)) from None
    if n_chunks > MAX_CHUNKS:
        raise HTTPException(422, f"{name}: {n_chunks} passages; at most {MAX_CHUNKS} per document")
    (target / name).write_bytes(data)
    kb = open_knowledge_base(settings, store)
    from opsloop.packs import load_pack

    counts = await run_in_threadpool(kb.ingest, default_sources(settings.home, load_pack(settings.pack).runbooks_path))
    return UploadOut(document=name, chunks=n_chunks, knowledge_base=counts)


def _safe_name(filename: str, keep: int = 120) -> str:
    """The base name of an uploaded file, cut to at most ``keep`` characters with its suffix kept."""
    name = Path(filename.replace("\\", "/")).name.strip()
    if len(name) <= keep:
        return name
    suffix = Path(name).suffix[:16]
    return name[: keep - len(suffix)] + suffix


@router.get("/rag/stats", tags=["rag"])
def rag_stats(store: StoreDep, settings: SettingsDep, _: Viewer) -> RagStats:
    """Documents and chunks in the retrieval corpus: the knowledge base, or the bundled plus uploaded
    runbooks while it is empty."""
    from opsloop.rag.store import open_knowledge_base

    up = uploads_dir(settings.home)
    uploaded = sorted(p.name for p in up.iterdir()) if up.exists() else []
    kb = open_knowledge_base(settings, store).stats()
    if kb["documents"]:
        return RagStats(documents=kb["documents"], chunks=kb["chunks"], uploaded=uploaded, index=kb["index"])
    from opsloop.packs import load_pack

    chunks = load_default_documents(settings.home, load_pack(settings.pack).runbooks_path)
    return RagStats(documents=len({c.document for c in chunks}), chunks=len(chunks), uploaded=uploaded, index="files")


@router.get("/rag/query", tags=["rag"])
def rag_query(request: Request, store: StoreDep, settings: SettingsDep, _: Viewer,
              q: Annotated[str, Query(min_length=1, max_length=2000, description="What to look for.")],
              k: Annotated[int, Query(ge=1, le=50)] = 5,
              mode: Literal["hybrid", "dense", "bm25"] = "hybrid") -> ListOut[Citation]:
    """The passages a cycle would retrieve for ``q``: from the knowledge base, or from the bundled
    plus uploaded runbooks while it is empty (that index is built once and kept until they change)."""
    from opsloop.pipeline.cycle import runbook_index
    from opsloop.rag.store import open_knowledge_base

    kb = open_knowledge_base(settings, store)
    if kb.stats()["documents"]:
        hits = kb.query(q, k, mode)
    else:
        from opsloop.packs import load_pack

        chunks = load_default_documents(settings.home, load_pack(settings.pack).runbooks_path)
        key = tuple(c.id for c in chunks)
        cached = getattr(request.app.state, "file_index", None)
        if cached is None or cached[0] != key:
            cached = (key, runbook_index(None, settings, [], None, None)) if chunks else (key, None)
            request.app.state.file_index = cached
        hits = cached[1].query(q, k, mode) if cached[1] is not None else []
    return ListOut(data=hits, count=len(hits))


@router.delete("/rag/documents", tags=["rag"], responses={404: {"description": "no uploaded document of that name"}})
def delete_documents(store: StoreDep, settings: SettingsDep, _: Admin,
                     name: Annotated[str | None, Query(max_length=255)] = None) -> DeletedOut:
    """Remove uploaded runbooks (one by ``name``, or all) from the uploads and the knowledge base;
    bundled runbooks stay."""
    from opsloop.rag.store import open_knowledge_base

    up = uploads_dir(settings.home)
    files = [p for p in up.iterdir() if name is None or p.name == name] if up.exists() else []
    kb = open_knowledge_base(settings, store)
    in_kb = {d["document"] for d in kb.documents()}
    names = {p.name for p in files} | ({name} & in_kb if name else set())
    if name is not None and not names:
        raise HTTPException(404, f"no uploaded document {name!r}")
    for n in names:
        try:
            kb.delete(n)
        except KeyError:
            pass
    for p in files:
        p.unlink()
    return DeletedOut(deleted=sorted(names))


@router.post("/maintenance", tags=["maintenance"], status_code=status.HTTP_201_CREATED,
             responses={422: {"description": "end not after start"}})
def add_maintenance(body: MaintenanceIn, store: StoreDep, caller: Operator) -> MaintenanceWindow:
    """Declare a maintenance window: anomalies inside it on matching labels are context, not incidents."""
    window = MaintenanceWindow(start=body.start, end=body.end, labels=body.labels, reason=body.reason)
    with store.begin() as s:
        return repo.add_maintenance(s, window, caller.name)


@router.get("/maintenance", tags=["maintenance"])
def list_maintenance(session: SessionDep, _: Viewer) -> list[MaintenanceWindow]:
    """The stored maintenance windows, by start."""
    return repo.list_maintenance(session)


@router.delete("/maintenance/{window_id}", tags=["maintenance"], responses={404: {"description": "no such window"}})
def remove_maintenance(window_id: str, store: StoreDep, caller: Operator) -> MaintenanceWindow:
    """Remove a stored maintenance window."""
    with store.begin() as s:
        return repo.remove_maintenance(s, window_id, caller.name)


@router.get("/audit", tags=["audit"])
def audit(
    session: SessionDep, _: Viewer,
    actor: Annotated[str | None, Query(max_length=128, description="Exactly this actor.")] = None,
    verb: Annotated[str | None, Query(max_length=32, description="Verbs starting with this, e.g. `action.`.")] = None,
    subject: Annotated[str | None, Query(max_length=128, description="Subjects starting with this.")] = None,
    since: Annotated[IsoDateTime | None, Query(description="At or after (UTC).")] = None,
    until: Annotated[IsoDateTime | None, Query(description="Before (UTC).")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100, offset: Offset = 0,
) -> ListOut[AuditEvent]:
    """Audit events matching the filters, newest first."""
    data, count = queries.search_audit(session, actor, verb, subject, since, until, limit, offset)
    return ListOut(data=data, count=count)


@router.get("/audit/head", tags=["audit"])
def audit_head(session: SessionDep, _: Viewer) -> AuditHeadOut:
    """The newest audit event (``seq``, keyed ``hash``) — record it elsewhere (a monitor, a ticket) to
    anchor the trail — and the checkpoint this server last wrote."""
    from opsloop.store import audit as chain

    newest, anchor = chain.head(session), chain.read_head(chain.head_path(session))
    return AuditHeadOut(seq=newest.seq if newest else 0, hash=newest.hash if newest else chain.GENESIS,
                        checkpoint_seq=anchor.seq if anchor else None, checkpoint_hash=anchor.hash if anchor else None)


@router.post("/audit/verify", tags=["audit"])
def audit_verify(session: SessionDep, _: Viewer) -> AuditVerifyOut:
    """Recompute the audit hash chain: intact, or each edited, inserted or missing event."""
    problems = repo.verify_audit(session)
    return AuditVerifyOut(intact=not problems, events=repo.count_rows(session)["audit_events"], problems=problems)


@router.post("/tokens", tags=["admin"], status_code=status.HTTP_201_CREATED,
             responses={409: {"description": "a token of that name exists"}})
def create_token(body: TokenIn, store: StoreDep, caller: Admin) -> TokenOut:
    """Create an API token (shown once), valid for ``expires_in_days`` (``null``: until revoked);
    reserved names (``policy``, ``opsloop``, ``system``, ``admin``) get 422."""
    from datetime import timedelta

    expires = repo.now() + timedelta(days=body.expires_in_days) if body.expires_in_days else None
    with store.begin() as s:
        token = repo.create_token(s, body.name, body.role, expires, actor=caller.name)
    return TokenOut(name=body.name, role=body.role, token=token)
