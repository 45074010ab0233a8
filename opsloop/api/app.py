"""The FastAPI application (``opsloop serve``): OpenAPI at ``/docs`` and ``/redoc`` (Swagger UI and ReDoc
served from local assets, no CDN: ``fastapi-offline``), JSON errors, Prometheus metrics."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline

from opsloop import __version__
from opsloop.api.ingest import router as ingest_router
from opsloop.api.metrics import Metrics
from opsloop.api.routes import router
from opsloop.config import Settings
from opsloop.data.loaders import InputError
from opsloop.domain import PolicyViolation
from opsloop.store import repository as repo
from opsloop.store.session import open_store

log = logging.getLogger("opsloop.api")


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app on ``settings`` (default: from the environment) and its store."""
    settings = settings or Settings()
    app: FastAPI = FastAPIOffline(title="opsloop", version=__version__,
                  description="Incident intelligence for SREs: incidents, assessments, actions behind an approval gate.")
    app.state.settings = settings
    app.state.store = open_store(settings.resolved_database_url())
    app.state.metrics = Metrics(app.state.store)
    app.include_router(router)
    app.include_router(ingest_router)

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

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", "")} for e in exc.errors()]
        return JSONResponse({"detail": "invalid request", "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return _error(500, "internal error; see the server log")

    return app
