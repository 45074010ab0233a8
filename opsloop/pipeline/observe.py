"""Observe stage: load the signals for a window from files, with validation and quarantine."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pandas as pd

from opsloop.data import contracts as C
from opsloop.data.loaders import LoadResult, load_kpis, load_logs, load_tickets
from opsloop.domain import Alert, Quarantined, Window


def empty_frame(contract: C.Contract) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="object") for c in contract.columns})
    frame[contract.time_column] = pd.Series(dtype="datetime64[ns, UTC]")
    return frame


@dataclass
class Signals:
    """Everything observed for one cycle: frames (history included, up to ``window.end``) and the
    rows quarantined while loading."""

    window: Window
    tickets: pd.DataFrame = field(default_factory=lambda: empty_frame(C.TICKETS))
    logs: pd.DataFrame = field(default_factory=lambda: empty_frame(C.LOGS))
    kpis: pd.DataFrame = field(default_factory=lambda: empty_frame(C.KPIS))
    quarantined: list[Quarantined] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    alerts: list[Alert] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        """Rows of each signal inside the window (history excluded)."""
        def inside(frame: pd.DataFrame, col: str) -> int:
            if frame.empty:
                return 0
            ts = frame[col]
            return int(((ts >= pd.Timestamp(self.window.start)) & (ts < pd.Timestamp(self.window.end))).sum())

        return {"tickets": inside(self.tickets, "created_at"), "log_events": inside(self.logs, "ts"),
                "kpi_points": inside(self.kpis, "ts"), "quarantined": len(self.quarantined)}


def combine(parts: list[Signals], window: Window) -> Signals:
    """One :class:`Signals` for ``window`` from several sources' reads: frames concatenated and sorted
    by time (rows at or after ``window.end`` dropped), quarantined rows, source names and alerts joined."""
    def merged(name: str, contract: C.Contract) -> pd.DataFrame:
        frames = [getattr(p, name) for p in parts if not getattr(p, name).empty]
        if not frames:
            return empty_frame(contract)
        col = contract.time_column
        out = pd.concat(frames, ignore_index=True).sort_values(col, kind="stable")
        return out[out[col] < pd.Timestamp(window.end)].reset_index(drop=True)

    return Signals(window=window, tickets=merged("tickets", C.TICKETS), logs=merged("logs", C.LOGS),
                   kpis=merged("kpis", C.KPIS), quarantined=[q for p in parts for q in p.quarantined],
                   sources=[s for p in parts for s in p.sources], alerts=[a for p in parts for a in p.alerts])


def _span(frames: list[tuple[pd.DataFrame, str]]) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    lo = [f[c].min() for f, c in frames if not f.empty]
    hi = [f[c].max() for f, c in frames if not f.empty]
    if not lo:
        return None
    return min(lo), max(hi)


def observe(
    tickets: Path | None = None, logs: Path | None = None, kpis: list[Path] | None = None,
    start: datetime | None = None, end: datetime | None = None,
) -> Signals:
    """Load any subset of inputs and fix the window.

    Without ``start``/``end`` the window is the data's whole span (``end`` just after the last
    point). Rows after ``end`` are dropped; rows before ``start`` stay as detector history.
    Raises :class:`~opsloop.data.loaders.InputError` for an unreadable file, ``ValueError`` if no
    input was given or no rows survived validation.
    """
    results: dict[str, list[LoadResult]] = {"tickets": [], "logs": [], "kpis": []}
    if tickets:
        results["tickets"].append(load_tickets(tickets))
    if logs:
        results["logs"].append(load_logs(logs))
    for k in kpis or []:
        results["kpis"].append(load_kpis(k))
    if not any(results.values()):
        raise ValueError("no input given: pass at least one of tickets, logs or kpis")

    def merged(name: str, contract: C.Contract) -> pd.DataFrame:
        frames = [r.frame for r in results[name] if not r.frame.empty]
        if not frames:
            return empty_frame(contract)
        return pd.concat(frames, ignore_index=True).sort_values(contract.time_column, kind="stable").reset_index(drop=True)

    t, lg, k = merged("tickets", C.TICKETS), merged("logs", C.LOGS), merged("kpis", C.KPIS)
    span = _span([(t, "created_at"), (lg, "ts"), (k, "ts")])
    if span is None:
        bad = [q for rs in results.values() for r in rs for q in r.quarantined]
        first = f"; {len(bad)} quarantined, first {bad[0].file}:{bad[0].line}: {bad[0].field or '-'}: {bad[0].reason}" \
            if bad else ""
        raise ValueError(f"no valid rows in the inputs{first}")
    w_start = pd.Timestamp(start) if start else span[0]
    w_end = pd.Timestamp(end) if end else span[1] + pd.Timedelta(seconds=1)
    w_start = w_start.tz_localize("UTC") if w_start.tzinfo is None else w_start.tz_convert("UTC")
    w_end = w_end.tz_localize("UTC") if w_end.tzinfo is None else w_end.tz_convert("UTC")
    window = Window(start=w_start.to_pydatetime(), end=w_end.to_pydatetime())
    return Signals(
        window=window,
        tickets=t[t["created_at"] < w_end].reset_index(drop=True),
        logs=lg[lg["ts"] < w_end].reset_index(drop=True),
        kpis=k[k["ts"] < w_end].reset_index(drop=True),
        quarantined=[q for rs in results.values() for r in rs for q in r.quarantined],
        sources=[r.source for rs in results.values() for r in rs],
    )
