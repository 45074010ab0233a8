"""``/health``: each dependency's state and an overall status.

Checks are cheap and bounded (no model is loaded): the store answers ``SELECT 1``; the LLM is
``off``, or its Ollama server answers ``/api/tags`` within a second, or its ``.gguf`` file exists;
the knowledge base counts its documents (empty: cycles use the bundled runbooks); each source the
runner read reports its last success, its lag (age of its newest event when read) and its last
error; the runner reports its lease holder and the end of the last window it committed. The overall
status is ``down`` when the store is unreachable, ``degraded`` when any other check is, else ``ok``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from opsloop.config import Settings
from opsloop.store.knowledge import knowledge_counts
from opsloop.store.leases import get_lease, list_watermarks
from opsloop.store.session import Store

Status = Literal["ok", "degraded", "down", "off"]


class Check(BaseModel):
    """One dependency: its ``status`` and a one-line ``detail``."""

    status: Status
    detail: str = ""


class SourceHealth(Check):
    """A source the runner read: ``last_success`` (UTC), ``lag_seconds``, ``last_error``."""

    name: str
    last_success: datetime | None = None
    lag_seconds: float | None = None
    last_error: str | None = None


class RunnerHealth(Check):
    """The cycle runner: lease ``holder`` and ``lease_expires`` (UTC), ``watermark`` (end of the last
    window committed, UTC) and ``lag_seconds`` (now − watermark)."""

    holder: str | None = None
    lease_expires: datetime | None = None
    watermark: datetime | None = None
    lag_seconds: float | None = None


class Health(BaseModel):
    """The ``/health`` document."""

    status: Literal["ok", "degraded", "down"]
    store: Check
    llm: Check
    knowledge_base: Check
    runner: RunnerHealth
    sources: list[SourceHealth] = Field(default_factory=list)


def _llm(settings: Settings) -> Check:
    cfg = settings.llm
    if cfg.backend == "off":
        return Check(status="off", detail="rules only (OPSLOOP_LLM=off)")
    if cfg.backend == "ollama":
        from opsloop.llm.ollama import DEFAULT_MODEL, OllamaLLM

        ollama = OllamaLLM(host=cfg.host, model=cfg.model or DEFAULT_MODEL)  # the host a cycle would call
        host = ollama.host
        try:
            httpx.get(f"{host.rstrip('/')}/api/tags", timeout=1.0).raise_for_status()
            return Check(status="ok", detail=f"ollama at {host}, model {ollama.model}")
        except httpx.HTTPError as exc:
            return Check(
                status="degraded",
                detail=f"ollama at {host} unreachable ({type(exc).__name__}); "
                "cycles use the rule-based assessment",
            )
    from opsloop.llm.llamacpp import default_model_path

    path = Path(cfg.model) if cfg.model else default_model_path()
    if path.is_file():
        return Check(status="ok", detail=f"llama.cpp model {path.name}")
    return Check(status="degraded", detail=f"llama.cpp model file {path.name} not found; rules only")


def health(store: Store, settings: Settings, now: datetime | None = None) -> Health:
    """The dependency report of the module docstring."""
    now = now or datetime.now(UTC)
    try:
        with store() as s:
            s.execute(text("SELECT 1"))
            counts = knowledge_counts(s)
            marks = list_watermarks(s)
            lease = get_lease(s, "runner")
    except SQLAlchemyError as exc:
        down = Check(status="down", detail=f"store unreachable: {type(exc).__name__}")
        return Health(
            status="down",
            store=down,
            llm=_llm(settings),
            knowledge_base=Check(status="down"),
            runner=RunnerHealth(status="down"),
        )
    kb = (
        Check(status="ok", detail=f"{counts['documents']} documents, {counts['chunks']} chunks")
        if counts["documents"]
        else Check(status="ok", detail="empty: cycles retrieve from the bundled and uploaded runbooks")
    )
    sources = []
    for name, _value, _updated, d in marks:
        if name.startswith("source:"):
            ok = d.get("last_error") is None
            sources.append(
                SourceHealth(
                    name=name[7:],
                    status="ok" if ok else "degraded",
                    detail="" if ok else str(d.get("last_error")),
                    last_success=d.get("last_success"),
                    lag_seconds=d.get("lag_seconds"),
                    last_error=d.get("last_error"),
                )
            )
    live = [(name, value) for name, value, _u, _d in marks if name.startswith("runner:")]
    watermark = max((v for _n, v in live), default=None)
    held = lease is not None and not lease.expired(now)
    runner = RunnerHealth(
        status="ok" if held else "off",
        detail=f"held by {lease.holder}" if held else "no runner holds the store",
        holder=lease.holder if held else None,
        lease_expires=lease.expires_at if held else None,
        watermark=watermark,
        lag_seconds=(now - watermark).total_seconds() if watermark else None,
    )
    llm = _llm(settings)
    degraded = llm.status == "degraded" or any(x.status == "degraded" for x in sources)
    return Health(
        status="degraded" if degraded else "ok",
        store=Check(status="ok"),
        llm=llm,
        knowledge_base=kb,
        runner=runner,
        sources=sources,
    )
