"""Input contracts: the columns each signal must (and may) carry.

Bulk signals travel as pandas DataFrames. After loading, every timestamp column is
``datetime64[ns, UTC]`` and rows are sorted by it.

* **tickets** -- ``id, created_at, subject, body`` + optional ``merchant_id, stage, priority, channel``
* **logs** -- ``ts, service, endpoint, status, level, message`` + optional
  ``merchant_id, stage, event, order_id, latency_ms`` (``status`` is an HTTP status code, ``latency_ms``
  milliseconds)
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
    optional={"merchant_id": "str", "stage": "str", "priority": "str", "channel": "str"},
    time_column="created_at",
)

LOGS = Contract(
    name="logs",
    required={"ts": "ts", "service": "str", "endpoint": "str", "status": "int", "level": "str", "message": "str"},
    optional={"merchant_id": "str", "stage": "str", "event": "str", "order_id": "str", "latency_ms": "float"},
)

KPIS = Contract(name="kpis", required={"ts": "ts", "metric": "str", "value": "float"})

CONTRACTS = {c.name: c for c in (TICKETS, LOGS, KPIS)}

# Names of the simulator's KPI metrics, events and stages, used by detectors and the risk model.
STAGES = ("legacy", "dual_run", "headless")
METRIC_SESSIONS = "sessions"
METRIC_ATTEMPTS = "checkout_attempts"
METRIC_SUCCESS_RATE = "checkout_success_rate"
METRIC_ORDERS = "orders"
METRIC_CONVERSION = "conversion_rate"
METRIC_AOV = "avg_order_value"
METRIC_P95_LATENCY = "p95_latency_ms"
EVENT_SESSION_CREATED = "checkout.session_created"
EVENT_PAYMENT_SUCCEEDED = "payment.succeeded"
EVENT_PAYMENT_FAILED = "payment.failed"
EVENT_ORDER_CREATED = "order.created"
EVENT_WEBHOOK_DELIVERED = "webhook.delivered"

#: Label columns that describe who and what a group of rows touches (the blast radius).
AFFECTED_LABELS = ("merchant_id", "stage")


def affected(rows, top: int | None = None) -> dict[str, list[str]]:
    """Sorted distinct values of :data:`AFFECTED_LABELS` in ``rows`` (a tickets or logs DataFrame),
    keeping the ``top`` most frequent per label when given; labels absent or empty are left out."""
    out: dict[str, list[str]] = {}
    for col in AFFECTED_LABELS:
        if col in rows:
            counts = rows[col].dropna().astype(str).value_counts()
            vals = counts.index.tolist() if top is None else counts.head(top).index.tolist()
            if vals:
                out[col] = sorted(vals)
    return out
