"""Ingest endpoints: Alertmanager's webhook, pushed tickets and pushed log lines.

Each request is all-or-nothing: every item is validated first (a bad one gets 422 whose
``detail`` names the item or NDJSON line and the field, with ``errors`` listing up to 20 of them)
and only then is the whole request stored in one transaction, idempotently (see
:mod:`opsloop.store.ingest`). Every endpoint answers with :class:`IngestCounts`. Auth: a bearer
token of the ``operator`` role or above (Alertmanager sends one with
``http_config: {authorization: {credentials: <token>}}``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from opsloop.api.deps import Operator, StoreDep
from opsloop.api.ingest_schemas import (
    TICKET_FIELDS,
    AlertmanagerWebhook,
    IngestCounts,
    SimpleTicketIn,
    TicketIn,
    body_schema,
    inline_schema,
)
from opsloop.data.contracts import LOGS, TICKETS, Contract
from opsloop.domain import Quarantined
from opsloop.sources.push import records_of, validate_rows
from opsloop.store import ingest
from opsloop.store.session import Store

router = APIRouter(tags=["ingest"])

#: Largest request body accepted (bytes).
MAX_BODY = 16 * 1024 * 1024
_MAX_ERRORS = 20
_INVALID = {422: {"description": "invalid payload: `detail` names the item or line and the field; "
                                 "nothing of the request was stored"},
            413: {"description": "body too large"}}


class PayloadError(Exception):
    """A request whose payload is invalid: ``errors`` as ``(location, message)`` pairs, the first
    of which the response's ``detail`` names."""

    def __init__(self, errors: Sequence[tuple[list[str | int], str]], status: int = 422) -> None:
        super().__init__(errors[0][1] if errors else "invalid payload")
        self.errors, self.status = list(errors), status

    def response(self) -> JSONResponse:
        loc, msg = self.errors[0]
        where = ".".join(str(p) for p in loc)
        more = f" (and {len(self.errors) - 1} more)" if len(self.errors) > 1 else ""
        return JSONResponse({"detail": f"{where}: {msg}{more}" if where else msg + more,
                             "errors": [{"loc": list(lc), "msg": m} for lc, m in self.errors[:_MAX_ERRORS]]},
                            status_code=self.status)


def _pydantic_errors(exc: ValidationError, prefix: list[str | int]) -> list[tuple[list[str | int], str]]:
    return [([*prefix, *e.get("loc", ())], e.get("msg", "invalid")) for e in exc.errors()]


def _quarantine_errors(bad: Sequence[Quarantined], unit: str) -> list[tuple[list[str | int], str]]:
    return [([f"{unit} {q.line}", *([q.field] if q.field else [])], q.reason) for q in bad]


async def _body(request: Request) -> bytes:
    body = await request.body()
    if not body.strip():
        raise PayloadError([(["body"], "empty body")])
    if len(body) > MAX_BODY:
        raise PayloadError([([], f"body of {len(body)} bytes is larger than {MAX_BODY}")], status=413)
    return body


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError([(["body"], f"invalid JSON: {exc}")]) from None


async def _handle(request: Request, work: Callable[[bytes], IngestCounts]) -> IngestCounts | JSONResponse:
    try:
        body = await _body(request)
        return await run_in_threadpool(work, body)
    except PayloadError as exc:
        return exc.response()


def _store(store: Store, add: Callable[..., tuple[int, int]], items: Sequence[Any],
           received: int) -> IngestCounts:
    with store.begin() as s:
        stored, _ = add(s, items)
    return IngestCounts(received=received, stored=stored, duplicates=received - stored)


