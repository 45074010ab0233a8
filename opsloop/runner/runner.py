"""The crash-safe cycle runner behind ``opsloop schedule``.

Each tick takes the store's lease, then for every due window (:class:`~opsloop.runner.windows.Grid`),
oldest first: reads the sources for ``[window.start − history, window.end)``, runs the cycle
(:func:`~opsloop.pipeline.cycle.run_cycle`), and, **in the transaction that stores the window's
results**, fences the lease (:func:`~opsloop.store.leases.fence_lease`), reviews the open incidents
(auto-resolve, escalation; :func:`~opsloop.store.repository.review_incidents`), records each
source's watermark and advances the runner's watermark past the window (live, it also prunes pushed
rows older than any later window reads). Actions run after that
commit (the outbox). So a crash anywhere leaves a window either wholly done or not done at all;
the next tick (or the next process, once the dead holder's lease expired) runs it again, and its
derived cycle id makes a re-run update one cycle row.

A failing source, a locked store or an error inside the cycle records the window as ``failed``
(its error in the cycle report), leaves the watermark where it was and is retried next tick; after
``max_attempts`` failed attempts the window is given up (recorded, watermark advanced) so one
poison window cannot stop the runner. A down LLM only degrades a cycle (the rules' assessment
stands). Logs are JSON lines (one object per event, ``ts`` in UTC).
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import traceback
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from opsloop.actions.catalog import escalation_action, load_catalog
from opsloop.actions.outbox import run_outbox
from opsloop.config import Settings
from opsloop.domain import ActionStatus, CycleReport, Window
from opsloop.packs.model import Pack
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.narration import narrate_pending
from opsloop.pipeline.observe import combine
from opsloop.rag.index import RunbookIndex
from opsloop.runner.windows import Grid
from opsloop.sources.base import Source, SourceError
from opsloop.store import ingest
from opsloop.store import repository as repo
from opsloop.store.leases import (
    LeaseLost,
    acquire_lease,
    advance_watermark,
    fence_lease,
    get_watermark,
    note_watermark,
    release_lease,
)
from opsloop.store.models import CycleRow, IncidentRow
from opsloop.store.session import Store

LEASE = "runner"


def default_holder() -> str:
    """``host:pid:nonce``: names this process in the lease and in ``/health``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class JsonLog:
    """Writes one JSON object per event to ``stream`` (default stderr): ``ts`` (UTC ISO-8601),
    ``event`` and the event's fields."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stderr
        self._lock = threading.Lock()

    def __call__(self, event: str, **fields: Any) -> None:
        line = json.dumps(
            {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event, **fields},
            default=str,
        )
        with self._lock:
            self.stream.write(line + "\n")
            self.stream.flush()


@dataclass(frozen=True)
class RunnerConfig:
    """How the runner works: the window ``grid``; ``history`` (rows before a window's start given
    to the detectors and the ticket lookback); ``lease_ttl`` seconds (a dead holder's lease is taken
    over after this; renewed every third of it while a window runs); ``max_attempts`` per window;
    ``trigger`` stored with each cycle; ``reexamine``: anomalies from this long before a window are
    judged again in it, so evidence that was a blip (not yet sustained) in one window pages in a
    later one once it is (the incident is deduplicated as ever)."""

    grid: Grid
    history: timedelta = timedelta(days=7)
    reexamine: timedelta = timedelta(hours=1)
    lease_ttl: float = 300.0
    max_attempts: int = 3
    trigger: str = "schedule"


@dataclass
class WindowOutcome:
    """One window's result: ``status`` ``done``, ``failed`` (retried next tick), ``given_up`` (after
    ``max_attempts``); the stored report when a cycle ran; ``error`` otherwise."""

    window: Window
    status: str
    report: CycleReport | None = None
    error: str | None = None
    new_incidents: list[str] = field(default_factory=list)


class LeaseHeld(RuntimeError):
    """Another runner holds the store's lease; the message names it and when it expires."""


class _Heartbeat:
    """Renews the lease every ``ttl / 3`` seconds in its own short transactions while a window runs."""

    def __init__(self, store: Store, holder: str, ttl: float) -> None:
        self.store, self.holder, self.ttl = store, holder, ttl
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opsloop-lease", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                with self.store.begin() as s:
                    fence_lease(s, LEASE, self.holder, self.ttl, datetime.now(UTC))
            except (LeaseLost, SQLAlchemyError):
                return  # the commit's fence reports it

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


