"""The API: role boundaries, the approval gate, uploads, audit, metrics, errors as JSON."""

from __future__ import annotations

import pytest

from .conftest import auth


def test_health_metrics_and_docs_need_no_token(api):
    client, _, _ = api
    doc = client.get("/health").json()
    assert doc["status"] == "ok" and doc["store"]["status"] == "ok" and doc["llm"]["status"] == "off"
    assert doc["runner"]["status"] == "off" and doc["sources"] == []
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and 'opsloop_actions{status="proposed"} 5.0' in metrics.text
    assert 'opsloop_incidents{severity="critical",status="open"} 1.0' in metrics.text
    assert "/actions/{action_id}/approve" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("method,path,role,body", [
    ("get", "/incidents", "viewer", None),
    ("get", "/actions", "viewer", None),
    ("get", "/audit", "viewer", None),
    ("get", "/cycles", "viewer", None),
    ("post", "/actions/act-low/approve", "approver", None),
    ("post", "/actions/act-low/reject", "approver", {"reason": "no"}),
    ("post", "/actions/act-low/execute", "operator", None),
    ("post", "/observe", "operator", {}),
    ("post", "/tokens", "admin", {"name": "x", "role": "viewer"}),
    ("delete", "/rag/documents", "admin", None),
])
def test_every_role_boundary(api, method, path, role, body):
    client, tokens, _ = api
    kwargs = {"json": body} if body is not None else {}
    assert getattr(client, method)(path, **kwargs).status_code == 401
    assert getattr(client, method)(path, headers=auth("opl_not-a-token"), **kwargs).status_code == 401
    ranks = ["viewer", "operator", "approver", "admin"]
    for lower in ranks[: ranks.index(role)]:
        res = getattr(client, method)(path, headers=auth(tokens[lower]), **kwargs)
        assert res.status_code == 403, (lower, res.text)
        assert f"needs role {role}" in res.json()["detail"]
    res = getattr(client, method)(path, headers=auth(tokens[role]), **kwargs)
    assert res.status_code not in (401, 403), res.text


def test_approval_gate_over_http(api):
    client, tokens, _ = api
    h = auth(tokens["approver"])
    assert client.post("/actions/act-low/execute", headers=auth(tokens["operator"])).status_code == 409  # not approved
    res = client.post("/actions/act-medium/approve", headers=h)
    assert res.status_code == 200 and res.json()["approved"] is True
    again = client.post("/actions/act-medium/approve", headers=h)
    assert again.status_code == 409 and "not proposed" in again.json()["detail"]
    done = client.post("/actions/act-medium/execute", headers=auth(tokens["operator"]))
    assert done.status_code == 200 and done.json()["status"] == "succeeded"
    assert client.post("/actions/act-medium/execute", headers=auth(tokens["operator"])).status_code == 409

    # critical: two distinct approvers
    first = client.post("/actions/act-critical/approve", headers=auth(tokens["alice"]))
    assert first.json()["approved"] is False and first.json()["action"]["status"] == "proposed"
    assert client.post("/actions/act-critical/approve", headers=auth(tokens["alice"])).status_code == 409
    second = client.post("/actions/act-critical/approve", headers=auth(tokens["bob"]))
    assert second.json()["approved"] is True
    detail = client.get("/actions/act-critical", headers=h).json()
    assert [a["approver"] for a in detail["approvals"]] == ["alice", "bob"]

    # nobody approves what they proposed by hand
    own = client.post("/actions/act-byhand/approve", headers=auth(tokens["alice"]))
    assert own.status_code == 403 and "may not approve" in own.json()["detail"]
    # a rejection needs a reason
    assert client.post("/actions/act-high/reject", headers=h, json={"reason": ""}).status_code == 422
    assert client.post("/actions/act-high/reject", headers=h, json={}).status_code == 422
    rej = client.post("/actions/act-high/reject", headers=h, json={"reason": "not needed"})
    assert rej.status_code == 200 and rej.json()["status"] == "rejected"
    assert client.post("/actions/missing/approve", headers=h).json() == {"detail": "no action 'missing'"}

    audit = client.get("/audit", headers=h, params={"limit": 1000}).json()
    verbs = [e["verb"] for e in audit["data"]]
    assert audit["count"] == len(verbs) and client.post("/audit/verify", headers=h).json()["intact"]
    assert verbs.count("action.executing") == 1 and "action.rejected" in verbs
    assert "action.approval" in verbs and verbs.count("action.approved") == 2


