"""The source of what was pushed to the API: tickets, log lines and Alertmanager alerts held in
the store (:mod:`opsloop.store.ingest`) until a cycle reads them.

Pushed rows are validated against their contract (:mod:`opsloop.data.contracts`) by the loaders'
own row validation when they arrive (:func:`validate_rows`), stored as JSON in the contract's
columns, and turned back into contract frames, with the loaders' dtypes, when read.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from opsloop.data.contracts import LOGS, TICKETS, Contract
from opsloop.data.loaders import LoadResult, _Raw, _validate
from opsloop.domain import Alert, Quarantined, Window, utc
from opsloop.pipeline.observe import Signals
from opsloop.store import ingest
from opsloop.store.session import Store

__all__ = ["PushSource", "firing_during", "records_of", "validate_rows"]


def validate_rows(rows: Sequence[dict[str, Any]], contract: Contract, source: str,
                  lines: Sequence[int] | None = None) -> LoadResult:
    """Validate JSON objects against ``contract`` exactly as a file of them would be (see
    :mod:`opsloop.data.loaders`: required fields, ISO-8601 timestamps to UTC, integer ``status`` in
    100..599, finite floats; other keys kept as ``str`` label columns). ``lines``: the 1-based line
    (or item) number of each row, reported in :class:`~opsloop.domain.Quarantined` (default
    ``1..n``). A label whose value is a JSON object or array is rejected naming the key. Returns
    the valid rows as a contract frame sorted by time, and the rejected ones."""
    numbers = np.asarray(list(lines) if lines is not None else range(1, len(rows) + 1), dtype=np.int64)
    known = set(contract.columns)
    bad: list[Quarantined] = []
    keep: list[int] = []
    for i, row in enumerate(rows):
        odd = next((k for k, v in row.items() if k not in known and isinstance(v, (dict, list))), None)
        if odd is None:
            keep.append(i)
        else:
            bad.append(Quarantined(file=source, line=int(numbers[i]), field=odd,
                                   reason=f"label {odd} must be a scalar, got a JSON "
                                          f"{'object' if isinstance(row[odd], dict) else 'array'}"))
    kept = [rows[i] for i in keep]
    kept_lines = numbers[keep] if keep else np.zeros(0, dtype=np.int64)
    frame = pd.DataFrame.from_records(kept) if kept else pd.DataFrame(columns=contract.columns)
    raw = _Raw(frame=frame, line_of=lambda pos: kept_lines[pos], quarantined=bad, rows_read=len(rows))
    return _validate(raw, contract, source, keep_extra=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.tz_convert("UTC").isoformat()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _missing(v: Any) -> bool:
    return v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and np.isnan(v))


def records_of(frame: pd.DataFrame, contract: Contract) -> list[ingest.PushedRecord]:
    """Store records for a validated contract frame (:func:`validate_rows`), in frame order: each
    row's non-missing columns as JSON (timestamps ISO-8601 UTC), its event time, and its external
    id: the ``id`` column for tickets, :func:`opsloop.store.ingest.log_ids` for anything else."""
    records = frame.to_dict("records")
    rows = [{k: _jsonable(v) for k, v in r.items() if not _missing(v)} for r in records]
    ids = [str(r["id"]) for r in rows] if contract.name == TICKETS.name else ingest.log_ids(rows)
    time_col = contract.time_column
    return [ingest.PushedRecord(external_id=e, ts=r[time_col].to_pydatetime(), row=row)
            for e, r, row in zip(ids, records, rows, strict=True)]


def firing_during(rows: Sequence[Alert], window: Window) -> list[Alert]:
    """The alert episodes firing at any time during ``window``, one :class:`Alert` each.

    ``rows``: stored alert rows (:func:`opsloop.store.ingest.alerts_between`). An episode is one
    ``(fingerprint, starts_at)``; its resolved row, when there is one, wins over its firing rows
    (the latest status). A firing episode followed by a later episode of the same fingerprint ended
    when the later one started (its resolution was lost). An episode is firing during the window
    when it started before ``window.end`` and had not ended by ``window.start``. Sorted by start."""
    episodes: dict[str, dict[datetime, Alert]] = {}
    for a in rows:
        eps = episodes.setdefault(a.fingerprint, {})
        old = eps.get(a.starts_at)
        if old is None or old.status == "firing":
            eps[a.starts_at] = a
    out: list[Alert] = []
    for eps in episodes.values():
        starts = sorted(eps)
        for i, start in enumerate(starts):
            a = eps[start]
            end = a.ends_at if a.status == "resolved" else None
            if end is None and i + 1 < len(starts):
                end = starts[i + 1]
                a = a.model_copy(update={"status": "resolved", "ends_at": end})
            if start < window.end and (end is None or end > window.start):
                out.append(a)
    return sorted(out, key=lambda a: (a.starts_at, a.fingerprint))


class PushSource:
    """A :class:`~opsloop.sources.base.Source` of the tickets, log lines and alerts pushed to the
    API and held in ``store``.

    :meth:`read` returns pushed tickets and logs with event time in ``[since, window.end)`` as
    contract frames and the alerts firing at any time during ``[window.start, window.end)``
    (:func:`firing_during`); reading changes nothing, so a window read again gives the same rows.
    """

    name = "push"

    def __init__(self, store: Store) -> None:
        self.store = store

    def read(self, window: Window, since: datetime) -> Signals:
        """The pushed signals of ``window`` (see the class docstring)."""
        since = utc(since)
        with self.store() as s:
            tickets = ingest.pushed_rows(s, "tickets", since, window.end)
            logs = ingest.pushed_rows(s, "logs", since, window.end)
            alerts = ingest.alerts_between(s, window.start, window.end)
        t = validate_rows(tickets, TICKETS, "push:tickets")
        lg = validate_rows(logs, LOGS, "push:logs")
        return Signals(window=window, tickets=t.frame, logs=lg.frame,
                       quarantined=t.quarantined + lg.quarantined, sources=[self.name],
                       alerts=firing_during(alerts, window))

    def watermark(self) -> datetime | None:
        """The newest event time held (a pushed row's, an alert's start or end), aware UTC."""
        with self.store() as s:
            return ingest.newest_event(s)
