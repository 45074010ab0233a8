"""Audit: the trail of every change, filtered, and a check that it is intact."""

from __future__ import annotations

from datetime import UTC, datetime, time

import streamlit as st

from opsloop.api.schemas import AuditVerifyOut
from opsloop.domain import AuditEvent
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error

PAGE_SIZE = 100

user = require_user()
api = user.client()
st.title("Audit")

c1, c2, c3, c4, c5 = st.columns(5)
actor = c1.text_input("Actor", help="exactly this actor")
verb = c2.text_input("Verb", help="starts with, e.g. action. or incident.resolved")
subject = c3.text_input("Subject", help="starts with, e.g. an action or incident id")
since = c4.date_input("Since", value=None)
until = c5.date_input("Before", value=None)
offset = st.number_input("Skip", min_value=0, step=PAGE_SIZE, value=0)
params = {"actor": actor.strip(), "verb": verb.strip(), "subject": subject.strip(), "limit": PAGE_SIZE,
          "offset": int(offset),
          "since": datetime.combine(since, time(), UTC).isoformat() if since else None,
          "until": datetime.combine(until, time(), UTC).isoformat() if until else None}
try:
    page = api.page("/audit", AuditEvent, params)
except ApiError as exc:
    show_error(exc, "read the audit trail")
    st.stop()
st.caption(f"{page.count} event(s), newest first")
st.dataframe([{"seq": e.seq, "at (UTC)": f"{e.at:%Y-%m-%d %H:%M:%S}", "actor": e.actor, "verb": e.verb,
               "subject": e.subject, "detail": ", ".join(f"{k}={v}" for k, v in e.detail.items() if v is not None)}
              for e in page.data], hide_index=True, use_container_width=True)

if st.button("Verify chain"):
    try:
        result = api.post("/audit/verify", AuditVerifyOut)
    except ApiError as exc:
        show_error(exc, "verify the audit trail")
    else:
        if result.intact:
            st.success(f"Audit chain intact ({result.events} events).")
        else:
            st.error(f"Audit chain broken: {len(result.problems)} problem(s).")
            st.markdown("\n".join(f"- {p}" for p in result.problems))
