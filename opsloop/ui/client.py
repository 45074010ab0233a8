"""The UI's only way to the data: a small HTTP client of the opsloop API.

Every page goes through :class:`ApiClient`; nothing in :mod:`opsloop.ui` opens the store. The API is
where authentication and roles live, so the UI holds a bearer token and nothing else. Responses are
parsed into the API's typed models (:mod:`opsloop.domain`, :mod:`opsloop.api.schemas`); a failed call
raises :class:`ApiError` with the status and the API's one-line ``detail``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter

T = TypeVar("T")

DEFAULT_URL = "http://127.0.0.1:8000"


def api_url() -> str:
    """The API's base URL: ``OPSLOOP_API_URL``, default ``http://127.0.0.1:8000``."""
    return os.environ.get("OPSLOOP_API_URL", DEFAULT_URL).rstrip("/")


class ApiError(Exception):
    """A call that did not succeed: ``status`` (HTTP status, 0 when the API is unreachable) and
    ``detail`` (the API's one-line explanation)."""

    def __init__(self, status: int, detail: str):
        super().__init__(f"{status}: {detail}" if status else detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list endpoint: ``data`` (parsed items) and ``count`` (all matching items)."""

    data: list[T]
    count: int


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(body, dict) and body.get("errors"):
        parts = [f"{'.'.join(str(p) for p in e.get('loc', []) if p not in ('body', 'query'))}: {e.get('msg', '')}"
                 for e in body["errors"]]
        return f"{detail}: " + "; ".join(parts)
    return str(detail) if detail is not None else response.text.strip()[:300]


class ApiClient:
    """Calls the API at ``base_url`` with ``token`` (bearer). ``timeout`` in seconds per call.

    ``get``/``post``/``delete`` return the decoded JSON, or the body parsed as ``model`` when given;
    ``page`` parses a ``{"data": [...], "count": n}`` envelope. All raise :class:`ApiError`.
    """

    def __init__(self, base_url: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.base_url = (base_url or api_url()).rstrip("/")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def _call(self, method: str, path: str, model: Any = None, timeout: float | None = None, **kw: Any) -> Any:
        try:
            response = self._http.request(method, path, timeout=timeout or httpx.USE_CLIENT_DEFAULT, **kw)
        except httpx.TimeoutException:
            raise ApiError(0, f"the API at {self.base_url} did not answer {method} {path} in time") from None
        except httpx.HTTPError as exc:
            raise ApiError(0, f"cannot reach the API at {self.base_url}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _detail(response))
        body = response.json() if response.content else None
        if model is None:
            return body
        if isinstance(model, type) and issubclass(model, BaseModel):
            return model.model_validate(body)
        return TypeAdapter(model).validate_python(body)

    def get(self, path: str, model: Any = None, params: dict[str, Any] | list[tuple[str, Any]] | None = None,
            timeout: float | None = None) -> Any:
        return self._call("GET", path, model, timeout, params=_clean(params))

    def post(self, path: str, model: Any = None, json: Any = None, files: Any = None,
             params: dict[str, Any] | None = None, timeout: float | None = None) -> Any:
        return self._call("POST", path, model, timeout, json=json, files=files, params=_clean(params))

    def delete(self, path: str, model: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._call("DELETE", path, model, None, params=_clean(params))

    def page(self, path: str, item: type[T], params: dict[str, Any] | list[tuple[str, Any]] | None = None) -> Page[T]:
        body = self.get(path, params=params)
        return Page(data=TypeAdapter(list[item]).validate_python(body["data"]), count=int(body["count"]))


def _clean(params: dict[str, Any] | list[tuple[str, Any]] | None) -> Any:
    """Drop unset (None or empty) query parameters; a list of pairs allows repeated keys."""
    if params is None:
        return None
    pairs = params.items() if isinstance(params, dict) else params
    return [(k, v) for k, v in pairs if v is not None and v != "" and v != []]
