"""Request body limits, enforced before a body is read: an ASGI middleware.

* A body larger than its route's limit gets 413 at once when ``Content-Length`` says so, and as soon
  as the count passes the limit when it does not (chunked uploads): the rest is never buffered.
* A body larger than :data:`ANONYMOUS_BYTES` is read only from a caller whose bearer token is valid:
  the 401 comes before the body, so an unauthenticated 50 MB upload costs one header check.

Limits per path prefix are in :data:`LIMITS` (bytes); anything else gets :data:`DEFAULT_BYTES`.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opsloop.store import repository as repo
from opsloop.store.session import Store

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

MiB = 1024 * 1024
DEFAULT_BYTES = 16 * MiB
ANONYMOUS_BYTES = 64 * 1024
LIMITS = {"/rag/documents": 5 * MiB + 64 * 1024, "/cycles/files": 200 * MiB, "/observe/files": 200 * MiB}


def limit_for(path: str) -> int:
    """The largest body (bytes) ``path`` accepts."""
    return next((n for prefix, n in LIMITS.items() if path.startswith(prefix)), DEFAULT_BYTES)


async def _reply(send: Send, status: int, detail: str, headers: list[tuple[bytes, bytes]] = ()) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


class BodyLimits:
    """ASGI middleware around ``app`` checking body sizes (and, for large bodies, the token against
    ``store``) before the app reads anything."""

    def __init__(self, app: Callable[..., Awaitable[None]], store: Store) -> None:
        self.app = app
        self.store = store

    def _authenticated(self, scope: Scope) -> bool:
        auth = dict(scope.get("headers") or []).get(b"authorization", b"").decode("latin-1")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        with self.store() as s:
            return repo.token_identity(s, token.strip()) is not None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = limit_for(scope["path"])
        declared = dict(scope.get("headers") or []).get(b"content-length")
        size = int(declared) if declared and declared.isdigit() else None
        if size is not None and size > limit:
            await _reply(send, 413, f"body of {size} bytes is larger than the {limit} this route accepts")
            return
        if (size is None or size > ANONYMOUS_BYTES) and not self._authenticated(scope):
            await _reply(send, 401, "a body this large needs a valid bearer token",
                         [(b"www-authenticate", b"Bearer")])
            return
        seen = 0
        replied = False

        async def counted() -> Message:
            nonlocal seen, replied
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:  # answer now; the app sees the client gone and its reply is dropped
                    replied = True
                    await _reply(send, 413, f"body larger than the {limit} bytes this route accepts")
                    return {"type": "http.disconnect"}
            return message

        async def guarded(message: Message) -> None:
            if not replied:
                await send(message)

        await self.app(scope, counted, guarded)
