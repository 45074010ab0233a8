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

A crash between 1 and 3 leaves the action ``executing``. Nothing claims it again (whether the side
effect happened is unknown); :func:`stale_after_seconds` says when such a claim is overdue and
:func:`~opsloop.store.repository.stale_executions` finds it; the outbox reports it.

A timed-out call is abandoned, not killed: its daemon thread may still finish; its answer is ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
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


def execute_claimed(store: Store, action_id: str, actor: str, policy: Policy, executor: Executor,
                    limits: ExecutionLimits) -> ProposedAction:
    """Claim, run and record one execution (the module docstring's steps 1-3); returns the action as
    stored: ``succeeded``, ``failed`` (reason in ``result``), or ``expired`` if its approval outlived
    ``policy.approval_ttl_seconds`` (nothing ran).

    Raises ``NotFound``; ``Conflict`` if the action is not ``approved`` (never approved, or claimed by
    someone else: of racing calls exactly one runs the executor). Store errors propagate; one after
    the claim leaves the action ``executing`` (found later by ``stale_executions``).
    """
    with store.begin() as s:
        action = repo.claim_execution(s, action_id, actor, policy)
    if action.status != ActionStatus.executing:
        return action
    outcome = run_executor(executor, action, limits)
    with store.begin() as s:
        return repo.finish_execution(s, action_id, actor, outcome.ok, outcome.result, outcome.reason)


def stale_after_seconds(settings: Settings, executor_factory: ExecutorFactory | None = None) -> float:
    """Seconds after which an ``executing`` claim is overdue: the longest :attr:`ExecutionLimits.deadline_seconds`
    of the catalog's executors plus ``settings.actions.stale_margin_seconds``."""
    factory = executor_factory or (lambda t: executor_for(t, settings))
    deadlines = [ExecutionLimits(settings.actions.timeout_seconds, settings.actions.retries,
                                 settings.actions.backoff_seconds).deadline_seconds]
    for spec in all_specs(settings.pack):
        try:
            deadlines.append(ExecutionLimits.for_executor(factory(spec.type), settings).deadline_seconds)
        except (KeyError, ValueError):  # e.g. webhook without a URL: such actions cannot be claimed
            continue
    return max(deadlines) + settings.actions.stale_margin_seconds


@dataclass(frozen=True)
class Skipped:
    """An action the outbox left alone, and why (claimed elsewhere, expired, no executor, policy)."""

    action_id: str
    reason: str


@dataclass(frozen=True)
class OutboxReport:
    """What one :func:`run_outbox` pass did. ``executed_ids`` = succeeded + failed, in run order;
    ``stale_ids``: claims overdue by :func:`stale_after_seconds` (reported, never run again)."""

    executed_ids: tuple[str, ...] = ()
    succeeded_ids: tuple[str, ...] = ()
    failed_ids: tuple[str, ...] = ()
    skips: tuple[Skipped, ...] = ()
    stale_ids: tuple[str, ...] = ()

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
    def stale(self) -> int:
        return len(self.stale_ids)


@dataclass
class _Tally:
    executed: list[str] = field(default_factory=list)
    succeeded: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skips: list[Skipped] = field(default_factory=list)


def _read_only(action: ProposedAction, settings: Settings) -> bool:
    """Whether the catalog marks the action's type read-only (unknown types are not)."""
    try:
        return spec_for(action.type, settings.pack).read_only
    except KeyError:
        return False


def run_outbox(store: Store, settings: Settings, *, actor: str = "policy",
               executor_factory: ExecutorFactory | None = None, limit: int | None = None,
               policy: Policy | None = None) -> OutboxReport:
    """Run every action the policy approved to run alone (oldest first, at most ``limit``) through
    :func:`execute_claimed` as ``actor``, outside any transaction; call it after the transaction that
    stored them has committed.

    ``policy`` (default ``settings.policy()``) is checked again: an action it no longer lets run
    alone is skipped, left ``approved``. ``executor_factory`` maps an action type to its executor
    (default: the catalog's); a type without a usable executor is skipped. An executor error or
    timeout fails that action only. Returns the :class:`OutboxReport`, including the overdue claims
    (never re-run). Store errors propagate (an action claimed by then stays ``executing``).
    """
    policy = policy or settings.policy()
    factory = executor_factory or (lambda t: executor_for(t, settings))
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
        tally.executed.append(action.id)
        (tally.succeeded if done.status == ActionStatus.succeeded else tally.failed).append(action.id)
    with store() as s:
        stale = repo.stale_executions(s, stale_after_seconds(settings, factory))
    return OutboxReport(tuple(tally.executed), tuple(tally.succeeded), tuple(tally.failed), tuple(tally.skips),
                        tuple(a.id for a in stale))
