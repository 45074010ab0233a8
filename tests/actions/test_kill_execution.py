"""Kill tests: a real process runs an execution and is SIGKILLed at each point between claim, side
effect and record; recovery (the next outbox pass, then an operator) leaves no action stuck
``executing`` and no side effect done twice, and the audit chain verifies.

Each round stores one incident with two catalog actions: ``open_ticket`` (the policy approves it to
run alone) and ``page_oncall`` (approved by a human). A child process (``kill_child.py``) runs one of
them, automatically (an outbox pass, as a cycle runs it after its commit) or by hand
(``service.execute``), and dies:

* ``claimed``: right after the claim commits (``OPSLOOP_FAULT_AT``; no side effect yet);
* ``during``: the parent kills it at a random moment while the executor runs (before or after it
  appended its line);
* ``executed``: after the executor returned, before the outcome is recorded;
* ``recorded``: after the outcome is recorded.

Recovery: once the claim is past its deadline, an outbox pass in the parent (the next cycle) marks it
``unknown``; with an idempotent executor (every third repetition) that pass retries it once by itself.
An operator then checks the side-effect file, as one checks a receiver's console: the line is there
→ resolve ``succeeded``; it is not → retry (same idempotency key) or, every other time, resolve
``failed``. Run with ``-s`` for the tally.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import opsloop
from opsloop.actions import service
from opsloop.actions.outbox import FAULT_POINTS, run_outbox
from opsloop.config import Settings
from opsloop.domain import ActionStatus, ProposedAction
from opsloop.store import repository as repo
from opsloop.store.session import Store, open_store
from tests.actions.kill_child import SideEffectExecutor, lines
from tests.actions.test_outbox import _act, _incident

POINTS = ("claimed", "during", "executed", "recorded")
assert set(POINTS) == {*FAULT_POINTS, "during"}
PATHS = ("auto", "human")
REPEATS = 3  # 3 × 4 points × 2 paths = 24 kills per backend
SLEEP = 0.1  # seconds the executor sleeps before and after its side effect
DEADLINE = 0.6  # the executor's deadline (seconds); no retries, no margin: overdue after this
CHILD = Path(__file__).with_name("kill_child.py")
SRC = Path(opsloop.__file__).resolve().parent.parent


@dataclass
class Tally:
    """What the rounds did, for the assertions and the ``-s`` printout."""

    kills: Counter = field(default_factory=Counter)  # (path, point) -> kills
    effects_at_kill: Counter = field(default_factory=Counter)  # (point, lines of the key when it died)
    recovery: Counter = field(default_factory=Counter)  # how each action was brought to an end
    outcomes: Counter = field(default_factory=Counter)  # final status

    def show(self, backend: str) -> str:
        rows = [f"kill tally ({backend}): {sum(self.kills.values())} kills"]
        for point in POINTS:
            rows.append(f"  {point:>9}: " + ", ".join(f"{p} {self.kills[p, point]}" for p in PATHS)
                        + "; side-effect lines when killed: "
                        + ", ".join(f"{n}×{c}" for (pt, n), c in sorted(self.effects_at_kill.items()) if pt == point))
        rows.append("  recovery: " + ", ".join(f"{k} {v}" for k, v in sorted(self.recovery.items())))
        rows.append("  outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items())))
        return "\n".join(rows)


def _settings(tmp_path: Path, url: str) -> dict:
    """Keyword arguments of the parent's and the child's :class:`Settings`: the checkout pack
    (``open_ticket`` may run alone, ``page_oncall`` needs an approver); no retries and no margin, so
    a claim is overdue once the executor's deadline has passed."""
    return {"home": str(tmp_path / "home"), "database_url": url, "embedder": "tfidf", "pack": "checkout",
            "actions": {"auto_execute_confidence": 0.0, "timeout_seconds": 5.0, "retries": 0,
                        "backoff_seconds": 0.0, "stale_margin_seconds": 0.0}}


