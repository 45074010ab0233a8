"""Executors: carry out an approved action, given its idempotency key.

* ``simulated`` (default): records what it would do.
* ``webhook``: HTTP POST of the action as JSON to a configured URL, signed with HMAC-SHA256 over the
  body (header ``X-Opsloop-Signature: sha256=<hex>``), with the idempotency key in
  ``Idempotency-Key``, a timeout, and bounded retries with exponential backoff on connection errors,
  timeouts and 5xx answers (a 4xx answer is final). The receiver deduplicates by the key, so a
  retry after a lost answer does not act twice.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from opsloop.actions.catalog import spec_for
from opsloop.config import Settings
from opsloop.domain import ProposedAction


class Executor(Protocol):
    """Carries out one action. An executor may also declare ``deadline_seconds`` (float): how long one
    ``execute`` call may take at most; :mod:`opsloop.actions.outbox` times it out after that (default
    ``OPSLOOP_ACTION_TIMEOUT_SECONDS``). ``idempotent`` (default False when absent): running the same
    action (same idempotency key) twice acts once, so the outbox may retry an interrupted execution
    (``unknown``) by itself, once; otherwise only an operator may."""

    name: str

    def execute(self, action: ProposedAction) -> tuple[bool, dict[str, Any]]:
        """Run the action; returns (succeeded?, result details). May raise; the caller records it."""


class SimulatedExecutor:
    """Records what it would do; always succeeds. ``idempotent`` as its catalog entry declares it."""

    name = "simulated"

    def __init__(self, idempotent: bool = False) -> None:
        self.idempotent = idempotent

    def execute(self, action: ProposedAction) -> tuple[bool, dict[str, Any]]:
        return True, {
            "executor": self.name, "idempotency_key": action.idempotency_key,
            "would_do": f"{action.type}({', '.join(f'{k}={v}' for k, v in sorted(action.params.items()))})",
            "at": datetime.now(UTC).isoformat(),
        }


def sign(body: bytes, secret: str) -> str:
    """``sha256=<hex HMAC-SHA256 of body with secret>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class WebhookExecutor:
    """POSTs ``{"action": ..., "idempotency_key": ...}`` to ``url`` (see module docstring).

    ``timeout`` seconds per attempt; at most ``retries`` retries after the first attempt, sleeping
    ``backoff · 2**i`` seconds before retry ``i``. ``idempotent``: the receiver is known to deduplicate
    by ``Idempotency-Key`` (the catalog entry declares it), so an interrupted execution may be retried.
    """

    url: str
    secret: str
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    name: str = "webhook"
    idempotent: bool = False

    @property
    def deadline_seconds(self) -> float:
        """Seconds one :meth:`execute` may take at most: every attempt at twice ``timeout`` (connect
        and read) plus the backoff sleeps. The outbox times the call out after this."""
        return (self.retries + 1) * 2 * self.timeout + sum(self.backoff * 2**i for i in range(self.retries))

    def execute(self, action: ProposedAction) -> tuple[bool, dict[str, Any]]:
        body = json.dumps({"action": action.model_dump(mode="json"), "idempotency_key": action.idempotency_key},
                          sort_keys=True).encode()
        headers = {"Content-Type": "application/json", "Idempotency-Key": action.idempotency_key,
                   "X-Opsloop-Signature": sign(body, self.secret)}
        errors: list[str] = []
        with httpx.Client(timeout=self.timeout) as client:
            for attempt in range(self.retries + 1):
                if attempt:
                    time.sleep(self.backoff * 2 ** (attempt - 1))
                try:
                    resp = client.post(self.url, content=body, headers=headers)
                except httpx.HTTPError as exc:
                    errors.append(f"attempt {attempt + 1}: {type(exc).__name__}: {exc}")
                    continue
                if resp.status_code < 300:
                    return True, {"executor": self.name, "status": resp.status_code, "attempts": attempt + 1,
                                  "idempotency_key": action.idempotency_key, "response": resp.text[:500]}
                errors.append(f"attempt {attempt + 1}: HTTP {resp.status_code}")
                if resp.status_code < 500:
                    break
        return False, {"executor": self.name, "errors": errors, "idempotency_key": action.idempotency_key}


def executor_for(action_type: str, settings: Settings) -> Executor:
    """The catalog's executor for ``action_type`` (its entry by
    :func:`~opsloop.actions.catalog.spec_for` in the settings' pack). Raises ``KeyError`` for a type not in the catalog,
    ``ValueError`` if it uses ``webhook`` and ``OPSLOOP_WEBHOOK_URL`` is not set."""
    spec = spec_for(action_type, settings.pack)
    if spec.executor == "webhook":
        if not settings.actions.webhook_url:
            raise ValueError(f"action {action_type} uses the webhook executor but OPSLOOP_WEBHOOK_URL is not set")
        return WebhookExecutor(url=settings.actions.webhook_url,
                               secret=settings.actions.webhook_secret.get_secret_value(), idempotent=spec.idempotent)
    return SimulatedExecutor(idempotent=spec.idempotent)
