"""Incidents: the list an on-call engineer scans, most severe first, with filters and search."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from opsloop.api.schemas import IncidentSummary
from opsloop.domain import IncidentStatus, Kind, Severity
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error
from opsloop.ui.widgets import chips, money, when

PAGE_SIZE = 25

user = require_user()
api = user.client()
st.title("Incidents")

with st.expander("Filters", expanded=False):
    c1, c2, c3, c4 = st.columns(4)
    status = c1.selectbox("Status", ["", *(s.value for s in IncidentStatus)], format_func=lambda v: v or "any")
    severity = c2.selectbox("Severity", ["", *(s.value for s in Severity)], format_func=lambda v: v or "any")
    kind = c3.selectbox("Kind", ["", *(k.value for k in Kind)], format_func=lambda v: v or "any")
    category = c4.text_input("Category")
    c5, c6, c7 = st.columns(3)
    label = c5.text_input("Label", placeholder="NAME=VALUE")
    since = c6.date_input("Active since", value=None)
    until = c7.date_input("Active before", value=None)
q = st.text_input("Search", placeholder="id, title or category")
page_no = st.session_state.get("incidents_page", 0)

params: list[tuple[str, object]] = [
    ("status", status), ("severity", severity), ("kind", kind), ("category", category.strip()),
    ("q", q.strip()), ("limit", PAGE_SIZE), ("offset", page_no * PAGE_SIZE),
]
if label.strip():
    params.append(("label", label.strip()))
if since:
    params.append(("since", datetime.combine(since, time(), UTC).isoformat()))
if until:
    params.append(("until", datetime.combine(until, time(), UTC).isoformat()))

try:
    page = api.page("/incidents", IncidentSummary, params)
except ApiError as exc:
    show_error(exc, "list the incidents")
    st.stop()

st.caption(f"{page.count} incident(s)" + (f", page {page_no + 1}" if page.count > PAGE_SIZE else ""))
if not page.data:
    st.info("No incident matches." if any(v for _, v in params[:5]) else
            "No incidents yet: run a cycle (`opsloop demo`, or the Cycles page).")


for inc in page.data:
    with st.container(border=True):
        left, right = st.columns([5, 2])
        with left:
            if st.button(inc.title or inc.id, key=f"open-{inc.id}", type="tertiary"):
                st.session_state["incident_id"] = inc.id
                st.switch_page("pages/incident.py", query_params={"id": inc.id})
            st.markdown(chips(inc.severity.value, inc.status.value, inc.kind.value, inc.category or ""))
            st.caption(f"{inc.id} · {when(inc.first_seen)} → {when(inc.last_seen)}"
                       + (" · " + ", ".join(f"{k}={'/'.join(v)}" for k, v in inc.affected.items())
                          if inc.affected else ""))
        with right:
            if inc.confidence is not None:
                st.caption(f"confidence {inc.confidence:.0%}")
            amount = money(inc.revenue_at_risk_window, inc.currency)
            if amount:
                st.caption(f"revenue at risk {amount}")
            if inc.pending_actions:
                st.caption(f"{inc.pending_actions} action(s) waiting")

prev, _, nxt = st.columns([1, 4, 1])
if page_no > 0 and prev.button("← Previous"):
    st.session_state["incidents_page"] = page_no - 1
    st.rerun()
if (page_no + 1) * PAGE_SIZE < page.count and nxt.button("Next →"):
    st.session_state["incidents_page"] = page_no + 1
    st.rerun()
