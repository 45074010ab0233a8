"""The pages SREs and on-call engineers use, as they see them (AppTest against a live API on the demo
store): the incident list, one incident with its chart and passages, the approval gate."""

from __future__ import annotations

import httpx

from opsloop.api.schemas import IncidentSummary
from opsloop.domain import Incident


def _incidents(live_api) -> list[IncidentSummary]:
    body = httpx.get(f"{live_api.url}/incidents", headers={"Authorization": f"Bearer {live_api.tokens['viewer']}"}).json()
    return [IncidentSummary.model_validate(i) for i in body["data"]]


def _texts(at) -> str:
    parts = [e.value for e in at.markdown] + [e.value for e in at.caption] + [e.value for e in at.title]
    parts += [b.label for b in at.button] + [e.value for e in at.info] + [e.value for e in at.warning]
    parts += [e.value for e in at.success] + [e.value for e in at.error]
    return "\n".join(str(p) for p in parts)


def test_incident_list_most_severe_first_with_filters(signed_in, live_api):
    incidents = _incidents(live_api)
    assert len(incidents) >= 6
    at = signed_in("incidents", "viewer")
    assert not at.exception and at.title[0].value == "Incidents"
    shown = [b.label for b in at.button if b.key and b.key.startswith("open-")]
    assert shown == [i.title for i in incidents]  # the API's order: most severe first
    text = _texts(at)
    assert f"{len(incidents)} incident(s)" in text and "-badge[critical]" in text
    at.selectbox[1].set_value("critical").run()
    critical = [b.label for b in at.button if b.key and b.key.startswith("open-")]
    assert critical and critical == [i.title for i in incidents if i.severity.value == "critical"]
    at.text_input[-1].set_value("zzzz-nothing").run()
    assert "No incident matches." in _texts(at) and not at.exception


def test_incident_page_shows_assessment_chart_passages_and_revenue(signed_in, live_api):
    top = _incidents(live_api)[0]
    at = signed_in("incident", "viewer", id=top.id)
    assert not at.exception, at.exception
    assert at.title[0].value == top.title
    text = _texts(at)
    assert "**Summary.**" in text and "Root cause" in text
    detail = httpx.get(f"{live_api.url}/incidents/{top.id}",
                       headers={"Authorization": f"Bearer {live_api.tokens['viewer']}"}).json()
    a = Incident.model_validate(detail).assessment
    assert "**Hypotheses**" in text and f"1. **{a.hypotheses[0].title}**" in text
    assert "✅" in text and "**Mitigation** (quoted from" in text and a.mitigation[0].text in text
    assert "narrative by the rules" in text
    subheaders = [s.value for s in at.subheader]
    for name in ("Assessment", "Anomalous series", "Runbook passages", "Revenue at risk", "Timeline"):
        assert name in subheaders
    assert at.get("vega_lite_chart"), "no chart of the anomalous series"
    assert "›" in text  # a cited passage: document › section, then its text
    assert "Acknowledge" not in [b.label for b in at.button]  # a viewer cannot move incidents
    assert "revenue at risk" in text.lower()


def test_operator_acknowledges_an_incident(signed_in, live_api):
    target = [i for i in _incidents(live_api) if i.status.value == "open"][-1]
    at = signed_in("incident", "operator", id=target.id)
    ack = next(b for b in at.button if b.label == "Acknowledge")
    at = ack.click().run()
    assert not at.exception
    assert f"{target.id} is now acknowledged" in _texts(at)
    assert any(b.label == "Resolve" for b in at.button)


def test_approvals_gate_for_each_role(signed_in, live_api):
    viewer = signed_in("approvals", "viewer")
    assert not viewer.exception and viewer.title[0].value == "Approvals"
    assert "Approve" not in [b.label for b in viewer.button]
    assert "An approver decides this action." in _texts(viewer)

    at = signed_in("approvals", "approver", token_name="alice")
    approve = [b for b in at.button if b.label == "Approve"]
    assert approve
    key = approve[0].key
    at = approve[0].click().run()
    assert not at.exception
    text = _texts(at)
    assert "Approved act-" in text or "Recorded your approval" in text

    rejects = [f for f in at.button if f.label == "Reject"]
    at = rejects[0].click().run()  # no reason: refused in the page, nothing sent
    assert "A rejection needs a reason." in _texts(at)
    assert key  # the approved action no longer offers Approve
    assert key not in [b.key for b in at.button]
