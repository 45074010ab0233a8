"""The operations surface: /health per dependency, /metrics counting every cycle whatever ran it,
and the incident lifecycle over HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsloop.domain import CycleReport, Window
from opsloop.store import repository as repo
from opsloop.store.leases import acquire_lease, advance_watermark
from opsloop.store.session import open_store
from tests.api.conftest import auth

W = Window(start=datetime(2026, 11, 7, 15, tzinfo=UTC), end=datetime(2026, 11, 7, 16, tzinfo=UTC))


def test_metrics_count_cli_and_scheduled_cycles_alike_and_health_names_the_runner(api):
    client, _, settings = api
    store = open_store(settings.resolved_database_url())
    now = datetime.now(UTC)
    with store.begin() as s:
        repo.record_cycle(
            s, CycleReport(id=repo.cycle_id(W, "checkout"), window=W, stage_seconds={"detect": 1.5})
        )
        w2 = Window(start=W.end, end=W.end + timedelta(hours=1))
        repo.record_cycle(
            s, CycleReport(id=repo.cycle_id(w2, "checkout"), window=w2, degradations=["LLM down"]), "schedule"
        )
        repo.record_cycle(
            s, CycleReport(id=repo.cycle_id(w2, "checkout"), window=w2), "schedule"
        )  # re-run: one row
        acquire_lease(s, "runner", "host-a:42:abc", 300, now)
        advance_watermark(s, "runner:checkout", w2.end, now, {})
        advance_watermark(
            s,
            "source:prometheus:9090",
            w2.end,
            now,
            {"last_success": now.isoformat(), "lag_seconds": 12.5, "last_error": None},
        )
        advance_watermark(s, "source:files:x.csv", w2.end, now, {"last_error": "x.csv: cannot read"})
    text = client.get("/metrics").text
    assert 'opsloop_cycles_total{outcome="ok",trigger="cli"} 1.0' in text
    assert 'opsloop_cycles_total{outcome="ok",trigger="schedule"} 1.0' in text
    assert (
        "opsloop_cycle_duration_seconds_count 2.0" in text
        and 'opsloop_cycle_duration_seconds_bucket{le="2"} 2.0' in text
    )
    assert 'opsloop_source_lag_seconds{source="prometheus:9090"} 12.5' in text
    assert 'opsloop_lease_expires_timestamp_seconds{holder="host-a:42:abc",name="runner"}' in text
    doc = client.get("/health").json()
    assert doc["status"] == "degraded" and doc["runner"]["holder"] == "host-a:42:abc"
    by_name = {x["name"]: x for x in doc["sources"]}
    assert by_name["prometheus:9090"]["status"] == "ok" and by_name["prometheus:9090"]["lag_seconds"] == 12.5
    assert (
        by_name["files:x.csv"]["status"] == "degraded" and "cannot read" in by_name["files:x.csv"]["detail"]
    )


def test_incident_lifecycle_over_http(api):
    client, tokens, _ = api
    inc = client.get("/incidents", headers=auth(tokens["viewer"])).json()["data"][0]["id"]
    assert client.post(f"/incidents/{inc}/acknowledge", headers=auth(tokens["viewer"])).status_code == 403
    res = client.post(
        f"/incidents/{inc}/acknowledge", headers=auth(tokens["operator"]), json={"reason": "on it"}
    )
    assert res.status_code == 200 and res.json()["status"] == "acknowledged"
    again = client.post(f"/incidents/{inc}/reopen", headers=auth(tokens["operator"]))
    assert again.status_code == 409 and "is acknowledged" in again.json()["detail"]
    assert (
        client.post(f"/incidents/{inc}/resolve", headers=auth(tokens["operator"])).json()["status"]
        == "resolved"
    )
    listed = client.get("/incidents", params={"status": "resolved"}, headers=auth(tokens["viewer"])).json()
    assert [i["id"] for i in listed["data"]] == [inc]
    assert (
        client.get("/incidents", params={"status": "nope"}, headers=auth(tokens["viewer"])).status_code == 422
    )
    assert client.post("/incidents/inc-none/resolve", headers=auth(tokens["operator"])).status_code == 404
    audit = client.get("/audit", headers=auth(tokens["viewer"]), params={"subject": inc}).json()["data"][::-1]
    assert [(e["actor"], e["verb"]) for e in audit][-2:] == [
        ("operator-user", "incident.acknowledged"),
        ("operator-user", "incident.resolved"),
    ]
