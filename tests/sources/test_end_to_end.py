"""The issue's acceptance path: KPIs in a real Prometheus (six hours backfilled with promtool, the
latest scraped live from an exporter) and an alert fired through a real Alertmanager into
opsloop's webhook become ONE incident in the next cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from opsloop.config import Settings
from opsloop.domain import Window
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import combine
from opsloop.sources.prometheus import prometheus_source
from opsloop.sources.push import PushSource
from opsloop.store.session import open_store
from tests.api.conftest import seed_store
from tests.sources.conftest import failing_kpis, free_port, wait_until
from tests.sources.test_alertmanager import AM_CONFIG


def _iso(ts: datetime) -> str:
    return ts.isoformat().replace("+00:00", "Z")


def test_prometheus_kpis_and_alertmanager_alert_make_one_incident(prometheus, alertmanager, live_api,
                                                                   sqlite_url, tmp_path):
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    onset = now - timedelta(minutes=40)
    history = failing_kpis(now, "headless", onset)  # per minute up to now, dropping from onset

    registry = CollectorRegistry()  # the live part: the failure goes on
    Gauge("checkout_success_rate", "Share of checkouts that succeed", ["stage"],
          registry=registry).labels(stage="headless").set(0.55)
    Gauge("checkout_attempts", "Checkout attempts per minute", ["stage"],
          registry=registry).labels(stage="headless").set(60)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        prom = prometheus([f"127.0.0.1:{port}"], history=history)
        tokens = seed_store(sqlite_url)
        am = alertmanager(AM_CONFIG.format(url=live_api(sqlite_url, "checkout"), token=tokens["operator"]))
        alert = {"labels": {"alertname": "CheckoutFailing", "severity": "critical", "stage": "headless"},
                 "annotations": {"summary": "checkout success rate below 80%"},
                 "startsAt": _iso(onset + timedelta(minutes=2))}
        assert httpx.post(f"{am.url}/api/v2/alerts", json=[alert], timeout=5).status_code == 200

        def scraped() -> bool:
            r = httpx.get(f"{prom.url}/api/v1/query", params={"query": 'up{job="exporter"}'}, timeout=2)
            return bool(r.json()["data"]["result"])

        wait_until(scraped, 15.0, "Prometheus to scrape the exporter")
        store = open_store(sqlite_url)
        push = PushSource(store)
        end = datetime.now(UTC) + timedelta(seconds=1)
        window = Window(start=end - timedelta(hours=1), end=end)
        wait_until(lambda: bool(push.read(window, window.start).alerts), 15.0, "the alert to reach opsloop")

        kpi_source = prometheus_source(prom.url, [
            "checkout_success_rate=max by (stage) (checkout_success_rate)",
            "checkout_attempts=max by (stage) (checkout_attempts)"], step=60)
        since = window.end - timedelta(hours=6)
        signals = combine([kpi_source.read(window, since), push.read(window, since)], window)
        kpis = signals.kpis
        rate = kpis[kpis["metric"] == "checkout_success_rate"].set_index("ts")["value"]
        assert len(rate) >= 350 and set(kpis["stage"]) == {"headless"}
        assert rate[rate.index < pd.Timestamp(onset)].median() > 0.9
        assert rate[rate.index >= pd.Timestamp(onset)].median() < 0.6

        settings = Settings(home=tmp_path, database_url=sqlite_url, pack="checkout", embedder="tfidf")
        (incident,) = run_cycle(signals, store, settings).incidents
        assert sorted(a.detector for a in incident.anomalies) == ["alert", "robust_z"]
        assert {str(a.series) for a in incident.anomalies} == \
            {'CheckoutFailing{stage="headless"}', 'checkout_success_rate{stage="headless"}'}
        assert incident.affected["stage"] == ["headless"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
