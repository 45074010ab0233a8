"""Input contracts: the columns each signal must (and may) carry.

Bulk signals travel as pandas DataFrames. After loading, every timestamp column is
``datetime64[ns, UTC]`` and rows are sorted by it.

* **tickets** -- ``id, created_at, subject, body`` + optional ``priority, channel``
* **logs** -- ``ts, service, endpoint, status, level, message`` + optional ``event, latency_ms``
  (``status`` is an HTTP status code, ``latency_ms`` milliseconds)

Any other column of a tickets or logs file is kept as a string label (e.g. a customer, region or
deployment column); a domain pack says which labels make up the blast radius.
* **kpis** (long form) -- ``ts, metric, value`` + any label columns (e.g. ``stage``); NAB's form
  ``timestamp,value`` is read as one series whose metric is the file's stem.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contract:
    """Column contract of one signal type.

    ``required``/``optional`` map a column name to its logical type: ``str``, ``int``, ``float`` or
    ``ts`` (parsed to UTC). ``time_column`` is the column rows are ordered by.
    """

    name: str
    required: dict[str, str]
    optional: dict[str, str] = field(default_factory=dict)
    time_column: str = "ts"

    @property
    def columns(self) -> list[str]:
        return [*self.required, *self.optional]


TICKETS = Contract(
    name="tickets",
    required={"id": "str", "created_at": "ts", "subject": "str", "body": "str"},
    optional={"priority": "str", "channel": "str"},
    time_column="created_at",
)

LOGS = Contract(
    name="logs",
    required={"ts": "ts", "service": "str", "endpoint": "str", "status": "int", "level": "str", "message": "str"},
    optional={"event": "str", "latency_ms": "float"},
)

KPIS = Contract(name="kpis", required={"ts": "ts", "metric": "str", "value": "float"})

CONTRACTS = {c.name: c for c in (TICKETS, LOGS, KPIS)}

def affected(rows, labels, top: int | None = None) -> dict[str, list[str]]:
    """Sorted distinct values of each label column in ``labels`` found in ``rows`` (a tickets or
    logs DataFrame): the blast radius those rows touch. Keeps the ``top`` most frequent values per
    label when given; labels absent or empty are left out."""
    out: dict[str, list[str]] = {}
    for col in labels:
        if col in rows:
            counts = rows[col].dropna().astype(str).value_counts()
            vals = counts.index.tolist() if top is None else counts.head(top).index.tolist()
            if vals:
                out[col] = sorted(vals)
    return out
