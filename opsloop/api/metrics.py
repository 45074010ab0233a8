"""Prometheus metrics (prometheus-client): cycles, stage durations, incidents by severity, actions by
status. Store-backed gauges are read at scrape time by a custom collector."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select

from opsloop.store.models import ActionRow, IncidentRow
from opsloop.store.session import Store


class StoreCollector:
    """Incidents by status and severity, actions by status, counted in the store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self):
        inc = GaugeMetricFamily("opsloop_incidents", "Incidents in the store", labels=["status", "severity"])
        act = GaugeMetricFamily("opsloop_actions", "Actions in the store", labels=["status"])
        with self.store() as s:
            for status, severity, n in s.execute(
                select(IncidentRow.status, IncidentRow.severity, func.count()).group_by(IncidentRow.status, IncidentRow.severity)
            ):
                inc.add_metric([status, severity], n)
            for status, n in s.execute(select(ActionRow.status, func.count()).group_by(ActionRow.status)):
                act.add_metric([status], n)
        yield inc
        yield act


class Metrics:
    """The app's registry and the instruments the routes update."""

    def __init__(self, store: Store) -> None:
        self.registry = CollectorRegistry()
        self.cycles = Counter("opsloop_cycles", "Cycles run through the API", registry=self.registry)
        self.stage_seconds = Histogram("opsloop_stage_seconds", "Seconds per cycle stage", ["stage"],
                                       buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=self.registry)
        self.requests = Counter("opsloop_http_requests", "HTTP requests", ["method", "route", "status"],
                                registry=self.registry)
        self.registry.register(StoreCollector(store))
