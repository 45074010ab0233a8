"""Prometheus metrics (prometheus-client), read from the store at scrape time, so cycles run by the
CLI, the scheduler and the API count alike:

* ``opsloop_cycles_total{trigger,outcome}``: stored cycles (a re-run window counts once);
* ``opsloop_cycle_duration_seconds``: histogram of each stored cycle's seconds in its stages;
* ``opsloop_incidents{status,severity}``, ``opsloop_actions{status}``: rows in the store;
* ``opsloop_source_lag_seconds{source}``: how old a source's newest event was when it was last read;
  ``opsloop_source_last_success_timestamp_seconds{source}``;
* ``opsloop_runner_watermark_timestamp_seconds{name}``: the end of the last window a runner committed;
* ``opsloop_lease_expires_timestamp_seconds{name,holder}``: the runner lease and who holds it;
* ``opsloop_http_requests_total{method,route,status}``: requests this API process served.
"""

from __future__ import annotations

import collections
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from opsloop.store import repository as repo
from opsloop.store.leases import list_watermarks
from opsloop.store.models import ActionRow, IncidentRow, LeaseRow
from opsloop.store.session import Store

DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600)


def _histogram(values: list[float]) -> tuple[list[tuple[str, float]], float]:
    buckets = [(str(b), float(sum(v <= b for v in values))) for b in DURATION_BUCKETS]
    return buckets + [("+Inf", float(len(values)))], float(sum(values))


def _ts(value: str | None) -> float | None:
    return datetime.fromisoformat(value).timestamp() if value else None


class StoreCollector:
    """The store-backed metrics of the module docstring."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        cycles = CounterMetricFamily(
            "opsloop_cycles",
            "Cycles stored, by what ran them and how they ended",
            labels=["trigger", "outcome"],
        )
        inc = GaugeMetricFamily("opsloop_incidents", "Incidents in the store", labels=["status", "severity"])
        act = GaugeMetricFamily("opsloop_actions", "Actions in the store", labels=["status"])
        lag = GaugeMetricFamily(
            "opsloop_source_lag_seconds", "Age of a source's newest event when last read", labels=["source"]
        )
        ok = GaugeMetricFamily(
            "opsloop_source_last_success_timestamp_seconds", "When a source was last read", labels=["source"]
        )
        wm = GaugeMetricFamily(
            "opsloop_runner_watermark_timestamp_seconds", "End of the last window committed", labels=["name"]
        )
        lease = GaugeMetricFamily(
            "opsloop_lease_expires_timestamp_seconds", "Lease expiry, by holder", labels=["name", "holder"]
        )
        with self.store() as s:
            durations = repo.cycle_durations(s)  # one read of the cycles serves both families
            for (trigger, outcome), n in sorted(collections.Counter((t, o) for t, o, _ in durations).items()):
                cycles.add_metric([trigger, outcome], n)
            buckets, total = _histogram([seconds for *_, seconds in durations])
            for status, severity, n in s.execute(
                select(IncidentRow.status, IncidentRow.severity, func.count()).group_by(
                    IncidentRow.status, IncidentRow.severity
                )
            ):
                inc.add_metric([status, severity], n)
            for status, n in s.execute(select(ActionRow.status, func.count()).group_by(ActionRow.status)):
                act.add_metric([status], n)
            for name, value, _updated, detail in list_watermarks(s):
                if name.startswith("source:"):
                    if detail.get("lag_seconds") is not None:
                        lag.add_metric([name[7:]], float(detail["lag_seconds"]))
                    if _ts(detail.get("last_success")) is not None:
                        ok.add_metric([name[7:]], _ts(detail["last_success"]))
                else:
                    wm.add_metric([name], value.timestamp())
            for row in s.execute(select(LeaseRow)).scalars():
                lease.add_metric([row.name, row.holder], row.expires_at.timestamp())
        yield cycles
        yield HistogramMetricFamily(
            "opsloop_cycle_duration_seconds",
            "Seconds a cycle spent in its stages",
            buckets=buckets,
            sum_value=total,
        )
        yield from (inc, act, lag, ok, wm, lease)


class Metrics:
    """The app's registry: the store collector and the per-process request counter."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "opsloop_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.registry.register(StoreCollector(store))
