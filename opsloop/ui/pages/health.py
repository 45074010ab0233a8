"""Health: each dependency's status as the API reports it (``GET /health``)."""

from __future__ import annotations

import streamlit as st

from opsloop.api.health import Health
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user
from opsloop.ui.widgets import chip, when

user = require_user()
st.title("Health")
try:
    h = user.client().get("/health", Health)
except ApiError as exc:
    chip("down")
    st.error("The store is unreachable (503)." if exc.status == 503 else f"The API does not answer: {exc}")
    st.stop()

chip(h.status, "overall: ")
for name, check in (("Store", h.store), ("LLM", h.llm), ("Knowledge base", h.knowledge_base), ("Runner", h.runner)):
    with st.container(border=True):
        st.markdown(f"**{name}**")
        chip(check.status)
        st.caption(check.detail or "—")
if h.sources:
    st.subheader("Sources")
    st.dataframe([{"source": s.name, "status": s.status, "last success": when(s.last_success),
                   "lag (s)": round(s.lag_seconds, 1) if s.lag_seconds is not None else None,
                   "last error": s.last_error or ""} for s in h.sources], hide_index=True)