class Runner:
    """Runs due windows over ``sources`` into ``store`` with ``pack`` (see the module docstring).

    ``holder`` names this process in the lease (default :func:`default_holder`); ``log`` receives
    events (default :class:`JsonLog` on stderr); ``runbooks``: as for ``opsloop cycle``; ``clock``:
    the wall clock (UTC), replaceable in tests.
    """

    def __init__(
        self,
        store: Store,
        settings: Settings,
        pack: Pack,
        sources: Sequence[Source],
        config: RunnerConfig,
        holder: str | None = None,
        log: Callable[..., None] | None = None,
        runbooks: Path | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not sources:
            raise ValueError("a runner needs at least one source")
        self.store, self.settings, self.pack, self.sources, self.config = (
            store,
            settings,
            pack,
            list(sources),
            config,
        )
        self.holder = holder or default_holder()
        self.log = log or JsonLog()
        self.runbooks = runbooks
        self.clock = clock or (lambda: datetime.now(UTC))
        self._index: RunbookIndex | None = None  # built by the first cycle that retrieves, then reused
        self._narrator: threading.Thread | None = None

    # -- the lease --------------------------------------------------------------------------------
    def acquire(self) -> None:
        """Take (or renew) the store's lease; :class:`LeaseHeld` naming the holder if another has it."""
        with self.store.begin() as s:
            ok, lease = acquire_lease(s, LEASE, self.holder, self.config.lease_ttl, self.clock())
        if not ok:
            raise LeaseHeld(
                f"another runner holds this store: {lease.holder} (lease until "
                f"{lease.expires_at:%Y-%m-%d %H:%M:%S} UTC)"
            )

    def acquire_waiting(self, stop: threading.Event | None) -> bool:
        """:meth:`acquire`, retrying every ``lease_ttl / 3`` seconds while another runner holds the
        lease (logged ``lease.waiting``); ``False`` if ``stop`` was set first."""
        while True:
            try:
                self.acquire()
                return True
            except LeaseHeld as exc:
                self.log("lease.waiting", error=str(exc))
                if stop is None:
                    stop = threading.Event()
                if stop.wait(self.config.lease_ttl / 3):
                    return False

    def release(self) -> None:
        """Give the lease up (at exit; a killed runner's lease expires instead)."""
        try:
            with self.store.begin() as s:
                if release_lease(s, LEASE, self.holder):
                    self.log("lease.released", holder=self.holder)
        except SQLAlchemyError as exc:
            self.log("lease.release_failed", holder=self.holder, error=str(exc).splitlines()[0])

    # -- windows ----------------------------------------------------------------------------------
    def watermark_name(self, replay: Window | None = None) -> str:
        """``runner:<pack>`` live; ``replay:<pack>:<start>:<end>`` for a replay of that span."""
        if replay is None:
            return f"runner:{self.pack.name}"
        return f"replay:{self.pack.name}:{replay.start.isoformat()}:{replay.end.isoformat()}"

    def due(self, now: datetime | None = None) -> list[Window]:
        """The windows due now after the live watermark."""
        with self.store() as s:
            done = get_watermark(s, self.watermark_name())
        return self.config.grid.due(done, now or self.clock())

    def tick(self, stop: threading.Event | None = None) -> list[WindowOutcome]:
        """Take the lease and run every due window in order (stops early at ``stop``, at a failed
        window, or when the lease is lost). Raises :class:`LeaseHeld`."""
        self.acquire()
        return self._run_windows(self.due(), self.watermark_name(), stop)

    def replay(
        self,
        start: datetime,
        until: datetime,
        stop: threading.Event | None = None,
        wait_for_lease: bool = False,
    ) -> list[WindowOutcome]:
        """Run the grid windows in ``[start, until)`` over recorded data as if live, resuming after
        its own watermark when restarted; a failed window is retried up to ``max_attempts`` times
        before the replay moves on. Raises :class:`LeaseHeld` unless ``wait_for_lease``."""
        windows = self.config.grid.between(start, until)
        if not windows:
            return []
        span = Window(start=windows[0].start, end=windows[-1].end)
        name = self.watermark_name(span)
        out: list[WindowOutcome] = []
        if wait_for_lease:
            if not self.acquire_waiting(stop):
                return out
        else:
            self.acquire()
        while not (stop and stop.is_set()):
            with self.store() as s:
                done = get_watermark(s, name)
            todo = [w for w in windows if done is None or w.start >= done]
            if not todo:
                break
            batch = self._run_windows(todo, name, stop)
            out += batch
            if batch and batch[-1].status == "lease_lost":
                break
        return out

    def _run_windows(
        self, windows: list[Window], wm: str, stop: threading.Event | None
    ) -> list[WindowOutcome]:
        out = []
        for w in windows:
            if stop is not None and stop.is_set():
                break
            outcome = self.run_window(w, wm)
            out.append(outcome)
            if outcome.status in ("failed", "lease_lost"):
                break
        self.narrate_async()
        return out

    # -- narration --------------------------------------------------------------------------------
    def narrate_async(self) -> threading.Thread | None:
        """Drain the store's narration queue (:func:`~opsloop.pipeline.narration.narrate_pending`)
        in a background thread, so a slow model never holds up the next window; one at a time (a
        pass already running picks up what the new windows queued on its next call). ``None``
        when no model is configured."""
        if self.settings.llm.backend == "off":
            return None
        if self._narrator is not None and self._narrator.is_alive():
            return self._narrator

        def work() -> None:
            try:
                done = narrate_pending(self.store, self.settings, self.pack)
                if done.counts:
                    self.log("narration.done", seconds=done.seconds, **done.counts)
            except Exception as exc:  # noqa: BLE001 - narration must never stop the runner
                self.log("narration.error", error=f"{type(exc).__name__}: {exc}")

        self._narrator = threading.Thread(target=work, name="opsloop-narrator", daemon=True)
        self._narrator.start()
        return self._narrator

    def wait_narration(self, timeout: float | None = None) -> None:
        """Wait for a running narration pass (at most ``timeout`` seconds); what it has not reached
        stays pending in the store."""
        if self._narrator is not None:
            self._narrator.join(timeout)

    def run_window(self, w: Window, wm: str) -> WindowOutcome:
        """Run one window and commit it with the lease fenced and watermark ``wm`` advanced (see the
        module docstring). Never raises for source, store or cycle errors: they are the outcome."""
        self.log("window.start", window_start=w.start, window_end=w.end, holder=self.holder)
        since = w.start - self.config.history
        try:
            parts = []
            for src in self.sources:
                try:
                    parts.append(src.read(w, since))
                except SourceError as exc:
                    raise SourceError(f"source {src.name}: {exc}") from exc
            signals = combine(parts, Window(start=w.start - self.config.reexamine, end=w.end))
            marks = []
            for src in self.sources:
                try:
                    marks.append((src.name, src.watermark()))
                except SourceError as exc:
                    raise SourceError(f"source {src.name}: {exc}") from exc
        except SourceError as exc:
            return self._failed(w, wm, str(exc))

        def in_commit(session: Session, report: CycleReport) -> None:
            at = self.clock()
            fence_lease(session, LEASE, self.holder, self.config.lease_ttl, at)
            counts = self._review(session, w, set(report.incident_ids))
            report.counts.update(counts)
            repo.update_cycle_counts(session, report.id, counts)
            for name, mark in marks:
                lag = (at - mark).total_seconds() if mark else None
                advance_watermark(
                    session,
                    f"source:{name}",
                    mark or w.end,
                    at,
                    {"last_success": at.isoformat(), "lag_seconds": lag, "last_error": None},
                )
            advance_watermark(session, wm, w.end, at, {"cycle": report.id, "holder": self.holder})
            if wm == self.watermark_name():  # live: pushed rows no later window reads are dropped
                ingest.prune(session, w.start - self.config.history)

        try:
            with self.store() as s:
                before = set(s.execute(select(IncidentRow.id)).scalars())
            with _Heartbeat(self.store, self.holder, self.config.lease_ttl):
                result = run_cycle(
                    signals,
                    self.store,
                    self.settings,
                    runbooks=self.runbooks,
                    pack=self.pack,
                    trigger=self.config.trigger,
                    in_commit=in_commit,
                    index=self._index,
                    window=w,
                )
        except LeaseLost as exc:
            self.log("lease.lost", window_start=w.start, error=str(exc))
            return WindowOutcome(w, "lease_lost", error=str(exc))
        except OperationalError as exc:
            return self._failed(
                w, wm, f"store unavailable: {str(exc.orig or exc).splitlines()[0]}", record=False
            )
        except Exception as exc:  # a bug in a stage must not stop the runner: record it, retry
            self.log("window.error", window_start=w.start, traceback=traceback.format_exc(limit=8))
            return self._failed(w, wm, f"{type(exc).__name__}: {exc}")
        self._index = self._index or result.index
        if result.report.counts.get("incidents_escalated"):
            run_outbox(self.store, self.settings, policy=self.settings.policy(self.pack))
        new = [i for i in result.report.incident_ids if i not in before]
        self.log(
            "window.done",
            window_start=w.start,
            window_end=w.end,
            cycle=result.report.id,
            incidents=len(result.report.incident_ids),
            new_incidents=new,
            resolved=result.report.counts.get("incidents_resolved", 0),
            seconds=round(sum(result.report.stage_seconds.values()), 2),
            degradations=result.report.degradations,
        )
        return WindowOutcome(w, "done", result.report, new_incidents=new)

    def _review(self, session: Session, w: Window, touched: set[str]) -> dict[str, int]:
        rules = self.pack.lifecycle
        escalate_after = timedelta(hours=rules.escalate_after_hours) if rules.escalate_with else None
        review = repo.review_incidents(session, w, touched, rules.resolve_after_windows, escalate_after)
        escalated = 0
        if review.escalate:
            catalog, policy = load_catalog(self.pack.catalog_path), self.settings.policy(self.pack)
            for inc in review.escalate:
                age = (w.end - inc.first_seen).total_seconds() / 3600
                action = escalation_action(inc, catalog, rules.escalate_with, age, policy)
                if action is None:
                    continue
                action, new = repo.add_action(session, action)
                escalated += new
                if new and not action.requires_approval:
                    repo.transition_action(
                        session,
                        action.id,
                        ActionStatus.proposed,
                        ActionStatus.approved,
                        "policy",
                        reason="escalation the policy lets run alone",
                    )
        return {"incidents_resolved": len(review.resolved), "incidents_escalated": escalated}

    def _failed(self, w: Window, wm: str, error: str, record: bool = True) -> WindowOutcome:
        """Record a failed attempt (a cycle row with the error) and give the window up after
        ``max_attempts`` attempts -- except, live, when a source failed: that window waits for the
        source (its data is not lost, and the catch-up runs it once the source answers)."""
        self.log("window.failed", window_start=w.start, window_end=w.end, error=error)
        if not record:
            return WindowOutcome(w, "failed", error=error)
        at = self.clock()
        report = CycleReport(id=repo.cycle_id(w, self.pack.name), window=w, errors=[error])
        try:
            with self.store.begin() as s:
                fence_lease(s, LEASE, self.holder, self.config.lease_ttl, at)
                repo.record_cycle(s, report, self.config.trigger)
                failed_source = False
                for src in self.sources:
                    if error.startswith(f"source {src.name}:"):
                        failed_source = True
                        note_watermark(
                            s,
                            f"source:{src.name}",
                            w.start,
                            at,
                            {"last_error": error, "failed_at": at.isoformat()},
                        )
                attempts = s.get(CycleRow, report.id).attempts
                if failed_source and wm == self.watermark_name():
                    attempts = min(attempts, self.config.max_attempts - 1)  # live: wait for the source
                if attempts >= self.config.max_attempts:
                    advance_watermark(s, wm, w.end, at, {"given_up": report.id, "holder": self.holder})
        except LeaseLost as exc:
            return WindowOutcome(w, "lease_lost", error=str(exc))
        except SQLAlchemyError as exc:
            self.log("window.record_failed", window_start=w.start, error=str(exc).splitlines()[0])
            return WindowOutcome(w, "failed", error=error)
        if attempts >= self.config.max_attempts:
            self.log("window.given_up", window_start=w.start, attempts=attempts, error=error)
            return WindowOutcome(w, "given_up", report, error)
        return WindowOutcome(w, "failed", report, error)

    # -- the loop ---------------------------------------------------------------------------------
    def run_forever(self, stop: threading.Event, once: bool = False, wait_for_lease: bool = False) -> None:
        """Tick until ``stop`` is set (``once``: a single tick), sleeping until the next window is due.
        Without ``wait_for_lease`` a held lease raises :class:`LeaseHeld`; with it, the runner retries
        every ``lease_ttl / 3`` seconds. Releases the lease on the way out."""
        grid = self.config.grid
        try:
            while not stop.is_set():
                try:
                    if wait_for_lease and not self.acquire_waiting(stop):
                        break
                    outcomes = self.tick(stop)
                except OperationalError as exc:
                    self.log(
                        "tick.failed", error=f"store unavailable: {str(exc.orig or exc).splitlines()[0]}"
                    )
                    outcomes = []
                if once:
                    break
                failed = any(o.status == "failed" for o in outcomes)
                now = self.clock()
                next_due = grid.last_due_end(now) + grid.every + grid.grace
                pause = 30.0 if failed else max(1.0, (next_due - now).total_seconds())
                self.log("tick.sleep", seconds=round(pause, 1), next_window_due=next_due)
                stop.wait(pause)
        finally:
            self.wait_narration(None if once else self.settings.llm.timeout + 5)
            self.release()