@router.post("/webhooks/alertmanager", response_model=IngestCounts, responses=_INVALID,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": inline_schema(AlertmanagerWebhook)}}}})
async def alertmanager_webhook(request: Request, caller: Operator,
                               store: StoreDep) -> IngestCounts | JSONResponse:
    """Store the alerts of an Alertmanager webhook (payload version 4), idempotently by fingerprint,
    status and start (Alertmanager re-sends a group on every change); a later cycle reads the alerts
    firing during its window as evidence (:mod:`opsloop.sources.alerts`)."""

    def work(body: bytes) -> IngestCounts:
        try:
            payload = AlertmanagerWebhook.model_validate(_json(body))
        except ValidationError as exc:
            raise PayloadError(_pydantic_errors(exc, ["body"])) from None
        alerts = [a.alert(payload.groupKey) for a in payload.alerts]
        return _store(store, ingest.add_alerts, alerts, len(alerts))

    return await _handle(request, work)


def _ticket(item: Any, i: int) -> BaseModel:
    if not isinstance(item, dict):
        raise PayloadError([([i], "expected a JSON object (a ticket)")])
    model = TicketIn if "external_id" in item or "labels" in item or "requester" in item else SimpleTicketIn
    try:
        return model.model_validate(item)
    except ValidationError as exc:
        raise PayloadError(_pydantic_errors(exc, [i])) from None


@router.post("/tickets", response_model=IngestCounts, responses=_INVALID,
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": body_schema(TicketIn, SimpleTicketIn)}}}})
async def push_tickets(request: Request, caller: Operator, store: StoreDep) -> IngestCounts | JSONResponse:
    """Store pushed tickets: one ticket object or a JSON list of them, each either a ticket
    system's webhook (:class:`TicketIn`, idempotent by ``external_id``) or a simple ticket
    (:class:`SimpleTicketIn`, idempotent by a hash of its content). Errors name the item (0-based
    position; 0 for a single object) and the field."""

    def work(body: bytes) -> IngestCounts:
        data = _json(body)
        items = data if isinstance(data, list) else [data]
        rows = [_ticket(item, i).record() for i, item in enumerate(items)]
        checked = validate_rows(rows, TICKETS, "tickets", lines=range(len(rows)))
        if checked.quarantined:
            raise PayloadError([([q.line, *([TICKET_FIELDS.get(q.field, q.field)] if q.field else [])],
                                 q.reason) for q in checked.quarantined])
        return _store(store, ingest.add_tickets, records_of(checked.frame, TICKETS), len(rows))

    return await _handle(request, work)


def _log_lines(body: bytes, content_type: str) -> tuple[list[dict[str, Any]], list[int], str]:
    """The log rows of a body: a JSON list (or one object) for ``application/json``, else JSON lines
    (blank lines skipped); with their item or line numbers (1-based) and the unit's name."""
    if content_type.split(";")[0].strip().lower() == "application/json":
        data = _json(body)
        items = data if isinstance(data, list) else [data]
        bad = [([f"item {i}"], "expected a JSON object (a log line)")
               for i, x in enumerate(items, 1) if not isinstance(x, dict)]
        if bad:
            raise PayloadError(bad)
        return items, list(range(1, len(items) + 1)), "item"
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise PayloadError([(["body"], f"not UTF-8: {exc.reason} at byte {exc.start}")]) from None
    rows, numbers, errors = [], [], []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            errors.append(([f"line {n}"], f"invalid JSON: {exc}"))
            continue
        if not isinstance(obj, dict):
            errors.append(([f"line {n}"], "expected a JSON object (a log line)"))
            continue
        rows.append(obj)
        numbers.append(n)
    if errors:
        raise PayloadError(errors)
    return rows, numbers, "line"


def _contract_check(rows: list[dict[str, Any]], numbers: list[int], unit: str, contract: Contract):
    checked = validate_rows(rows, contract, contract.name, lines=numbers)
    if checked.quarantined:
        raise PayloadError(_quarantine_errors(checked.quarantined, unit))
    return checked


@router.post("/logs", response_model=IngestCounts, responses=_INVALID,
             openapi_extra={"requestBody": {"required": True, "content": {
                 "application/x-ndjson": {"schema": {"type": "string", "description": "JSON lines"}},
                 "application/json": {"schema": {"type": "array", "items": {"type": "object"}}}}}})
async def push_logs(request: Request, caller: Operator, store: StoreDep) -> IngestCounts | JSONResponse:
    """Store pushed log lines in the logs contract (``ts, service, endpoint, status, level,
    message`` + optional ``event, latency_ms`` + label keys): JSON lines (``application/x-ndjson``,
    any non-JSON content type) or a JSON list (``application/json``). Idempotent per batch: pushing
    the same lines again stores nothing (:func:`opsloop.store.ingest.log_ids`). Errors name the line
    (or item, 1-based) and the field."""
    content_type = request.headers.get("content-type", "application/x-ndjson")

    def work(body: bytes) -> IngestCounts:
        rows, numbers, unit = _log_lines(body, content_type)
        checked = _contract_check(rows, numbers, unit, LOGS)
        records = records_of(checked.frame, LOGS)
        return _store(store, ingest.add_logs, records, len(records))

    return await _handle(request, work)
