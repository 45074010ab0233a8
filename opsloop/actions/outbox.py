"""The outbox: actions run after the transaction that stored them has committed, each claimed once.

A cycle only stores incidents and proposed actions; an action the policy lets run without a human is
stored ``approved`` by ``policy``. :func:`run_outbox` then takes each such action through
:func:`execute_claimed`, the one claimed-execution path that human execution
(:func:`opsloop.actions.service.execute`) uses too:

1. claim ``approved → executing`` in its own transaction (:func:`~opsloop.store.repository.claim_execution`,
   one conditional UPDATE: of racing or repeated claims exactly one wins);
2. run the executor **outside any transaction**, in a worker thread with a deadline; an exception is
   retried with exponential backoff, at most ``retries`` times; a timeout is final (the call may still
   be running and may yet act, so a second call could act twice);
3. record ``succeeded`` or ``failed`` (the reason in the action's result and in the audit event) in a
   second transaction.

A crash between 1 and 3 leaves the action ``executing``; whether the side effect happened is not
known. Recovery has one place, :func:`mark_overdue`, run at the start of every :func:`run_outbox`
(so after each cycle's act stage and each runner window) and by the operator's
:func:`~opsloop.actions.service.resolve` / :func:`~opsloop.actions.service.retry` for their action: a
claim older than its executor's :attr:`ExecutionLimits.deadline_seconds` plus
``settings.actions.stale_margin_seconds`` (:func:`stale_after_seconds`) becomes ``unknown``
(:func:`~opsloop.store.repository.mark_unknown`, audited). An operator then resolves it as
``succeeded`` or ``failed`` after checking, or retries it through :func:`execute_claimed` with the same
idempotency key. Automation never retries it, unless its executor declares ``idempotent = True``: then
:func:`run_outbox` re-claims it once (never again after that) and reports it in ``retried_ids``.

A timed-out call is abandoned, not killed: its daemon thread may still finish; its answer is ignored.

Fault injection for the kill tests (``tests/actions/test_kill_execution.py``): with the environment
variable ``OPSLOOP_FAULT_AT`` set to ``claimed``, ``executed`` or ``recorded``, :func:`execute_claimed`
SIGKILLs its own process right after the claim commits, after the executor returned (before the
record), or after the record commits. Unset (always, outside those tests), it does nothing.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from opsloop.actions.catalog import all_specs, spec_for
from opsloop.actions.executors import Executor, executor_for
from opsloop.config import Settings
from opsloop.domain import ActionStatus, Policy, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store

ExecutorFactory = Callable[[str], Executor]
"""Action type → the executor that carries it out (default :func:`~opsloop.actions.executors.executor_for`)."""


class ExecutorTimeout(TimeoutError):
    """An executor call did not return within its timeout."""


@dataclass(frozen=True)
class ExecutionLimits:
    """How long one executor call may take and how often an executor error is retried.

    ``timeout_seconds``: wall-clock seconds per call; ``retries``: further calls after the executor
    raised (never after a timeout or a reported failure); ``backoff_seconds``: sleep
    ``backoff_seconds · 2**i`` before retry ``i + 1``.
    """

    timeout_seconds: float
    retries: int = 0
    backoff_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.timeout_seconds <= 0 or self.retries < 0 or self.backoff_seconds < 0:
            raise ValueError(f"invalid execution limits {self}")

    @property
    def deadline_seconds(self) -> float:
        """The longest a claim can legitimately stay ``executing``: every call timing out plus the sleeps."""
        return (self.retries + 1) * self.timeout_seconds + sum(self.backoff_seconds * 2**i for i in range(self.retries))

    @classmethod
    def for_executor(cls, executor: Executor, settings: Settings) -> ExecutionLimits:
        """The executor's own ``deadline_seconds`` if it declares one, else the settings' ``actions.timeout_seconds``;
        retries and backoff from ``settings``."""
        timeout = getattr(executor, "deadline_seconds", None) or settings.actions.timeout_seconds
        return cls(float(timeout), settings.actions.retries, settings.actions.backoff_seconds)


@dataclass(frozen=True)
class Outcome:
    """What running an executor came to: ``ok``, the result to store, calls made, and why it failed."""

    ok: bool
    result: dict[str, Any]
    attempts: int
    reason: str | None = None


def _call_with_timeout(executor: Executor, action: ProposedAction, timeout: float) -> tuple[bool, dict[str, Any]]:
    """``executor.execute(action)`` in a daemon thread; its answer or exception, or ``ExecutorTimeout``
    after ``timeout`` seconds (the thread is then abandoned)."""
    answer: list[tuple[bool, dict[str, Any]]] = []
    error: list[BaseException] = []
    done = threading.Event()

    def target() -> None:
        try:
            answer.append(executor.execute(action))
        except BaseException as exc:  # noqa: BLE001 -- handed to the caller, which records it
            error.append(exc)
        finally:
            done.set()

    threading.Thread(target=target, name=f"opsloop-executor-{action.id}", daemon=True).start()
    if not done.wait(timeout):
        raise ExecutorTimeout(f"timed out after {timeout:g} s")
    if error:
        raise error[0]
    ok, result = answer[0]
    return bool(ok), dict(result)


def run_executor(executor: Executor, action: ProposedAction, limits: ExecutionLimits) -> Outcome:
    """Run ``executor`` on ``action`` under ``limits`` (no store access; call it outside transactions).

    An exception is retried up to ``limits.retries`` times with backoff; the final one fails with
    ``"<Type>: <message>"``. A timeout fails at once with ``"timed out after N s"``. A reported
    failure (``(False, details)``) fails with the details kept. Never raises for the executor.
    """
    errors: list[str] = []
    last = ""
    name = getattr(executor, "name", type(executor).__name__)
    for attempt in range(1, limits.retries + 2):
        if attempt > 1:
            time.sleep(limits.backoff_seconds * 2 ** (attempt - 2))
        try:
            ok, result = _call_with_timeout(executor, action, limits.timeout_seconds)
        except ExecutorTimeout as exc:
            reason = str(exc)
            return Outcome(False, {"executor": name, "reason": reason, "attempts": attempt, "errors": [*errors, reason]},
                           attempt, reason)
        except Exception as exc:  # noqa: BLE001 -- any executor error is recorded, never propagated
            last = f"{type(exc).__name__}: {exc}"
            errors.append(f"attempt {attempt}: {last}")
            continue
        if ok:
            return Outcome(True, {**result, "attempts": attempt}, attempt)
        reason = f"executor {name} reported failure"
        return Outcome(False, {**result, "reason": reason, "attempts": attempt}, attempt, reason)
    return Outcome(False, {"executor": name, "reason": last, "attempts": len(errors), "errors": errors},
                   len(errors), last)


FAULT_POINTS = ("claimed", "executed", "recorded")
"""Where ``OPSLOOP_FAULT_AT`` may kill :func:`execute_claimed` (see the module docstring)."""


def _fault(point: str) -> None:
    """SIGKILL this process if ``OPSLOOP_FAULT_AT`` names ``point`` (the kill tests' hook; else nothing)."""
    if os.environ.get("OPSLOOP_FAULT_AT") == point:
        os.kill(os.getpid(), signal.SIGKILL)


def execute_claimed(store: Store, action_id: str, actor: str, policy: Policy, executor: Executor,
                    limits: ExecutionLimits, *, retry: str | None = None) -> ProposedAction:
    """Claim, run and record one execution (the module docstring's steps 1-3); returns the action as
    stored: ``succeeded``, ``failed`` (reason in ``result``), or ``expired`` if its approval outlived
    ``policy.approval_ttl_seconds`` (nothing ran).

    ``retry``: claim an ``unknown`` action again instead of an ``approved`` one
    (:func:`~opsloop.store.repository.reclaim_execution`; the text, e.g. who retries and why, goes to
    the audit event); the executor gets the same action, so the same idempotency key.

    Raises ``NotFound``; ``Conflict`` naming the status if the action is not ``approved`` (or, with
    ``retry``, not ``unknown``): never approved, or claimed by someone else; of racing calls exactly
    one runs the executor. Store errors propagate; one after the claim leaves the action
    ``executing`` (:func:`mark_overdue` makes it ``unknown`` once overdue).
    """
    with store.begin() as s:
        if retry is None:
            action = repo.claim_execution(s, action_id, actor, policy)
        else:
            action = repo.reclaim_execution(s, action_id, actor, retry)
    if action.status != ActionStatus.executing:
        return action
    _fault("claimed")
    outcome = run_executor(executor, action, limits)
    _fault("executed")
    with store.begin() as s:
        done = repo.finish_execution(s, action_id, actor, outcome.ok, outcome.result, outcome.reason)
    _fault("recorded")
    return done


def stale_after_seconds(settings: Settings, executor_factory: ExecutorFactory | None = None,
                        action_type: str | None = None) -> float:
    """Seconds after which an ``executing`` claim is overdue: the :attr:`ExecutionLimits.deadline_seconds`
    of ``action_type``'s executor (default, or when that executor cannot be built: the longest of the
    catalog's executors and of the settings' own limits) plus ``settings.actions.stale_margin_seconds``."""
    factory = executor_factory or (lambda t: executor_for(t, settings))
    if action_type is not None:
        try:
            own = ExecutionLimits.for_executor(factory(action_type), settings).deadline_seconds
        except (KeyError, ValueError):
            return stale_after_seconds(settings, factory)
        return own + settings.actions.stale_margin_seconds
    deadlines = [ExecutionLimits(settings.actions.timeout_seconds, settings.actions.retries,
                                 settings.actions.backoff_seconds).deadline_seconds]
    for spec in all_specs(settings.pack):
        try:
            deadlines.append(ExecutionLimits.for_executor(factory(spec.type), settings).deadline_seconds)
        except (KeyError, ValueError):  # e.g. webhook without a URL: such actions cannot be claimed
            continue
    return max(deadlines) + settings.actions.stale_margin_seconds


def is_idempotent(executor: Executor) -> bool:
    """Whether ``executor`` declares ``idempotent = True`` (absent: not idempotent)."""
    return getattr(executor, "idempotent", False) is True


def mark_overdue(store: Store, settings: Settings, executor_factory: ExecutorFactory | None = None,
                 action_id: str | None = None, at: datetime | None = None) -> tuple[ProposedAction, ...]:
    """Move every ``executing`` claim (or only ``action_id``'s) older than its own
    :func:`stale_after_seconds` at ``at`` (default now, UTC) to ``unknown``, one conditional UPDATE
    and audit event per action, in one write transaction (none when nothing is executing). Returns
    the actions it moved, oldest claim first. The one recovery step: see the module docstring."""
    factory = executor_factory or (lambda t: executor_for(t, settings))
    with store() as s:
        claims = repo.stale_executions(s, 0.0, at)
    claims = [a for a in claims if action_id is None or a.id == action_id]
    if not claims:
        return ()
    deadlines = {t: stale_after_seconds(settings, factory, t) for t in {a.type for a in claims}}
    with store.begin() as s:
        moved = [repo.mark_unknown(s, a.id, deadlines[a.type], at) for a in claims]
    return tuple(a for a in moved if a is not None)


@dataclass(frozen=True)
class Skipped:
    """An action the outbox left alone, and why (claimed elsewhere, expired, no executor, policy)."""

    action_id: str
    reason: str


@dataclass(frozen=True)
class OutboxReport:
    """What one :func:`run_outbox` pass did. ``executed_ids`` = succeeded + failed, in run order;
    ``unknown_ids``: claims this pass found overdue and moved to ``unknown`` (:func:`mark_overdue`);
    ``retried_ids``: ``unknown`` actions with an idempotent executor this pass claimed again (once
    per action, ever; their outcome is in ``executed_ids`` and ``succeeded_ids``/``failed_ids``)."""

    executed_ids: tuple[str, ...] = ()
    succeeded_ids: tuple[str, ...] = ()
    failed_ids: tuple[str, ...] = ()
    skips: tuple[Skipped, ...] = ()
    unknown_ids: tuple[str, ...] = ()
    retried_ids: tuple[str, ...] = ()

    @property
    def executed(self) -> int:
        return len(self.executed_ids)

    @property
    def succeeded(self) -> int:
        return len(self.succeeded_ids)

    @property
    def failed(self) -> int:
        return len(self.failed_ids)

    @property
    def skipped(self) -> int:
        return len(self.skips)

    @property
    def skipped_ids(self) -> tuple[str, ...]:
        return tuple(s.action_id for s in self.skips)

    @property
    def unknown(self) -> int:
        return len(self.unknown_ids)

    @property
    def retried(self) -> int:
        return len(self.retried_ids)

    @property
    def stale(self) -> int:
        """Claims a crash left behind that this pass found (= :attr:`unknown`; the cycle's ``actions_stale``)."""
        return self.unknown


@dataclass
class _Tally:
    executed: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skips: list[Skipped] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)

    def record(self, done: ProposedAction) -> None:
        self.executed.append(done.id)
        (self.succeeded if done.status == ActionStatus.succeeded else self.failed).append(done.id)


