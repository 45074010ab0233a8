"""Retrieval queries from incident evidence."""

from __future__ import annotations

from opsloop.rag.query import clean_line, incident_query

from ..llm import make_incident


def test_log_lines_lose_identifiers_and_placeholders():
    assert clean_line("webhook delivery failed: <NUM> Forbidden (signature verification failed) merchant=<ID> "
                      "order_id=ord_96127b65b964 attempt=<NUM>, will retry") == \
        "webhook delivery failed: Forbidden (signature verification failed), will retry"
    assert clean_line("api-gateway GET /<NUM>/orders/<ID>: <NUM> Not Found merchant=m-17") == "api-gateway GET /orders: Not Found"
    assert clean_line("POST /webhooks/orders status=403 signature verification failed") == \
        "POST /webhooks/orders status=403 signature verification failed"


def test_incident_query_puts_specific_evidence_first():
    q = incident_query(make_incident()).splitlines()
    assert q[0] == "HTTP 403 Forbidden on POST /webhooks/orders webhook-dispatcher"
    assert "POST /webhooks/orders status=403 signature verification failed" in q
    assert any(line.startswith("Orders not showing in our OMS:") for line in q)
    assert len(q) == len(set(q)) and not any("m-17" in line for line in q)