def _child(fault: str | None) -> subprocess.Popen:
    """A child process, started ahead: it imports, then waits for its job on stdin (:func:`_run`).
    ``fault``: its ``OPSLOOP_FAULT_AT``."""
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("OPSLOOP_FAULT_AT", None)
    if fault:
        env["OPSLOOP_FAULT_AT"] = fault
    return subprocess.Popen([sys.executable, str(CHILD)], env=env, cwd=SRC, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(proc: subprocess.Popen, job: dict) -> None:
    """Hand ``proc`` its job."""
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.flush()


def _kill_while_running(proc: subprocess.Popen, started: Path, key: str, rng: random.Random) -> None:
    """SIGKILL ``proc`` at a random moment while its executor runs (after it logged ``key`` as started)."""
    t0 = time.monotonic()
    while key not in lines(started):
        assert proc.poll() is None, f"the child ended before its executor started: {proc.communicate()}"
        assert time.monotonic() - t0 < 30, "the executor never started"
        time.sleep(0.005)
    time.sleep(rng.uniform(0.0, 1.5 * SLEEP))  # before or after its line; never after it answered
    os.kill(proc.pid, signal.SIGKILL)


def _wait_overdue(store: Store, action_id: str) -> None:
    """Sleep until the action's claim, if it is still ``executing``, is past its deadline."""
    with store() as s:
        if repo.get_action(s, action_id).status != ActionStatus.executing:
            return
        claimed_at = datetime.fromisoformat(repo.action_detail(s, action_id)["updated_at"])
    time.sleep(max(0.0, (claimed_at + timedelta(seconds=DEADLINE + 0.05) - repo.now()).total_seconds()))


def _operator(store: Store, settings: Settings, action: ProposedAction, executor: SideEffectExecutor,
              effects: Path, turn: int, tally: Tally) -> None:
    """What an operator does with an ``unknown`` action: check the side-effect file, then resolve or retry."""
    if action.idempotency_key in lines(effects):
        service.resolve(store, action.id, "carol", ActionStatus.succeeded,
                        "checked the side-effect file: the line is there", settings)
        tally.recovery["operator resolved succeeded (effect seen)"] += 1
    elif turn % 2 == 0:
        # nothing kills the retry: give it room on a loaded machine (the short DEADLINE is for the kills)
        patient = SideEffectExecutor(executor.effects, executor.started, executor.sleep, 30 * DEADLINE,
                                     executor.idempotent)
        done = service.retry(store, action.id, "carol", settings.policy(), settings, executor=patient)
        assert done.status == ActionStatus.succeeded
        tally.recovery["operator retried (no effect seen)"] += 1
    else:
        service.resolve(store, action.id, "carol", ActionStatus.failed,
                        "checked the side-effect file: no line, and the page is no longer needed", settings)
        tally.recovery["operator resolved failed (no effect seen)"] += 1


@dataclass
class Round:
    """One kill: where (``point``), on which path, and whether the executor is idempotent."""

    point: str
    path: str
    idempotent: bool

    @property
    def fault(self) -> str | None:
        """The child's ``OPSLOOP_FAULT_AT`` (none for ``during``: the parent kills it)."""
        return None if self.point == "during" else self.point


def _one_round(store: Store, settings: Settings, kwargs: dict, r: Round, proc: subprocess.Popen, turn: int,
               effects: Path, started: Path, rng: random.Random, tally: Tally) -> ProposedAction:
    """Store an incident, have ``proc`` run one of its actions and die at ``r.point``, recover it;
    returns the action."""
    executor = SideEffectExecutor(effects, started, SLEEP, DEADLINE, r.idempotent)
    (target,) = _act(store, settings, [_incident(f"fp-{turn}-{r.point}-{r.path}")])  # open_ticket, auto
    if r.path == "human":  # page_oncall, approved by alice; the auto one first runs here, unkilled
        auto = target
        (target,) = [x for x in _incident_actions(store, auto.incident_id) if x.id != auto.id]
        assert service.approve(store, target.id, "alice", settings.policy())[1]
        assert run_outbox(store, settings, executor_factory=lambda t: executor).executed_ids == (auto.id,)
    _run(proc, {"settings": kwargs, "mode": r.path, "action_id": target.id,
                "actor": "policy" if r.path == "auto" else "bob", "effects": str(effects), "started": str(started),
                "sleep": SLEEP, "deadline": DEADLINE, "idempotent": r.idempotent})
    if r.point == "during":
        _kill_while_running(proc, started, target.idempotency_key, rng)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, (r, proc.returncode, out, err)
    tally.kills[r.path, r.point] += 1
    tally.effects_at_kill[r.point, lines(effects).count(target.idempotency_key)] += 1

    _wait_overdue(store, target.id)
    report = run_outbox(store, settings, executor_factory=lambda t: executor)  # the next cycle
    with store() as s:
        assert repo.list_actions(s, ActionStatus.executing.value) == []  # none stuck past its deadline
        now = repo.get_action(s, target.id)
    if target.id in report.retried_ids:
        assert report.unknown_ids == (target.id,)
        tally.recovery["outbox retried it (idempotent executor)"] += 1
    elif now.status == ActionStatus.unknown:
        assert report.unknown_ids == (target.id,) and not r.idempotent
        _operator(store, settings, now, executor, effects, turn, tally)
    else:
        assert now.status == ActionStatus.succeeded and report.unknown_ids == ()
        tally.recovery["none needed (recorded before the kill)"] += 1
    return target


@pytest.mark.slow
def test_kills_at_every_point_give_no_double_effect_and_nothing_stuck(tmp_path, store_url, capsys):
    backend = "postgresql" if store_url.startswith("postgresql") else "sqlite"
    kwargs, store = _settings(tmp_path, store_url), open_store(store_url)
    settings = Settings(**kwargs)
    effects, started = tmp_path / "effects.txt", tmp_path / "started.txt"
    rng, tally, actions = random.Random(14), Tally(), []
    rounds = [Round(point, path, rep == REPEATS - 1) for rep in range(REPEATS) for point in POINTS for path in PATHS]
    t0 = time.perf_counter()
    warm = _child(rounds[0].fault)
    try:
        for turn, r in enumerate(rounds):
            proc = warm
            if turn + 1 < len(rounds):  # the next round's child imports while this one runs
                warm = _child(rounds[turn + 1].fault)
            actions.append(_one_round(store, settings, kwargs, r, proc, turn, effects, started, rng, tally))
    finally:
        if warm.poll() is None:
            warm.kill()
            warm.communicate()
    seconds = time.perf_counter() - t0

    effect_lines = Counter(lines(effects))
    with store() as s:
        final = {a.id: repo.get_action(s, a.id) for a in actions}
        assert repo.verify_audit(s) == []
        assert repo.list_actions(s, ActionStatus.executing.value) == []
        assert repo.list_actions(s, ActionStatus.unknown.value) == []
    tally.outcomes.update(a.status.value for a in final.values())
    with capsys.disabled():
        print(f"\n{tally.show(backend)}\n  side-effect lines per key: max {max(effect_lines.values())}, "
              f"{sum(effect_lines.values())} lines for {len(effect_lines)} keys; {seconds:.1f} s")
    assert sum(tally.kills.values()) == len(rounds) >= 20
    assert max(effect_lines.values()) == 1  # never twice, for any key (the unkilled ones included)
    for a in actions:  # succeeded exactly when the side effect happened, once
        assert final[a.id].status in (ActionStatus.succeeded, ActionStatus.failed)
        assert (final[a.id].status == ActionStatus.succeeded) == (effect_lines[a.idempotency_key] == 1), final[a.id]
    assert tally.effects_at_kill["claimed", 0] == tally.effects_at_kill["executed", 1] == 2 * REPEATS
    assert tally.effects_at_kill["recorded", 1] == 2 * REPEATS


def _incident_actions(store: Store, incident_id: str) -> list[ProposedAction]:
    with store() as s:
        return repo.list_actions(s, incident_id=incident_id)
