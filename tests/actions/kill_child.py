"""The process the kill tests SIGKILL: runs one execution, automatic (an outbox pass, as a cycle runs
it after its commit) or human (``service.execute``), with :class:`SideEffectExecutor`.

``python kill_child.py`` imports what it needs, then reads one line from stdin: a JSON object with ``settings`` (keyword arguments of
:class:`~opsloop.config.Settings`), ``mode`` (``auto`` | ``human``), ``action_id`` (human: the
approved action to execute), ``actor``, and the executor's ``effects``/``started`` paths, ``sleep``,
``deadline`` and ``idempotent`` (so the parent can start it ahead, while the previous round runs).
``OPSLOOP_FAULT_AT`` (see :mod:`opsloop.actions.outbox`) makes it kill itself at a point; otherwise
the parent kills it while the executor runs.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from opsloop.domain import ProposedAction


def _append(path: Path, line: str) -> None:
    """Append one line and make it durable before going on (so a kill right after cannot lose it)."""
    with path.open("a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def lines(path: Path) -> list[str]:
    """The lines of ``path`` (none if it does not exist)."""
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


class SideEffectExecutor:
    """The side effect is one line, the action's idempotency key, appended to ``effects``.

    ``execute`` first appends the key to ``started`` (so the parent knows it runs), sleeps ``sleep``
    seconds, appends the effect, sleeps ``sleep`` again, then answers. ``idempotent``: like a
    receiver that deduplicates by the key, it does not append a key already there.
    """

    name = "side-effect"

    def __init__(self, effects: Path, started: Path, sleep: float, deadline: float, idempotent: bool) -> None:
        self.effects, self.started, self.sleep = Path(effects), Path(started), sleep
        self.deadline_seconds, self.idempotent = deadline, idempotent

    def execute(self, action: ProposedAction) -> tuple[bool, dict[str, Any]]:
        _append(self.started, action.idempotency_key)
        time.sleep(self.sleep)
        if not (self.idempotent and action.idempotency_key in lines(self.effects)):
            _append(self.effects, action.idempotency_key)
        time.sleep(self.sleep)
        return True, {"executor": self.name, "idempotency_key": action.idempotency_key}


def main() -> None:
    from opsloop.actions import service
    from opsloop.actions.outbox import run_outbox
    from opsloop.config import Settings
    from opsloop.store.session import Store, make_engine

    job = json.loads(sys.stdin.readline())
    settings = Settings(**job["settings"])
    store = Store(make_engine(settings.resolved_database_url()))  # migrated by the parent
    executor = SideEffectExecutor(Path(job["effects"]), Path(job["started"]), job["sleep"], job["deadline"],
                                  job["idempotent"])
    if job["mode"] == "auto":
        report = run_outbox(store, settings, actor=job["actor"], executor_factory=lambda t: executor)
        print(json.dumps({"executed": report.executed_ids}))
    else:
        done = service.execute(store, job["action_id"], job["actor"], settings.policy(), settings, executor=executor)
        print(json.dumps({"executed": [done.id]}))


if __name__ == "__main__":
    main()
