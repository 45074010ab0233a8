"""Ingest endpoints: pushed tickets, log lines and Alertmanager webhooks, stored idempotently and
all-or-nothing, read back by the push source (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd

from opsloop.domain import Window
from opsloop.sources.push import PushSource
from opsloop.store.session import open_store

from .conftest import auth

T0 = datetime(2026, 11, 7, 12, 0, tzinfo=UTC)
WINDOW = Window(start=T0, end=T0 + timedelta(hours=1))
TICKET = {"external_id": "ZD-1001", "title": "Payment page spins forever", "description": "cannot pay",
          "requester": "ann@example.com", "priority": "high",
          "labels": {"merchant_id": "m-7", "region": "eu"}, "created_at": "2026-11-07T12:05:00+01:00"}


def _read(settings, window: Window = WINDOW, since: datetime | None = None):
    source = PushSource(open_store(settings.resolved_database_url()))
    return source.read(window, since or window.start - timedelta(days=1))


def _log(i: int, **over) -> dict:
    row = {"ts": f"2026-11-07T12:{i:02d}:00Z", "service": "api", "endpoint": "POST /pay", "status": 500,
           "level": "error", "message": f"upstream failed {i}", "latency_ms": 12.5, "merchant_id": "m-1"}
    row.update(over)
    return row


def _ndjson(rows: list) -> str:
    import json
    return "\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n"


def test_same_ticket_twice_is_stored_once(api):
    client, tokens, settings = api
    h = auth(tokens["operator"])
    first = client.post("/tickets", json=TICKET, headers=h)
    assert first.status_code == 200, first.text
    assert first.json() == {"received": 1, "stored": 1, "duplicates": 0}
    again = client.post("/tickets", json=[TICKET, {**TICKET, "title": "changed"}], headers=h)
    assert again.json() == {"received": 2, "stored": 0, "duplicates": 2}

    simple = {"title": "Refund missing", "description": "no refund yet", "email": "bo@example.com",
              "priority": "low", "created_at": "2026-11-07T12:30:00Z"}
    assert client.post("/tickets", json=[simple, simple], headers=h).json() == \
        {"received": 2, "stored": 1, "duplicates": 1}
    assert client.post("/tickets", json=simple, headers=h).json()["stored"] == 0

    t = _read(settings).tickets
    assert len(t) == 2
    zd = t[t["id"] == "ZD-1001"].iloc[0]
    assert zd["created_at"] == pd.Timestamp("2026-11-07T11:05:00Z")
    assert zd["subject"] == "Payment page spins forever"
    assert (zd["body"], zd["priority"], zd["requester"], zd["merchant_id"], zd["region"]) == \
        ("cannot pay", "high", "ann@example.com", "m-7", "eu")
    form = t[t["id"] != "ZD-1001"].iloc[0]
    assert form["id"].startswith("sha256:") and form["requester"] == "bo@example.com"
    assert str(t["created_at"].dtype) == "datetime64[ns, UTC]"
    # outside [since, end): not read
    assert _read(settings, since=T0 + timedelta(minutes=10)).tickets["id"].tolist() == [form["id"]]


def test_bad_ticket_gets_422_naming_the_field_and_nothing_is_stored(api):
    client, tokens, settings = api
    h = auth(tokens["operator"])
    r = client.post("/tickets", json=[TICKET, {"external_id": "ZD-2", "description": "no title"}], headers=h)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("1.title: Field required")
    r = client.post("/tickets", json={**TICKET, "labels": {"subject": "x"}}, headers=h)
    assert r.status_code == 422
    assert r.json()["detail"].startswith("0.labels:") and "reserved" in r.json()["detail"]
    r = client.post("/tickets", json={**TICKET, "title": "   "}, headers=h)
    assert r.status_code == 422 and r.json()["detail"] == "0.title: missing required field 'subject'"
    r = client.post("/tickets", json={**TICKET, "colour": "red"}, headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("0.colour: Extra inputs are not permitted")
    r = client.post("/tickets", content=b"{not json", headers={**h, "content-type": "application/json"})
    assert r.status_code == 422 and r.json()["detail"].startswith("body: invalid JSON")
    assert _read(settings).tickets.empty


def test_ndjson_logs_bad_line_is_named_and_nothing_stored(api):
    client, tokens, settings = api
    h = {**auth(tokens["operator"]), "content-type": "application/x-ndjson"}
    body = _ndjson([_log(1), _log(2), _log(3, status="abc"), _log(4, ts="yesterday")])
    r = client.post("/logs", content=body, headers=h)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert detail == "line 3.status: status 'abc' is not an integer (and 1 more)"
    assert r.json()["errors"][1] == {"loc": ["line 4", "ts"], "msg": "unparseable timestamp 'yesterday'"}
    r = client.post("/logs", content=_ndjson([_log(1), "{broken"]), headers=h)
    assert r.status_code == 422 and r.json()["detail"].startswith("line 2: invalid JSON")
    r = client.post("/logs", content=_ndjson([_log(1, region={"a": 1})]), headers=h)
    assert r.status_code == 422
    assert r.json()["detail"] == "line 1.region: label region must be a scalar, got a JSON object"
    assert _read(settings).logs.empty


def test_logs_are_stored_once_per_batch_and_read_back_in_the_contract(api):
    client, tokens, settings = api
    h = {**auth(tokens["operator"]), "content-type": "application/x-ndjson"}
    rows = [_log(3), _log(1), _log(1)]  # the same line twice in one batch: a burst, both kept
    assert client.post("/logs", content=_ndjson(rows), headers=h).json() == \
        {"received": 3, "stored": 3, "duplicates": 0}
    assert client.post("/logs", content=_ndjson(rows), headers=h).json() == \
        {"received": 3, "stored": 0, "duplicates": 3}
    listed = client.post("/logs", json=[_log(5, status=503)], headers=auth(tokens["operator"]))
    assert listed.json()["stored"] == 1
    logs = _read(settings).logs
    assert logs["ts"].is_monotonic_increasing and len(logs) == 4
    assert logs["status"].tolist() == [500, 500, 500, 503] and str(logs["status"].dtype) == "int64"
    assert logs["latency_ms"].tolist() == [12.5] * 4 and set(logs["merchant_id"]) == {"m-1"}
    assert list(logs.columns[:8]) == ["ts", "service", "endpoint", "status", "level", "message", "event",
                                      "latency_ms"]


def _webhook(*alerts: dict, status: str = "firing") -> dict:
    return {"version": "4", "groupKey": '{}:{alertname="PayErrors"}', "truncatedAlerts": 0, "status": status,
            "receiver": "opsloop", "groupLabels": {"alertname": "PayErrors"}, "commonLabels": {},
            "commonAnnotations": {}, "externalURL": "http://am:9093", "alerts": list(alerts)}


def _am_alert(status: str, starts: str, ends: str = "0001-01-01T00:00:00Z", fp: str = "a1b2") -> dict:
    return {"status": status,
            "labels": {"alertname": "PayErrors", "severity": "critical", "stage": "payment"},
            "annotations": {"summary": "5xx on pay"}, "startsAt": starts, "endsAt": ends,
            "generatorURL": "http://prom/graph", "fingerprint": fp}


def test_alertmanager_webhook_is_idempotent_and_resolution_wins(api):
    client, tokens, settings = api
    h = auth(tokens["operator"])
    firing = _webhook(_am_alert("firing", "2026-11-07T12:10:00Z"),
                      _am_alert("firing", "2026-11-07T11:00:00Z", fp="old"))
    assert client.post("/webhooks/alertmanager", json=firing, headers=h).json() == \
        {"received": 2, "stored": 2, "duplicates": 0}
    assert client.post("/webhooks/alertmanager", json=firing, headers=h).json()["duplicates"] == 2
    alerts = _read(settings).alerts
    assert [(a.fingerprint, a.status, a.ends_at) for a in alerts] == \
        [("old", "firing", None), ("a1b2", "firing", None)]
    assert alerts[1].labels["stage"] == "payment" and alerts[1].group_key == '{}:{alertname="PayErrors"}'

    resolved = _webhook(_am_alert("resolved", "2026-11-07T11:00:00Z", "2026-11-07T11:50:00Z", fp="old"),
                        status="resolved")
    assert client.post("/webhooks/alertmanager", json=resolved, headers=h).json()["stored"] == 1
    assert [a.fingerprint for a in _read(settings).alerts] == ["a1b2"]  # resolved before the window
    earlier = Window(start=T0 - timedelta(hours=1), end=T0)
    old = _read(settings, earlier).alerts
    assert [(a.fingerprint, a.status, a.ends_at) for a in old] == \
        [("old", "resolved", datetime(2026, 11, 7, 11, 50, tzinfo=UTC))]


def test_alertmanager_bad_payload_and_auth(api):
    client, tokens, settings = api
    bad = _webhook(_am_alert("firing", "2026-11-07T12:10:00Z"),
                   {**_am_alert("firing", "2026-11-07T12:00:00Z"), "fingerprint": ""})
    r = client.post("/webhooks/alertmanager", json=bad, headers=auth(tokens["operator"]))
    assert r.status_code == 422 and r.json()["detail"].startswith("body.alerts.1.fingerprint:")
    r = client.post("/webhooks/alertmanager", json={**_webhook(), "version": "3"},
                    headers=auth(tokens["operator"]))
    assert r.status_code == 422 and r.json()["detail"].startswith("body.version:")
    assert _read(settings).alerts == []
    good = _webhook(_am_alert("firing", "2026-11-07T12:10:00Z"))
    assert client.post("/webhooks/alertmanager", json=good).status_code == 401
    assert client.post("/webhooks/alertmanager", json=good, headers=auth(tokens["viewer"])).status_code == 403
    assert client.post("/tickets", json=TICKET, headers=auth(tokens["viewer"])).status_code == 403
    assert client.post("/logs", content=_ndjson([_log(1)]), headers=auth(tokens["viewer"])).status_code == 403
