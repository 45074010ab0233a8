"""The FastAPI application (``opsloop serve``): OpenAPI at ``/docs`` and ``/redoc`` (Swagger UI and ReDoc
served from local assets, no CDN: ``fastapi-offline``), JSON errors, Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi_offline import FastAPIOffline
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

from opsloop import __version__
from opsloop.api import openapi, series
from opsloop.api.ingest import router as ingest_router
from opsloop.api.limits import BodyLimits
from opsloop.api.metrics import Metrics
from opsloop.api.recovery import router as recovery_router
from opsloop.api.routes import router
from opsloop.config import Settings
from opsloop.data.loaders import InputError
from opsloop.domain import PolicyViolation
from opsloop.store import repository as repo
from opsloop.store.session import open_store

log = logging.getLogger("opsloop.api")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def _is_array(schema: dict) -> bool:
    return schema.get("type") == "array" or any(_is_array(s) for s in schema.get("anyOf", []))


def reject_unknown_query(request: Request) -> None:
    """422 for a query parameter the route does not take (a typo must not silently widen a filter),
    and for a single-valued one given twice (``?actor=a&actor=b`` would silently keep the last).
    The names a route takes, and which of them are lists, are read from the app's OpenAPI document."""
    route = request.scope.get("route")
    if not isinstance(route, APIRoute) or not route.include_in_schema or not request.query_params:
        return
    app = request.app
    known_by_route = getattr(app.state, "query_names", None)
    if known_by_route is None:
        known_by_route = app.state.query_names = {
            (method.upper(), path): {p["name"]: _is_array(p.get("schema", {}))
                                     for p in op.get("parameters", []) if p.get("in") == "query"}
            for path, ops in app.openapi().get("paths", {}).items() for method, op in ops.items()}
    known = known_by_route.get((request.method, route.path_format), {})
    unknown = sorted(set(request.query_params) - set(known))
    if unknown:
        raise HTTPException(422, f"unknown query parameter(s) {', '.join(map(repr, unknown))}; "
                                 f"this route takes {', '.join(sorted(known)) or 'none'}")
    repeated = sorted(n for n in set(request.query_params) if not known[n] and len(request.query_params.getlist(n)) > 1)
    if repeated:
        raise HTTPException(422, f"query parameter(s) {', '.join(map(repr, repeated))} given more than once; "
                                 "each takes one value")


def _allowed_methods(app: FastAPI, path: str) -> list[str]:
    """The methods the OpenAPI document gives for the operations whose path template matches ``path``."""
    templates = getattr(app.state, "path_templates", None)
    if templates is None:
        templates = app.state.path_templates = [
            (compile_path(p)[0], {m.upper() for m in ops}) for p, ops in app.openapi().get("paths", {}).items()]
    return sorted({m for regex, methods in templates if regex.match(path) for m in methods})


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on ``settings`` (default: from the environment) and its store."""
    settings = settings or Settings()
    app: FastAPI = FastAPIOffline(dependencies=[Depends(reject_unknown_query)], title="opsloop", version=__version__,
                  description="Incident intelligence for SREs: incidents, assessments, actions behind an approval gate.")
    app.state.settings = settings
    app.state.store = open_store(settings.resolved_database_url())
    app.state.metrics = Metrics(app.state.store)
    app.include_router(router)
    app.include_router(ingest_router)
    app.include_router(recovery_router)
    app.include_router(series.router)
    openapi.install(app)

    app.add_middleware(BodyLimits, store=app.state.store)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        response = await call_next(request)
        route = request.scope.get("route")
        app.state.metrics.requests.labels(request.method, getattr(route, "path", "unmatched"), response.status_code).inc()
        return response

    app.add_exception_handler(repo.NotFound, lambda r, e: _error(404, str(e)))
    app.add_exception_handler(repo.Conflict, lambda r, e: _error(409, str(e)))
    app.add_exception_handler(PolicyViolation, lambda r, e: _error(403, str(e)))
    app.add_exception_handler(InputError, lambda r, e: _error(422, str(e)))
    app.add_exception_handler(ValueError, lambda r, e: _error(422, str(e)))
    app.add_exception_handler(FileNotFoundError, lambda r, e: _error(422, str(e)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # name every method the path has, not only the first route's
            headers["Allow"] = ", ".join(_allowed_methods(app, request.url.path))
        return JSONResponse({"detail": str(exc.detail)}, status_code=exc.status_code, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; see the server log")

    return app
