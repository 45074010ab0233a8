"""What the UI reads: list envelopes with filters and pagination, an incident's timeline and similar
incidents, action detail, audit filters and verification, retrieval, uploads, offline docs."""

from __future__ import annotations

from datetime import timedelta

from opsloop.domain import Anomaly, Assessment, Incident, Kind, Severity
from opsloop.evidence import RobustZEvidence
from opsloop.store import repository as repo
from opsloop.store.session import open_store

from .conftest import T0, auth


def _incident(fp: str, severity: Severity, kind: Kind, category: str, metric: str, labels: dict[str, str],
              hours: int) -> Incident:
    start = T0 + timedelta(hours=hours)
    anomaly = Anomaly(kind=kind, start=start, end=start + timedelta(minutes=30), peak=start, severity=severity,
                      evidence=RobustZEvidence(metric=metric, labels=labels, score=9.0, observed=10.0,
                                               expected=1.0, direction="up"))
    return Incident(id="cand", fingerprint=fp, kind=kind, first_seen=start, last_seen=start + timedelta(minutes=30),
                    severity=severity, title=f"{metric} up", anomalies=[anomaly],
                    affected={k: [v] for k, v in labels.items()},
                    assessment=Assessment(summary="s", root_cause="r", category=category, confidence=0.8, evidence=[]))


def _seed_more(settings) -> list[str]:
    store = open_store(settings.database_url)
    ids = []
    with store.begin() as s:
        for fp, sev, kind, cat, metric, labels, h in [
            ("fp-a", Severity.high, Kind.business, "capacity", "queue_depth", {"region": "eu"}, 10),
            ("fp-b", Severity.low, Kind.business, "capacity", "queue_depth", {"region": "us"}, 20),
            ("fp-c", Severity.medium, Kind.soft, "deploy", "cpu", {"region": "eu"}, 30),
        ]:
            inc, _ = repo.upsert_incident(s, _incident(fp, sev, kind, cat, metric, labels, h), timedelta(hours=1))
            ids.append(inc.id)
    return ids


def test_incident_list_filters_and_pages(api):
    client, tokens, settings = api
    a, b, c = _seed_more(settings)
    h = auth(tokens["viewer"])

    def ids(**params):
        body = client.get("/incidents", headers=h, params=params).json()
        return [i["id"] for i in body["data"]], body["count"]

    everything, n = ids()
    assert n == 4 and everything[1:] == [a, c, b]  # critical seed first, then by severity
    assert ids(severity="high") == ([a], 1)
    assert ids(category="capacity") == ([a, b], 2)
    assert ids(label="region=eu") == ([a, c], 2)
    assert ids(label=["region=eu", "region=us"]) == ([], 0)
    assert ids(kind="soft") == ([c], 1)
    assert ids(q="CPU") == ([c], 1)
    assert ids(since=(T0 + timedelta(hours=15)).isoformat()) == ([c, b], 2)
    assert ids(until=(T0 + timedelta(hours=15)).isoformat())[1] == 2
    assert ids(limit=2, offset=1) == ([a, c], 4)
    row = client.get("/incidents", headers=h, params={"severity": "high"}).json()["data"][0]
    assert row["category"] == "capacity" and row["confidence"] == 0.8 and row["affected"] == {"region": ["eu"]}
    seeded = client.get("/incidents", headers=h, params={"severity": "critical"}).json()["data"][0]
    assert seeded["pending_actions"] == 5 and seeded["category"] == "unknown"
    for bad in ({"severity": "huge"}, {"kind": "x"}, {"label": "novalue"}, {"limit": 0}, {"offset": -1}):
        res = client.get("/incidents", headers=h, params=bad)
        assert res.status_code == 422, bad
    spec = client.get("/openapi.json").json()["paths"]["/incidents"]["get"]["parameters"]
    ref = next(p for p in spec if p["name"] == "severity")["schema"]["anyOf"][0]["$ref"].rsplit("/", 1)[1]
    enum = client.get("/openapi.json").json()["components"]["schemas"][ref]["enum"]
    assert "critical" in enum  # an enum in the spec, not free text