def _read_only(action: ProposedAction, settings: Settings) -> bool:
    """Whether the catalog marks the action's type read-only (unknown types are not)."""
    try:
        return spec_for(action.type, settings.pack).read_only
    except KeyError:
        return False


def _retry_idempotent(store: Store, settings: Settings, actor: str, policy: Policy, factory: ExecutorFactory,
                      tally: _Tally) -> None:
    """Claim each ``unknown`` action whose executor is idempotent again, once ever per action
    (:func:`~opsloop.store.repository.reclaims`); the others wait for an operator."""
    with store() as s:
        waiting = [a for a in repo.list_actions(s, ActionStatus.unknown.value) if repo.reclaims(s, a.id) == 0]
    for action in waiting:
        try:
            executor = factory(action.type)
        except (KeyError, ValueError):
            continue  # no executor to judge idempotency by: an operator decides
        if not is_idempotent(executor):
            continue
        reason = f"{getattr(executor, 'name', type(executor).__name__)} is idempotent: automatic retry, once"
        try:
            done = execute_claimed(store, action.id, actor, policy, executor,
                                   ExecutionLimits.for_executor(executor, settings), retry=reason)
        except repo.Conflict as exc:  # resolved or retried by someone else since it was listed
            tally.skips.append(Skipped(action.id, str(exc)))
            continue
        tally.retried.append(action.id)
        tally.record(done)


