"""Knowledge base: the runbooks retrieval reads — stats, upload, a query box, clearing uploads."""

from __future__ import annotations

import streamlit as st

from opsloop.api.schemas import DeletedOut, RagStats, UploadOut
from opsloop.domain import Citation, Role
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error

user = require_user()
api = user.client()
st.title("Knowledge base")

try:
    stats = api.get("/rag/stats", RagStats)
except ApiError as exc:
    show_error(exc, "read the knowledge base")
    st.stop()
c1, c2, c3 = st.columns(3)
c1.metric("documents", stats.documents)
c2.metric("passages", stats.chunks)
c3.metric("index", stats.index)
if stats.index == "files":
    st.caption("Not ingested yet: cycles and queries read the bundled and uploaded runbooks.")
if stats.uploaded:
    st.caption("uploaded: " + ", ".join(stats.uploaded))

st.subheader("Query")
q = st.text_input("What to look for", placeholder="webhook signature failures after a deploy")
k = st.slider("Passages", 1, 10, 3)
if q.strip():
    try:
        with st.spinner("retrieving"):
            hits = api.page("/rag/query", Citation, {"q": q, "k": k}).data
    except ApiError as exc:
        show_error(exc, "query the knowledge base")
        hits = []
    if not hits:
        st.info("No passage found.")
    for h in hits:
        with st.container(border=True):
            st.markdown(f"**{h.document}** › {h.section} · score {h.score:.3f}")
            st.markdown(h.text)

if user.can(Role.operator):
    st.subheader("Upload runbooks")
    files = st.file_uploader("Markdown, text or PDF (at most 5 MiB each)", type=["md", "markdown", "txt", "pdf"],
                             accept_multiple_files=True)
    if files and st.button("Upload"):
        for f in files:
            try:
                with st.spinner(f"ingesting {f.name}"):
                    out = api.post("/rag/documents", UploadOut, files={"file": (f.name, f.getvalue())}, timeout=600)
                st.success(f"{out.document}: {out.chunks} passages")
            except ApiError as exc:
                show_error(exc, f"upload {f.name}")

if user.can(Role.admin) and stats.uploaded:
    st.subheader("Clear uploads")
    sure = st.checkbox(f"Remove all {len(stats.uploaded)} uploaded runbook(s) from the knowledge base")
    if st.button("Clear uploads", disabled=not sure):
        try:
            gone = api.delete("/rag/documents", DeletedOut)
            st.success(f"Removed {len(gone.deleted)} document(s).")
        except ApiError as exc:
            show_error(exc, "clear the uploads")