def test_similar_and_timeline(api):
    client, tokens, settings = api
    a, b, c = _seed_more(settings)
    h = auth(tokens["viewer"])
    similar = client.get(f"/incidents/{a}/similar", headers=h).json()
    assert similar["data"][0]["id"] == b and similar["data"][0]["score"] > 0.5
    assert {"metric queue_depth", "category capacity"} <= set(similar["data"][0]["shared"])
    like_c = {x["id"]: x for x in client.get(f"/incidents/{c}/similar", headers=h).json()["data"]}
    assert "label region=eu" in like_c[a]["shared"] and like_c[a]["score"] < similar["data"][0]["score"]
    assert b not in like_c  # only the detector in common: not alike
    assert client.get("/incidents/none/similar", headers=h).status_code == 404

    inc = client.get("/incidents", headers=h, params={"severity": "critical"}).json()["data"][0]["id"]
    client.post(f"/incidents/{inc}/acknowledge", headers=auth(tokens["operator"]), json={"reason": "looking"})
    client.post("/actions/act-critical/approve", headers=auth(tokens["alice"]))
    timeline = client.get(f"/incidents/{inc}/timeline", headers=h).json()["data"]
    verbs = [t["verb"] for t in timeline]
    assert verbs[0] == "incident.first_seen" and "incident.acknowledged" in verbs and "action.approval" in verbs
    ack = next(t for t in timeline if t["verb"] == "incident.acknowledged")
    assert ack["actor"] == "operator-user" and "looking" in ack["text"]
    assert "1 of 2 approvals" in next(t["text"] for t in timeline if t["verb"] == "action.approval")
    assert [t["at"] for t in timeline] == sorted(t["at"] for t in timeline)
    assert client.get("/incidents/none/timeline", headers=h).status_code == 404


def test_action_detail_and_lists(api):
    client, tokens, _ = api
    h = auth(tokens["viewer"])
    client.post("/actions/act-critical/approve", headers=auth(tokens["alice"]))
    detail = client.get("/actions/act-critical", headers=h).json()
    assert detail["approvals_needed"] == 2 and [a["approver"] for a in detail["approvals"]] == ["alice"]
    assert detail["action"]["status"] == "proposed" and detail["proposed_by"] == "opsloop"
    proposed = client.get("/actions", headers=h, params={"status": "proposed", "limit": 2}).json()
    assert proposed["count"] == 5 and len(proposed["data"]) == 2
    assert client.get("/actions", headers=h, params={"status": "bogus"}).status_code == 422
    assert client.get("/actions", headers=h, params={"incident_id": "none"}).json() == {"data": [], "count": 0}
    assert client.get("/cycles", headers=h).json() == {"data": [], "count": 0}


