"""Cycles: the scheduler's status, the cycle reports (stage timings, counts, degradations), and a
cycle or an observe run on uploaded files."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from opsloop.api.health import Health
from opsloop.api.schemas import CycleOut, ObserveOut
from opsloop.domain import CycleReport, Role
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error
from opsloop.ui.widgets import chip, when

user = require_user()
api = user.client()
st.title("Cycles")

st.subheader("Scheduler")
try:
    health = api.get("/health", Health)
    r = health.runner
    chip(r.status)
    st.write(f"Lease held by **{r.holder}** until {when(r.lease_expires)}" if r.holder else
             "No runner holds the store (start one with `opsloop schedule`).")
    st.caption(f"last window committed up to {when(r.watermark)}"
               + (f" · lag {r.lag_seconds:.0f} s" if r.lag_seconds is not None else ""))
    for s in health.sources:
        st.caption(f"source {s.name}: {s.status}" + (f", lag {s.lag_seconds:.0f} s" if s.lag_seconds is not None else "")
                   + (f", last error: {s.last_error}" if s.last_error else ""))
except ApiError as exc:
    show_error(exc, "read the scheduler's status")


def _report(rep: CycleReport) -> None:
    c = rep.counts
    st.markdown(f"`{rep.id}` · window {when(rep.window.start)} → {when(rep.window.end)}")
    st.caption(", ".join(f"{k.replace('_', ' ')} {v}" for k, v in c.items() if v))
    if rep.stage_seconds:
        st.bar_chart(pd.DataFrame({"seconds": rep.stage_seconds}), horizontal=True, height=180)
    for d in rep.degradations:
        st.warning(f"degraded: {d}")
    for e in rep.errors:
        st.error(e)
    if rep.quarantined:
        st.caption(f"{len(rep.quarantined)} quarantined row(s)")
        st.dataframe([{"file": q.file, "line": q.line, "field": q.field or "", "reason": q.reason}
                      for q in rep.quarantined[:200]], hide_index=True)
    if rep.context:
        st.caption("paged nobody (context): " + "; ".join(f"{n.title} ({n.reason})" for n in rep.context[:10]))


st.subheader("Reports")
try:
    page = api.page("/cycles", CycleReport, {"limit": 20})
except ApiError as exc:
    show_error(exc, "list the cycles")
    st.stop()
st.caption(f"{page.count} cycle(s), newest first")
if not page.data:
    st.info("No cycle has run yet.")
for rep in page.data:
    total = sum(rep.stage_seconds.values())
    with st.expander(f"{rep.window.start:%Y-%m-%d %H:%M} → {rep.window.end:%Y-%m-%d %H:%M} UTC · "
                     f"{rep.counts.get('incidents_new', 0)} new incident(s) · {total:.1f} s",
                     expanded=rep is page.data[0]):
        _report(rep)

if user.can(Role.operator):
    st.subheader("Run on files")
    c1, c2, c3 = st.columns(3)
    tickets = c1.file_uploader("Tickets", type=["csv", "jsonl", "json", "parquet"])
    logs = c2.file_uploader("Logs", type=["csv", "jsonl", "json", "ndjson", "parquet"])
    kpis = c3.file_uploader("KPIs", type=["csv", "jsonl", "json", "parquet"], accept_multiple_files=True)
    files = [(n, (f.name, f.getvalue())) for n, f in (("tickets", tickets), ("logs", logs)) if f]
    files += [("kpis", (f.name, f.getvalue())) for f in kpis or []]
    b1, b2 = st.columns(2)
    observe, run = b1.button("Observe (store nothing)", disabled=not files), b2.button("Run a cycle", disabled=not files)
    if observe or run:
        with st.status("observe: loading and checking the files", expanded=True) as status:
            try:
                if run:
                    st.write("reason → decide → act: detecting, correlating, assessing, storing")
                    out = api.post("/cycles/files", CycleOut, files=files, timeout=900)
                    status.update(label=f"cycle {out.report.id} done", state="complete")
                else:
                    st.write("detecting and correlating")
                    seen = api.post("/observe/files", ObserveOut, files=files, timeout=900)
                    status.update(label="observed", state="complete")
            except ApiError as exc:
                status.update(label="failed", state="error")
                show_error(exc, "run on the files")
                st.stop()
        if run:
            _report(out.report)
            for iid in out.incident_ids:
                st.page_link("pages/incident.py", label=f"open {iid}", query_params={"id": iid})
        else:
            st.write(f"{len(seen.anomalies)} anomalies, {len(seen.candidates)} incident candidate(s); "
                     f"{len(seen.quarantined)} quarantined row(s)")
            st.dataframe([{"title": c.title, "kind": c.kind, "severity": c.severity, "first seen": when(c.first_seen),
                           "anomalies": c.anomalies} for c in seen.candidates], hide_index=True)
            for q in seen.quarantined[:20]:
                st.caption(f"quarantined {q.file}:{q.line}: {q.field or '-'}: {q.reason}")
