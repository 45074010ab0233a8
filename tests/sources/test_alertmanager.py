"""An alert fired through a real Alertmanager reaches opsloop's webhook and, with a KPI anomaly on
the same stage, makes one incident in the next cycle."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx

from opsloop.config import Settings
from opsloop.domain import Window
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import Signals, combine
from opsloop.sources.push import PushSource
from opsloop.store.session import open_store
from tests.api.conftest import seed_store
from tests.sources.conftest import failing_kpis, wait_until

AM_CONFIG = """\
route:
  receiver: opsloop
  group_by: [alertname, stage]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: opsloop
    webhook_configs:
      - url: {url}/webhooks/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: {token}
"""


def test_alert_through_alertmanager_joins_the_kpi_incident(alertmanager, live_api, sqlite_url, tmp_path):
    tokens = seed_store(sqlite_url)
    api = live_api(sqlite_url, "checkout")
    am = alertmanager(AM_CONFIG.format(url=api, token=tokens["operator"]))

    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    onset = end - timedelta(minutes=40)
    starts = (onset + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    body = [{"labels": {"alertname": "CheckoutFailing", "severity": "critical", "stage": "headless"},
             "annotations": {"summary": "checkout success rate below 80%"}, "startsAt": starts,
             "generatorURL": "http://prometheus.invalid/graph"}]
    fired = httpx.post(f"{am.url}/api/v2/alerts", timeout=5, json=body)
    assert fired.status_code == 200, fired.text

    store = open_store(sqlite_url)
    push = PushSource(store)
    window = Window(start=end - timedelta(hours=1), end=end)
    wait_until(lambda: bool(push.read(window, window.start).alerts), 15.0,
               f"Alertmanager to deliver the alert to opsloop (log: {am.tail()})")
    (alert,) = push.read(window, window.start).alerts
    assert alert.status == "firing" and alert.ends_at is None and len(alert.fingerprint) == 16
    assert alert.labels == {"alertname": "CheckoutFailing", "severity": "critical", "stage": "headless"}
    assert alert.starts_at == onset + timedelta(minutes=2) and 'stage="headless"' in alert.group_key

    signals = combine([push.read(window, window.start - timedelta(hours=6)),
                       Signals(window=window, kpis=failing_kpis(end, "headless", onset))], window)
    settings = Settings(home=tmp_path, database_url=sqlite_url, pack="checkout", embedder="tfidf")
    result = run_cycle(signals, store, settings)
    (incident,) = result.incidents
    assert sorted(a.detector for a in incident.anomalies) == ["alert", "robust_z"]
    assert incident.affected["stage"] == ["headless"] and incident.title == "alert CheckoutFailing (headless)"

    # resolving it through Alertmanager: the resolved notification wins; a later window has no alert
    resolved_at = datetime.now(UTC).replace(microsecond=0)
    alert_json = {**body[0], "endsAt": resolved_at.isoformat().replace("+00:00", "Z")}
    assert httpx.post(f"{am.url}/api/v2/alerts", timeout=5, json=[alert_json]).status_code == 200
    wait_until(lambda: push.read(window, window.start).alerts[0].status == "resolved", 15.0,
               f"the resolved notification (log: {am.tail()})")
    assert push.read(window, window.start).alerts[0].ends_at == resolved_at
    later = Window(start=resolved_at + timedelta(seconds=1), end=resolved_at + timedelta(minutes=5))
    assert push.read(later, later.start).alerts == []
