"""The Cycles, Knowledge base, Audit and Health pages as users see them (AppTest, live API)."""

from __future__ import annotations

from .test_review import _texts


def test_cycles_page_shows_the_demo_report_and_hides_runs_from_viewers(signed_in):
    at = signed_in("cycles", "viewer")
    assert not at.exception and at.title[0].value == "Cycles"
    text = _texts(at)
    assert "No runner holds the store" in text and "1 cycle(s), newest first" in text
    assert "incidents new" in text
    assert at.get("vega_lite_chart")  # the stage timings
    assert "Run a cycle" not in [b.label for b in at.button]
    op = signed_in("cycles", "operator")
    assert "Run a cycle" in [b.label for b in op.button] and not op.exception


def test_knowledge_page_queries_passage_text_and_guards_clearing(signed_in):
    at = signed_in("knowledge", "viewer")
    assert not at.exception and at.title[0].value == "Knowledge base"
    at.text_input[0].set_value("webhook signature rejected with 403").run()
    assert not at.exception
    passages = [m.value for m in at.markdown if "›" in m.value]
    assert passages and any(len(m.value) > 80 for m in at.markdown if "›" not in m.value)
    assert "Upload" not in [b.label for b in at.button]  # a viewer uploads nothing


def test_audit_page_filters_and_verifies(signed_in):
    at = signed_in("audit", "viewer")
    assert not at.exception and at.title[0].value == "Audit"
    every = int(next(c.value for c in at.caption if "event(s)" in c.value).split()[0])
    at.text_input[1].set_value("incident.opened").run()
    opened = int(next(c.value for c in at.caption if "event(s)" in c.value).split()[0])
    assert 0 < opened < every
    at = next(b for b in at.button if b.label == "Verify chain").click().run()
    assert any("Audit chain intact" in s.value for s in at.success)


def test_health_page(signed_in):
    at = signed_in("health", "viewer")
    assert not at.exception and at.title[0].value == "Health"
    text = _texts(at)
    assert "**Store**" in text and "**Runner**" in text


def test_sign_in_form(live_api):
    from streamlit.testing.v1 import AppTest

    from .conftest import PAGES

    at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=60)
    import os

    os.environ["OPSLOOP_API_URL"] = live_api.url
    try:
        at.run()
        at.text_input[0].set_value("opl_not-a-token")
        at = at.button[0].click().run()
        assert any("not valid" in e.value for e in at.error) and not at.exception
        at.text_input[0].set_value(live_api.tokens["operator"])
        at = at.button[0].click().run()
        assert not at.exception and at.title[0].value == "Incidents"
        assert any("operator-user" in m.value for m in at.sidebar.markdown)
    finally:
        del os.environ["OPSLOOP_API_URL"]
