"""An OpenAPI document that says what the API really returns.

FastAPI documents only the statuses a route declares and a 422 body (``HTTPValidationError``) that
opsloop does not send. :func:`install` replaces the app's generator with one that

* gives every 4xx response one error model, :class:`~opsloop.api.schemas.ErrorOut`
  (``{"detail": str, "errors": [{"loc", "msg"}] | null}``; ``errors`` only on 422 validation errors);
* documents 401 and 403 on every route that needs a token, 404 on every route with a path
  parameter, 400 and 413 on every route with a body, 422 everywhere (unknown query parameters
  are refused by :func:`opsloop.api.app.reject_unknown_query`).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from opsloop.api.schemas import ErrorOut

_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}
_DESCRIPTIONS = {
    "400": "the body could not be parsed",
    "401": "missing, unknown, expired or revoked token",
    "403": "the token's role may not do this",
    "404": "no such resource",
    "413": "the body is too large",
    "422": "invalid input; `errors` names each field",
}


def _statuses(op: dict[str, Any], path: str) -> set[str]:
    extra = {"422"}  # every route refuses unknown query parameters
    if op.get("security"):
        extra |= {"401", "403"}
    if "{" in path:
        extra.add("404")
    if op.get("requestBody"):
        extra |= {"400", "413"}
    return extra


def honest_openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI document (cached on ``app.openapi_schema``) with the rules of this module."""
    if app.openapi_schema:
        return app.openapi_schema
    spec = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["ErrorOut"] = ErrorOut.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schemas["ErrorOut"].pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    for path, ops in spec.get("paths", {}).items():
        for op in ops.values():
            responses = op.setdefault("responses", {})
            for status in _statuses(op, path):
                responses.setdefault(status, {"description": _DESCRIPTIONS[status]})
            for status, response in responses.items():
                if status.startswith("4"):
                    response["content"] = {"application/json": {"schema": _ERROR_REF}}
    app.openapi_schema = spec
    return spec


def install(app: FastAPI) -> None:
    """Make ``app`` serve :func:`honest_openapi` at its OpenAPI URL."""
    app.openapi = lambda: honest_openapi(app)  # type: ignore[method-assign]