def test_expired_approvals_cannot_execute(store_url, tmp_path):
    from fastapi.testclient import TestClient

    from opsloop.api.app import create_app
    from opsloop.config import Settings

    from .conftest import seed_store

    tokens = seed_store(store_url)
    settings = Settings(home=tmp_path, database_url=store_url, actions={"approval_ttl_seconds": 0}, pack="checkout")
    with TestClient(create_app(settings)) as client:
        res = client.post("/actions/act-low/approve", headers=auth(tokens["approver"]))
        assert res.status_code == 409 and "expired" in res.json()["detail"]
        status = client.get("/actions/act-low", headers=auth(tokens["viewer"])).json()["action"]["status"]
        assert status == "expired"


def test_tokens_are_admin_only_and_work(api):
    client, tokens, _ = api
    res = client.post("/tokens", headers=auth(tokens["admin"]), json={"name": "ci", "role": "operator"})
    assert res.status_code == 201 and res.json()["token"].startswith("opl_")
    assert client.get("/incidents", headers=auth(res.json()["token"])).status_code == 200
    assert client.post("/tokens", headers=auth(tokens["admin"]), json={"name": "ci", "role": "operator"}).status_code == 409
    assert client.post("/tokens", headers=auth(tokens["admin"]), json={"name": "x", "role": "root"}).status_code == 422


def test_rag_uploads_are_checked(api):
    client, tokens, settings = api
    h = auth(tokens["operator"])
    md = b"---\ntitle: Disk full\ncategory: kpi_anomaly\n---\n# Disk full\n\n## Mitigation\n\nDelete old logs.\n"
    res = client.post("/rag/documents", headers=h, files={"file": ("disk-full.md", md, "text/markdown")})
    assert res.status_code == 201 and res.json()["document"] == "disk-full.md" and res.json()["chunks"] == 1
    assert res.json()["knowledge_base"]["added"] == 9  # the bundled runbooks join the knowledge base with the upload
    stats = client.get("/rag/stats", headers=h).json()
    assert stats["uploaded"] == ["disk-full.md"] and stats["documents"] == 9 and stats["index"] == "flat"
    bad = client.post("/rag/documents", headers=h, files={"file": ("x.exe", b"MZ", "application/octet-stream")})
    assert bad.status_code == 415
    big = client.post("/rag/documents", headers=h, files={"file": ("big.txt", b"a" * (5 * 1024 * 1024 + 1), "text/plain")})
    assert big.status_code == 413
    broken = client.post("/rag/documents", headers=h, files={"file": ("x.pdf", b"%PDF-1.4 garbage", "application/pdf")})
    assert broken.status_code == 422 and "x.pdf" in broken.json()["detail"]
    gone = client.request("DELETE", "/rag/documents", headers=auth(tokens["admin"]), params={"name": "disk-full.md"})
    assert gone.json() == {"deleted": ["disk-full.md"]}
    assert client.get("/rag/stats", headers=h).json()["documents"] == 8


def test_observe_inline_rows_has_no_side_effects_and_quarantines(api):
    client, tokens, _ = api
    import numpy as np
    import pandas as pd

    ts = pd.date_range("2026-11-01", periods=600, freq="1min", tz="UTC")
    v = 50 + np.random.default_rng(0).normal(0, 1, len(ts))
    v[500:530] += 40
    rows = [{"ts": t.isoformat(), "metric": "queue_depth", "value": float(x)} for t, x in zip(ts, v)]
    rows.append({"ts": "not a time", "metric": "queue_depth", "value": 1.0})
    before = client.get("/metrics").text
    res = client.post("/observe", headers=auth(tokens["operator"]), json={"kpis": rows})
    assert res.status_code == 200, res.text
    doc = res.json()
    assert doc["counts"]["kpi_points"] == 600 and len(doc["quarantined"]) == 1
    assert doc["quarantined"][0]["field"] == "ts"
    shift = [c for c in doc["candidates"] if c["first_seen"] <= "2026-11-01T08:20:00Z" <= c["last_seen"]]
    assert shift and shift[0]["title"].startswith("queue_depth")  # the 30-min shift pages; noise blips do not
    listed = client.get("/incidents", headers=auth(tokens["viewer"])).json()
    assert listed["count"] == 1 and listed["data"][0]["title"].startswith("HTTP 403 spike")
    assert "opsloop_cycles_total{" not in before  # observing stores no cycle
    outside = client.post("/observe", headers=auth(tokens["operator"]), json={"kpis_paths": ["/etc/passwd"]})
    assert outside.status_code == 422 and "OPSLOOP_HOME" in outside.json()["detail"]
    for odd in ("~nobody-here/x.csv", "a\x00b.csv", "x" * 5000):  # found by schemathesis: 422, never 500
        res = client.post("/observe", headers=auth(tokens["operator"]), json={"kpis_paths": [odd]})
        assert res.status_code == 422, (odd[:20], res.text)