def run_outbox(store: Store, settings: Settings, *, actor: str = "policy",
               executor_factory: ExecutorFactory | None = None, limit: int | None = None,
               policy: Policy | None = None) -> OutboxReport:
    """One outbox pass, outside any transaction (call it after the transaction that stored the
    actions has committed): first :func:`mark_overdue`; then every action the policy approved to run
    alone (oldest first, at most ``limit``) through :func:`execute_claimed` as ``actor``; then, once
    each, the ``unknown`` actions whose executor is idempotent.

    ``policy`` (default ``settings.policy()``) is checked again: an action it no longer lets run
    alone is skipped, left ``approved``. ``executor_factory`` maps an action type to its executor
    (default: the catalog's); a type without a usable executor is skipped. An executor error or
    timeout fails that action only. Returns the :class:`OutboxReport`. Store errors propagate (an
    action claimed by then stays ``executing`` until a later pass finds it overdue).
    """
    policy = policy or settings.policy()
    factory = executor_factory or (lambda t: executor_for(t, settings))
    unknown = mark_overdue(store, settings, factory)
    with store() as s:
        queue = repo.approved_auto_actions(s, limit)
    tally = _Tally()
    for action in queue:
        if not policy.auto_executes(action.risk, action.confidence, action.type, read_only=_read_only(action, settings)):
            tally.skips.append(Skipped(action.id, "the policy no longer lets this action run without approval"))
            continue
        try:
            executor = factory(action.type)
        except (KeyError, ValueError) as exc:
            tally.skips.append(Skipped(action.id, f"no executor: {exc}"))
            continue
        try:
            done = execute_claimed(store, action.id, actor, policy, executor, ExecutionLimits.for_executor(executor, settings))
        except repo.Conflict as exc:  # claimed (or changed) by someone else since it was listed
            tally.skips.append(Skipped(action.id, str(exc)))
            continue
        if done.status == ActionStatus.expired:
            tally.skips.append(Skipped(action.id, f"approval expired (TTL {policy.approval_ttl_seconds:.0f} s)"))
            continue
        tally.record(done)
    _retry_idempotent(store, settings, actor, policy, factory, tally)
    return OutboxReport(tuple(tally.executed), tuple(tally.succeeded), tuple(tally.failed), tuple(tally.skips),
                        tuple(a.id for a in unknown), tuple(tally.retried))
