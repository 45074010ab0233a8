"""Action operations as the CLI, the API and the pipeline call them: approve, reject, execute.

Each runs its state changes as store transactions through :mod:`opsloop.store.repository`, which
enforces the gate; an executor runs only after ``approved → executing`` was claimed, outside any
transaction, and its outcome is stored in a second transaction.
"""

from __future__ import annotations

from opsloop.actions.catalog import load_catalog
from opsloop.actions.executors import Executor, SimulatedExecutor, WebhookExecutor
from opsloop.domain import Policy
from opsloop.config import Settings
from opsloop.domain import ActionStatus, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store


class Expired(repo.Conflict):
    """The proposal or approval outlived the approval TTL and is now ``expired``."""


def executor_for(action_type: str, settings: Settings) -> Executor:
    """The catalog's executor for ``action_type`` (``webhook`` needs ``OPSLOOP_WEBHOOK_URL``)."""
    spec = load_catalog().get(action_type)
    if spec.executor == "webhook":
        if not settings.webhook_url:
            raise ValueError(f"action {action_type} uses the webhook executor but OPSLOOP_WEBHOOK_URL is not set")
        return WebhookExecutor(url=settings.webhook_url, secret=settings.webhook_secret)
    return SimulatedExecutor()


def approve(store: Store, action_id: str, actor: str, policy: Policy) -> tuple[ProposedAction, bool]:
    """Record an approval; (action, approved now?). Raises ``NotFound``/``Conflict``/``Expired``/``PolicyViolation``."""
    with store.begin() as s:
        action, done = repo.approve_action(s, action_id, actor, policy)
    if action.status == ActionStatus.expired:
        raise Expired(f"action {action_id} expired before it was approved (approval TTL {policy.approval_ttl_seconds:.0f} s)")
    return action, done


def reject(store: Store, action_id: str, actor: str, reason: str) -> ProposedAction:
    with store.begin() as s:
        return repo.reject_action(s, action_id, actor, reason)


def execute(store: Store, action_id: str, actor: str, policy: Policy, settings: Settings,
            executor: Executor | None = None) -> ProposedAction:
    """Claim, run and record one execution. Of racing or repeated calls exactly one runs the executor;
    the others raise ``Conflict``. An executor exception is recorded as ``failed``."""
    with store.begin() as s:
        action = repo.claim_execution(s, action_id, actor, policy)
    if action.status == ActionStatus.expired:
        raise Expired(f"action {action_id}'s approval expired before execution (TTL {policy.approval_ttl_seconds:.0f} s)")
    try:
        ok, result = (executor or executor_for(action.type, settings)).execute(action)
    except Exception as exc:  # noqa: BLE001 -- the outcome must be recorded whatever the executor did
        ok, result = False, {"error": f"{type(exc).__name__}: {exc}"}
    with store.begin() as s:
        return repo.finish_execution(s, action_id, actor, ok, result)
