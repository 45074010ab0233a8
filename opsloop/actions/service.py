"""Action operations as the CLI and the API call them: approve, reject, execute, and the recovery of
an interrupted execution: resolve, retry.

Each runs its state changes as store transactions through :mod:`opsloop.store.repository`, which
enforces the gate. Execution goes through :func:`opsloop.actions.outbox.execute_claimed`, the same
path the outbox uses: ``approved → executing`` claimed once, the executor run outside any
transaction with a timeout and bounded retries, the outcome stored in a second transaction. A claim
a crash left behind becomes ``unknown`` (:func:`opsloop.actions.outbox.mark_overdue`); an operator
then resolves it after checking, or retries it on the same claimed path with the same idempotency key.
"""

from __future__ import annotations

from opsloop.actions.executors import Executor, executor_for
from opsloop.actions.outbox import ExecutionLimits, execute_claimed, mark_overdue
from opsloop.config import Settings
from opsloop.domain import ActionStatus, Policy, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store

__all__ = ["Expired", "approve", "execute", "executor_for", "reject", "resolve", "retry"]


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
    executor = _executor(store, action_id, settings, executor)
    action = execute_claimed(store, action_id, actor, policy, executor, ExecutionLimits.for_executor(executor, settings))
    if action.status == ActionStatus.expired:
        raise Expired(f"action {action_id}'s approval expired before execution (TTL {policy.approval_ttl_seconds:.0f} s)")
    return action


def _executor(store: Store, action_id: str, settings: Settings, executor: Executor | None) -> Executor:
    """``executor``, or the catalog's for the action's type (``NotFound``; ``ValueError`` if it cannot be built)."""
    if executor is not None:
        return executor
    with store() as s:
        action_type = repo.get_action(s, action_id).type
    return executor_for(action_type, settings)


def resolve(store: Store, action_id: str, actor: str, outcome: ActionStatus, note: str,
            settings: Settings) -> ProposedAction:
    """Resolve an interrupted execution as ``outcome`` (``succeeded`` or ``failed``) after ``actor``
    checked what happened; ``note`` says what was checked (required, kept in the result and the audit).
    A claim already overdue is first marked ``unknown`` (so nobody waits for a cycle). Raises
    ``NotFound``; ``Conflict`` naming the status if the action is not ``unknown``; ``ValueError`` for
    another outcome or an empty note."""
    mark_overdue(store, settings, action_id=action_id)
    with store.begin() as s:
        return repo.resolve_unknown(s, action_id, actor, outcome, note)


def retry(store: Store, action_id: str, actor: str, policy: Policy, settings: Settings,
          executor: Executor | None = None) -> ProposedAction:
    """Run an interrupted (``unknown``) execution again as ``actor`` through
    :func:`~opsloop.actions.outbox.execute_claimed`, with the same idempotency key; returns the
    action ``succeeded`` or ``failed``. A claim already overdue is first marked ``unknown``. Of
    racing retries exactly one runs the executor. ``executor`` defaults to the catalog's. Raises
    ``NotFound``; ``Conflict`` naming the status if the action is not ``unknown``; ``ValueError`` if
    the executor cannot be built (nothing is claimed)."""
    executor = _executor(store, action_id, settings, executor)
    mark_overdue(store, settings, lambda t: executor, action_id=action_id)
    return execute_claimed(store, action_id, actor, policy, executor, ExecutionLimits.for_executor(executor, settings),
                           retry=f"retry by {actor} (same idempotency key)")