def test_audit_filters_and_verify(api):
    client, tokens, _ = api
    h = auth(tokens["viewer"])
    client.post("/actions/act-low/approve", headers=auth(tokens["alice"]))
    everything = client.get("/audit", headers=h, params={"limit": 1000}).json()
    seqs = [e["seq"] for e in everything["data"]]
    assert seqs == sorted(seqs, reverse=True) and everything["count"] == len(seqs)
    by_alice = client.get("/audit", headers=h, params={"actor": "alice"}).json()["data"]
    assert by_alice and {e["actor"] for e in by_alice} == {"alice"}
    actions = client.get("/audit", headers=h, params={"verb": "action."}).json()["data"]
    assert actions and all(e["verb"].startswith("action.") for e in actions)
    low = client.get("/audit", headers=h, params={"subject": "act-low"}).json()["data"]
    assert [e["verb"] for e in low] == ["action.approved", "action.proposed"]
    assert client.get("/audit", headers=h, params={"limit": 1, "offset": 1}).json()["data"][0]["seq"] == seqs[1]
    head = client.get("/audit/head", headers=h).json()
    assert head["seq"] == seqs[0] and head["checkpoint_seq"] == seqs[0] and head["hash"] == head["checkpoint_hash"]
    verified = client.post("/audit/verify", headers=h).json()
    assert verified == {"intact": True, "events": len(seqs), "problems": []}
    with open_store(client.app.state.settings.database_url).begin() as s:
        s.execute(repo.text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    broken = client.post("/audit/verify", headers=h).json()
    assert not broken["intact"] and broken["problems"]


def test_me_rag_query_and_offline_docs(api):
    client, tokens, _ = api
    assert client.get("/me", headers=auth(tokens["approver"])).json() == {"name": "approver-user", "role": "approver"}
    assert client.get("/me").status_code == 401
    hits = client.get("/rag/query", headers=auth(tokens["viewer"]), params={"q": "webhook signature 403", "k": 3})
    assert hits.status_code == 200, hits.text
    body = hits.json()
    assert body["count"] == 3 and all(h["text"] and h["document"] for h in body["data"])
    assert client.get("/rag/query", headers=auth(tokens["viewer"])).status_code == 422
    docs = client.get("/docs").text
    assert "cdn" not in docs.lower() and "/static-offline-docs/swagger-ui-bundle.js" in docs
    assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200


def test_cycle_and_observe_on_uploaded_files(api, tmp_path):
    client, tokens, _ = api
    h = auth(tokens["operator"])
    lines = ["ts,metric,value"] + [f"2026-11-01T{i // 60:02d}:{i % 60:02d}:00Z,queue_depth,{100 + (i % 7)}"
                                   for i in range(600)]
    lines[300] = "not-a-time,queue_depth,5"
    kpis = ("kpis.csv", "\n".join(lines) + "\n", "text/csv")
    observed = client.post("/observe/files", headers=h, files={"kpis": kpis})
    assert observed.status_code == 200, observed.text
    q = observed.json()["quarantined"]
    assert len(q) == 1 and q[0]["file"].endswith("kpis.csv") and q[0]["line"] == 301 and q[0]["field"] == "ts"
    assert "/tmp" not in q[0]["file"]
    ran = client.post("/cycles/files", headers=h, files={"kpis": kpis})
    assert ran.status_code == 201, ran.text
    assert ran.json()["report"]["counts"]["kpi_points"] == 599
    assert client.get("/cycles", headers=h).json()["count"] == 1
    assert client.post("/cycles/files", headers=auth(tokens["viewer"]), files={"kpis": kpis}).status_code == 403
    assert client.post("/cycles/files", headers=h).status_code == 422
    assert client.post("/cycles/files", headers=h, files={"kpis": ("x.exe", b"MZ", "application/octet-stream")}
                       ).status_code == 415


def test_strict_inputs_and_honest_errors(api):
    client, tokens, settings = api
    h = auth(tokens["viewer"])
    res = client.get("/incidents", headers=h, params={"since": "0.5"})
    assert res.status_code == 422 and "ISO-8601" in res.text  # not read as a Unix time
    res = client.get("/incidents", headers=h, params={"sevrity": "high"})
    assert res.status_code == 422 and "'sevrity'" in res.json()["detail"]
    res = client.get("/audit", headers=h, params=[("actor", "alice"), ("actor", "bob")])
    assert res.status_code == 422 and "more than once" in res.json()["detail"]  # not silently the last one
    res = client.post("/incidents/x/timeline", headers=h)
    assert res.status_code == 405 and res.headers["allow"] == "GET"
    assert client.request("PUT", "/cycles", headers=h).headers["allow"] == "GET, POST"
    op = auth(tokens["operator"])
    res = client.post("/observe", headers=op, json={"kpis_paths": ["/etc/passwd"]})
    assert res.status_code == 422 and str(settings.home) not in res.text
    res = client.post("/observe", headers=op, json={"kpis": [{"ts": "x", "metric": "m", "value": 1}]})
    assert res.status_code == 422 and "/tmp" not in res.text and "kpis.jsonl" in res.text
    res = client.post("/maintenance", headers=op, json={"start": "2026-11-02T00:00:00Z", "end": "2026-11-01T00:00:00Z"})
    assert res.status_code == 422 and "\n" not in res.json()["detail"] and res.json()["errors"]
    spec = client.get("/openapi.json").json()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, o in ops.items():
            if o.get("security"):
                assert {"401", "403", "422"} <= set(o["responses"]), (method, path)


def test_tokens_over_http_refuse_reserved_names_and_expire(api):
    client, tokens, _ = api
    h = auth(tokens["admin"])
    for name in ("policy", "opsloop", "system"):
        res = client.post("/tokens", headers=h, json={"name": name, "role": "approver"})
        assert res.status_code == 422 and "reserved" in res.json()["detail"]
    made = client.post("/tokens", headers=h, json={"name": "eve", "role": "viewer", "expires_in_days": 1}).json()
    assert client.get("/me", headers=auth(made["token"])).json() == {"name": "eve", "role": "viewer"}
    with open_store(client.app.state.settings.database_url).begin() as s:
        s.execute(repo.text("UPDATE tokens SET expires_at = '2000-01-01 00:00:00' WHERE name = 'eve'"))
    assert client.get("/me", headers=auth(made["token"])).status_code == 401
    with open_store(client.app.state.settings.database_url).begin() as s:
        repo.revoke_token(s, "alice", "admin-user")
    assert client.get("/me", headers=auth(tokens["alice"])).status_code == 401
