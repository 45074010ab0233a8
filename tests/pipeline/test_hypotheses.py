"""Ranked hypotheses from evidence: rules that match support a category, rules that nearly match
and more specific rules argue against it, a later anomaly is a consequence, not a contradiction,
runbooks and tickets corroborate, and nothing specific is "insufficient evidence"."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsloop.clustering.embedders import TfidfEmbedder
from opsloop.domain import Anomaly, Kind, RiskReport, Severity
from opsloop.evidence import ErrorRateEvidence, RobustZEvidence
from opsloop.packs import load_pack
from opsloop.pipeline.decide import assess
from opsloop.pipeline.hypotheses import rank
from opsloop.rag.documents import load_documents
from opsloop.rag.index import RunbookIndex
from tests.llm import T0, T1, make_incident

PACK = load_pack("checkout")


@pytest.fixture(scope="module")
def index() -> RunbookIndex:
    return RunbookIndex(load_documents(PACK.runbooks_path), TfidfEmbedder())


def _errors(endpoint: str, status: int, start=T0) -> Anomaly:
    return Anomaly(kind=Kind.hard, start=start, end=T1, peak=start, severity=Severity.high,
                   evidence=ErrorRateEvidence(metric="http_errors", labels={"endpoint": endpoint}, score=30.0,
                                              observed=0.2, expected=0.001, endpoint=endpoint, status=status,
                                              errors=300, requests=1500))


def _kpi(metric: str, direction: str, start) -> Anomaly:
    return Anomaly(kind=Kind.business, start=start, end=T1, peak=start, severity=Severity.medium,
                   evidence=RobustZEvidence(metric=metric, labels={"stage": "legacy"}, score=9.0, observed=0.4,
                                            expected=0.9, direction=direction))


def _incident(*anomalies: Anomaly):
    inc = make_incident()
    return inc.model_copy(update={"anomalies": list(anomalies), "clusters": [], "signatures": []})


def test_the_specific_rule_leads_and_the_general_ones_are_argued_against():
    hyps, insufficient = rank(_incident(_errors("POST /webhooks/orders", 403)), PACK, None, [])
    assert [h.category for h in hyps] == ["webhook_auth", "api_auth", "error_spike"]
    assert not insufficient and hyps[0].contrary == [] and hyps[0].supporting
    assert hyps[0].confidence > hyps[1].confidence > 0
    assert "more specific 'Webhook authentication failure' rule" in hyps[1].contrary[0]


def test_a_near_miss_is_contrary_evidence():
    hyps, _ = rank(_incident(_errors("POST /v1/checkout/sessions", 401)), PACK, None, [])
    assert hyps[0].category == "api_auth"
    # the webhook rule is about this evidence but its endpoint condition fails: no support, no hypothesis
    assert "webhook_auth" not in [h.category for h in hyps]
    hyps, _ = rank(_incident(_errors("POST /v1/payments", 500)), PACK, None, [])
    assert hyps[0].category == "error_spike" and "api_auth" not in [h.category for h in hyps]


def test_a_later_anomaly_is_a_consequence_an_earlier_one_a_contradiction():
    cause = _errors("POST /v1/checkout/sessions", 401)
    later = _kpi("conversion_rate", "down", T0 + timedelta(minutes=30))
    hyps, _ = rank(_incident(cause, later), PACK, None, [])
    top = hyps[0]
    assert top.category == "api_auth" and top.contrary == []
    assert any("likely consequence" in s for s in top.supporting)
    conv = next(h for h in hyps if h.category == "conversion")
    assert any("is not explained by it" in c for c in conv.contrary)  # the 401s came first


def test_nothing_specific_is_insufficient_evidence():
    odd = _kpi("disk_free_bytes", "down", T0)
    hyps, insufficient = rank(_incident(odd), PACK, None, [])
    assert insufficient and [h.category for h in hyps] == [PACK.fallback.name]


def test_runbooks_and_tickets_corroborate_and_steps_are_quoted(index):
    inc = make_incident()  # webhook 403s with a ticket cluster about orders missing in the OMS
    a = assess(inc, index, RiskReport(), PACK)
    top = a.hypotheses[0]
    assert a.category == top.category == "webhook_auth" and a.confidence == top.confidence
    assert any("runbook is the best retrieved match" in s for s in top.supporting)
    assert any("support tickets about" in s for s in top.supporting)
    assert len(a.hypotheses) >= 2 and all(h.contrary for h in a.hypotheses[1:])
    # mitigation quoted from the webhook runbook's mitigation section, and that passage is cited
    assert a.mitigation and {m.document for m in a.mitigation} == {"webhook-403-secret-rotation.md"}
    texts = {c.id: " ".join(c.text.split()) for c in index.chunks}
    assert all(m.text.rstrip("…") in texts[m.chunk_id] for m in a.mitigation)
    assert a.mitigation[0].chunk_id in {c.chunk_id for c in a.citations}
    assert any(c.kind.value == "mitigation" for c in a.citations)
