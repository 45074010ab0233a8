"""``opsloop schedule``: run cycles unattended, live (``--every``, ``--once``) or as a replay
(``--from``/``--until``) over recorded data; registered on the ``opsloop`` app by :mod:`opsloop.cli`."""

from __future__ import annotations

import json
import signal
import statistics
import threading
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from opsloop.runner.runner import JsonLog, LeaseHeld, Runner, RunnerConfig, WindowOutcome
from opsloop.runner.windows import Grid, parse_duration
from opsloop.sources.base import Source


def _duration(value: str, name: str, allow_zero: bool = False) -> timedelta:
    from opsloop.cli import _fail

    try:
        return parse_duration(value, allow_zero)
    except ValueError as exc:
        _fail(f"--{name}: {exc}")


def time_to_detect(
    outcomes: list[WindowOutcome], first_seen: dict[str, datetime], grace: timedelta
) -> dict[str, float]:
    """Seconds from each new incident's first anomalous minute (``first_seen``) to the moment the
    runner could have paged it: the end of the window that opened it plus the grace."""
    out = {}
    for o in outcomes:
        for inc in o.new_incidents:
            if inc in first_seen and inc not in out:
                out[inc] = max(0.0, (o.window.end + grace - first_seen[inc]).total_seconds())
    return out


def schedule(
    tickets: Annotated[
        list[str] | None, typer.Option(help="Tickets file(s), comma-separated or repeated.")
    ] = None,
    logs: Annotated[list[str] | None, typer.Option(help="Log events file(s).")] = None,
    kpis: Annotated[list[str] | None, typer.Option(help="KPI file(s); long or NAB form.")] = None,
    watch: Annotated[
        list[Path] | None,
        typer.Option(
            help="Directory to watch: tickets*/logs*/kpis* files (or "
            "tickets/, logs/, kpis/ subdirectories), new files picked up."
        ),
    ] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(help="Prometheus URL: read the pack's `prometheus:` queries and --query ones as KPIs."),
    ] = None,
    query: Annotated[
        list[str] | None, typer.Option(help="NAME=PROMQL, repeatable (with --prometheus).")
    ] = None,
    pushed: Annotated[
        bool,
        typer.Option(
            help="Also read tickets, logs and Alertmanager alerts pushed to the "
            "API (POST /tickets, /logs, /webhooks/alertmanager)."
        ),
    ] = True,
    runbooks: Annotated[
        Path | None, typer.Option(help="Runbook directory (default: the knowledge base, else the pack's).")
    ] = None,
    pack: Annotated[
        str | None, typer.Option(help="Domain pack (default $OPSLOOP_PACK, else generic).")
    ] = None,
    every: Annotated[str, typer.Option(help="Window length: 5m, 1h, 1d ...")] = "5m",
    grace: Annotated[
        str, typer.Option(help="Wait this long after a window ends before running it (late data).")
    ] = "0s",
    max_catch_up: Annotated[
        int,
        typer.Option(
            help="After downtime, windows run one by one; older missed ones are merged into one.", min=1
        ),
    ] = 24,
    history: Annotated[str, typer.Option(help="Data before each window given to the detectors.")] = "7d",
    lease_ttl: Annotated[str, typer.Option(help="A dead runner's lease is taken over after this.")] = "5m",
    once: Annotated[bool, typer.Option("--once", help="Run the windows due now, then exit.")] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="If another runner holds the store, wait for it.")
    ] = False,
    from_: Annotated[
        str | None, typer.Option("--from", help="Replay: first window start (ISO-8601).")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Replay: end of the last window (ISO-8601).")] = None,
) -> None:
    """Run cycles on a schedule: each window once, crash-safe, one runner per store.

    Live, it runs every window due (after --grace), catching up after downtime, until SIGTERM (the
    running window finishes, the lease is released). With --from/--until it replays those windows
    over recorded data as if live and prints the time-to-detect. Logs are JSON lines on stderr.
    """
    from opsloop.cli import _fail, _pack, _parse_time, _settings, _split_paths, _store
    from opsloop.sources.files import DirectorySource, FileSource
    from opsloop.sources.prometheus import prometheus_source
    from opsloop.sources.push import PushSource
    from opsloop.store import repository as repo

    settings = _settings(pack=pack) if pack else _settings()
    the_pack = _pack(settings)
    sources: list[Source] = []
    files = {k: _split_paths(v) for k, v in (("tickets", tickets), ("logs", logs), ("kpis", kpis))}
    for kind, paths in files.items():
        for p in paths:
            if not p.is_file():
                _fail(f"--{kind}: {p}: no such file")
    if any(files.values()):
        sources.append(FileSource(**files))
    for d in watch or []:
        try:
            sources.append(DirectorySource(d))
        except ValueError as exc:
            _fail(f"--watch: {exc}")
    if query and not prometheus:
        _fail("--query needs --prometheus URL")
    if prometheus:
        try:
            sources.append(prometheus_source(prometheus, query or (), pack_queries=the_pack.prometheus))
        except ValueError as exc:
            _fail(f"--prometheus: {exc}")
    if not sources and not pushed:
        _fail(
            "give at least one source: --tickets/--logs/--kpis files, --watch DIR, --prometheus URL "
            "or --pushed"
        )
    start, end = _parse_time(from_, "from"), _parse_time(until, "until")
    if (start is None) != (end is None):
        _fail("a replay needs both --from and --until")
    if start is not None and end <= start:
        _fail("--until must be after --from")
    try:
        grid = Grid(
            every=_duration(every, "every"),
            grace=_duration(grace, "grace", allow_zero=True),
            max_catch_up=max_catch_up,
        )
    except ValueError as exc:
        _fail(str(exc))
    config = RunnerConfig(
        grid=grid,
        history=_duration(history, "history"),
        lease_ttl=_duration(lease_ttl, "lease-ttl").total_seconds(),
        trigger="replay" if start else "schedule",
    )
    store = _store(settings)
    if pushed:
        sources.append(PushSource(store))
    log = JsonLog()
    runner = Runner(store, settings, the_pack, sources, config, log=log, runbooks=runbooks)
    stop = threading.Event()

    def on_signal(signum, _frame) -> None:
        log("signal", signal=signal.Signals(signum).name, action="finishing the running window, then exiting")
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if start is None:
            runner.run_forever(stop, once=once, wait_for_lease=wait)
            return
        try:
            outcomes = runner.replay(start, end, stop, wait_for_lease=wait)
        finally:
            runner.release()
    except LeaseHeld as exc:
        _fail(str(exc), 3)
    with store() as s:
        incidents = {i.id: i for i in repo.list_incidents(s)}
    ttd = time_to_detect(outcomes, {k: v.first_seen for k, v in incidents.items()}, grid.grace)
    by_kind: dict[str, list[float]] = {}
    for inc_id, secs in ttd.items():
        by_kind.setdefault(incidents[inc_id].kind.value, []).append(secs)
    summary = {
        "windows": len(outcomes),
        "done": sum(o.status == "done" for o in outcomes),
        "failed": sum(o.status in ("failed", "given_up") for o in outcomes),
        "new_incidents": len(ttd),
        "stopped": stop.is_set(),
        "median_time_to_detect_seconds": statistics.median(ttd.values()) if ttd else None,
        "median_time_to_detect_seconds_by_kind": {
            k: statistics.median(v) for k, v in sorted(by_kind.items())
        },
    }
    typer.echo(json.dumps(summary))
