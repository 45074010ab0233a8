"""Action operations as the CLI and the API call them: approve, reject, execute.

Each runs its state changes as store transactions through :mod:`opsloop.store.repository`, which
enforces the gate. Execution goes through :func:`opsloop.actions.outbox.execute_claimed`, the same
path the outbox uses: ``approved → executing`` claimed once, the executor run outside any
transaction with a timeout and bounded retries, the outcome stored in a second transaction.
"""

from __future__ import annotations

from opsloop.actions.executors import Executor, executor_for
from opsloop.actions.outbox import ExecutionLimits, execute_claimed
from opsloop.config import Settings
from opsloop.domain import ActionStatus, Policy, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store

__all__ = ["Expired", "approve", "execute", "executor_for", "reject"]


class Expired(repo.Conflict):
    """The proposal or approval outlived the approval TTL and is now ``expired``."""


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
    """Claim, run and record one execution (:func:`~opsloop.actions.outbox.execute_claimed`); returns
    the action ``succeeded`` or ``failed``. Of racing or repeated calls exactly one runs the executor;
    the others raise ``Conflict``. ``executor`` defaults to the catalog's; one that cannot be built
    (``ValueError``, e.g. no webhook URL) is reported before anything is claimed. Raises ``NotFound``,
    ``Conflict``, ``Expired`` (the approval outlived the TTL; nothing ran)."""
    if executor is None:
        with store() as s:
            action_type = repo.get_action(s, action_id).type
        executor = executor_for(action_type, settings)
    action = execute_claimed(store, action_id, actor, policy, executor, ExecutionLimits.for_executor(executor, settings))
    if action.status == ActionStatus.expired:
        raise Expired(f"action {action_id}'s approval expired before execution (TTL {policy.approval_ttl_seconds:.0f} s)")
    return action
