"""Maintenance windows over HTTP: operators declare and remove, viewers read, bad spans are 422."""

from __future__ import annotations

from .conftest import auth

BODY = {"start": "2026-11-05T01:00:00Z", "end": "2026-11-05T01:45:00Z",
        "labels": {"endpoint": "GET /v1/orders/{id}"}, "reason": "database upgrade"}


def test_maintenance_windows_over_http(api):
    client, tokens, _ = api
    assert client.post("/maintenance", json=BODY).status_code == 401
    assert client.post("/maintenance", json=BODY, headers=auth(tokens["viewer"])).status_code == 403
    res = client.post("/maintenance", json=BODY, headers=auth(tokens["operator"]))
    assert res.status_code == 201, res.text
    created = res.json()
    assert created["id"].startswith("mw-") and created["created_by"] == "operator-user"
    assert created["labels"] == BODY["labels"] and created["start"].startswith("2026-11-05T01:00:00")
    listed = client.get("/maintenance", headers=auth(tokens["viewer"])).json()
    assert [w["id"] for w in listed] == [created["id"]]
    bad = client.post("/maintenance", json={**BODY, "end": BODY["start"]}, headers=auth(tokens["operator"]))
    assert bad.status_code == 422 and "not after start" in bad.text
    assert client.delete(f"/maintenance/{created['id']}", headers=auth(tokens["viewer"])).status_code == 403
    assert client.delete(f"/maintenance/{created['id']}", headers=auth(tokens["operator"])).status_code == 200
    assert client.delete(f"/maintenance/{created['id']}", headers=auth(tokens["operator"])).status_code == 404
    assert client.get("/maintenance", headers=auth(tokens["viewer"])).json() == []
