"""The API's routes. Each calls the same repository / service function the CLI uses."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, File, HTTPException, Query, Request, UploadFile, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from opsloop.actions import service
from opsloop.actions.outbox import stale_after_seconds
from opsloop.api.deps import Admin, Approver, Operator, SessionDep, SettingsDep, StoreDep, Viewer
from opsloop.api.health import Health
from opsloop.api.health import health as health_report
from opsloop.api.schemas import (
    CandidateOut,
    CycleOut,
    IncidentMoveIn,
    MaintenanceIn,
    Me,
    ObserveOut,
    RagStats,
    RejectIn,
    SignalsIn,
    TokenIn,
    TokenOut,
)
from opsloop.domain import (
    AuditEvent,
    CycleReport,
    Incident,
    IncidentStatus,
    MaintenanceWindow,
    ProposedAction,
    Role,
)
from opsloop.pipeline.observe import Signals, observe
from opsloop.rag.documents import SUPPORTED, load_default_documents, uploads_dir
from opsloop.store import repository as repo

router = APIRouter()
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


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
        raise HTTPException(422, f"{path}: server-side inputs must be files under OPSLOOP_HOME ({root})")
    return p


def _observe(body: SignalsIn, workdir: Path, root: Path) -> Signals:
    def inline(name: str, rows, path) -> Path | None:
        if rows is not None and path:
            raise HTTPException(422, f"give {name} inline or as a path, not both")
        if rows is None:
            return _server_path(path, root) if path else None
        f = workdir / f"{name}.jsonl"
        f.write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))
        return f

    kpis = [_server_path(p, root) for p in body.kpis_paths or []]
    if body.kpis is not None:
        kpis.append(inline("kpis", body.kpis, None))
    return observe(tickets=inline("tickets", body.tickets, body.tickets_path),
                   logs=inline("logs", body.logs, body.logs_path), kpis=kpis, start=body.start, end=body.end)


@router.post("/observe", tags=["cycles"])
def observe_signals(body: SignalsIn, store: StoreDep, settings: SettingsDep, _: Operator) -> ObserveOut:
    """Load and validate signals for a window and run detection, correlation and the paging rules
    (with the stored maintenance windows); stores nothing."""
    from opsloop.pipeline.cycle import reason

    with tempfile.TemporaryDirectory() as tmp:
        signals = _observe(body, Path(tmp), settings.home)
    anomalies, _clusters, candidates = reason(signals, settings, store=store)
    return ObserveOut(
        window={"start": signals.window.start, "end": signals.window.end}, counts=signals.counts(),
        quarantined=signals.quarantined, anomalies=anomalies,
        candidates=[CandidateOut(title=c.title, kind=c.kind.value, severity=c.severity.value, first_seen=c.first_seen,
                                 last_seen=c.last_seen, fingerprint=c.fingerprint, anomalies=len(c.anomalies),
                                 clusters=len(c.clusters)) for c in candidates],
    )


@router.post("/cycles", tags=["cycles"], status_code=status.HTTP_201_CREATED)
def run_cycle_route(body: SignalsIn, request: Request, store: StoreDep, settings: SettingsDep, _: Operator) -> CycleOut:
    """Run one observe → reason → decide → act cycle and store its results."""
    from opsloop.pipeline.cycle import run_cycle

    with tempfile.TemporaryDirectory() as tmp:
        signals = _observe(body, Path(tmp), settings.home)
    result = run_cycle(signals, store, settings, trigger="api")
    return CycleOut(report=result.report, incident_ids=[i.id for i in result.incidents])


@router.get("/cycles", tags=["cycles"])
def list_cycles(session: SessionDep, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 50) -> list[CycleReport]:
    """Recent cycle reports, newest first."""
    return [CycleReport.model_validate(r) for r in repo.list_cycles(session, limit)]


@router.get("/incidents", tags=["incidents"])
def list_incidents(session: SessionDep, _: Viewer,
                   status_: Annotated[IncidentStatus | None, Query(alias="status")] = None
                   ) -> list[Incident]:
    """Incidents, most severe first."""
    return repo.list_incidents(session, status_.value if status_ else None)


@router.get("/incidents/{incident_id}", tags=["incidents"], responses={404: {"description": "no such incident"}})
def get_incident(incident_id: str, session: SessionDep, _: Viewer) -> Incident:
    """One incident with its assessment, evidence, citations and actions."""
    return repo.get_incident(session, incident_id)


_MOVES = {"acknowledge": "acknowledged", "resolve": "resolved", "reopen": "reopened"}


@router.post("/incidents/{incident_id}/{move}", tags=["incidents"],
             responses={404: {"description": "no such incident"}, 409: {"description": "the move does not apply"}})
def move_incident(incident_id: str, move: Literal["acknowledge", "resolve", "reopen"], store: StoreDep,
                  caller: Operator, body: IncidentMoveIn | None = None) -> Incident:
    """Acknowledge, resolve or reopen an incident as the caller (audited); 409 names the current
    status when the move does not apply."""
    with store.begin() as s:
        return repo.move_incident(s, incident_id, _MOVES[move], caller.name, body.reason if body else None)


@router.get("/actions", tags=["actions"], responses={422: {"description": "stale=true with another status"}})
def list_actions(
    session: SessionDep, settings: SettingsDep, _: Viewer,
    status_: Annotated[str | None, Query(alias="status", max_length=16)] = None,
    stale: Annotated[bool, Query(description=(
        "Only stale claims: actions left `executing` longer than their executor's deadline plus "
        "`OPSLOOP_ACTION_STALE_MARGIN_SECONDS` (a crash between claim and outcome). They are never run "
        "again; an operator checks whether the side effect happened. Oldest claim first."))] = False,
    older_than_seconds: Annotated[float | None, Query(ge=0, le=10**9, description=(
        "With `stale=true`: claimed more than this many seconds ago (default: the longest executor "
        "deadline plus the margin)."))] = None,
) -> list[ProposedAction]:
    """Actions, oldest first; with ``stale=true``, the claims that never finished."""
    if not stale:
        return repo.list_actions(session, status_)
    if status_ not in (None, "executing"):
        raise HTTPException(422, "stale=true lists executing actions; it cannot be combined with another status")
    threshold = older_than_seconds if older_than_seconds is not None else stale_after_seconds(settings)
    return repo.stale_executions(session, threshold)


@router.get("/actions/{action_id}", tags=["actions"], responses={404: {"description": "no such action"}})
def get_action(action_id: str, session: SessionDep, _: Viewer) -> dict:
    """One action with who proposed, approved and executed it."""
    return repo.action_detail(session, action_id)


_CONFLICT = {404: {"description": "no such action"}, 409: {"description": "not in a state that allows this"},
             403: {"description": "not allowed for this caller"}}


@router.post("/actions/{action_id}/approve", tags=["actions"], responses=_CONFLICT)
def approve(action_id: str, store: StoreDep, settings: SettingsDep, caller: Approver) -> dict:
    """Approve a proposed action (critical actions need two distinct approvers)."""
    action, done = service.approve(store, action_id, caller.name, settings.policy())
    return {"action": action.model_dump(mode="json"), "approved": done}


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
async def upload_document(store: StoreDep, settings: SettingsDep, _: Operator, file: Annotated[UploadFile, File()]) -> dict:
    """Add a runbook (Markdown, text or PDF, at most 5 MiB) to the knowledge base, together with the
    bundled runbooks (unchanged documents are no-ops)."""
    from opsloop.rag.documents import load_documents
    from opsloop.rag.store import default_sources, open_knowledge_base

    name = Path(file.filename or "").name
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
        try:
            chunks = load_documents(staged)
        except ValueError as exc:
            raise HTTPException(422, str(exc).replace(str(staged), name)) from None
    (target / name).write_bytes(data)
    kb = open_knowledge_base(settings, store)
    from opsloop.packs import load_pack

    counts = await run_in_threadpool(kb.ingest, default_sources(settings.home, load_pack(settings.pack).runbooks_path))
    return {"document": name, "chunks": len(chunks), "knowledge_base": counts}


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


@router.delete("/rag/documents", tags=["rag"])
def delete_documents(store: StoreDep, settings: SettingsDep, _: Admin,
                     name: Annotated[str | None, Query(max_length=255)] = None) -> dict:
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
    return {"deleted": sorted(names)}


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
def audit(session: SessionDep, _: Viewer, after: Annotated[int, Query(ge=0, le=2**62)] = 0,
          limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict:
    """Audit events after ``seq`` ``after``, and whether the whole hash chain verifies."""
    events: list[AuditEvent] = repo.list_audit(session, limit, after)
    problems = repo.verify_audit(session)
    return {"events": [e.model_dump(mode="json") for e in events], "chain_intact": not problems, "problems": problems}


@router.post("/tokens", tags=["admin"], status_code=status.HTTP_201_CREATED)
def create_token(body: TokenIn, store: StoreDep, _: Admin) -> TokenOut:
    """Create an API token (shown once)."""
    with store.begin() as s:
        token = repo.create_token(s, body.name, body.role)
    return TokenOut(name=body.name, role=body.role, token=token)
