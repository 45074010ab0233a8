"""One incident: what happened, the evidence, the chart of each anomalous series, the runbook
passages cited, revenue at risk, similar incidents, actions, and acknowledge/resolve/reopen."""

from __future__ import annotations

import streamlit as st

from opsloop.api.schemas import SimilarIncidentOut, TimelineEntryOut
from opsloop.domain import Incident, IncidentStatus, Role
from opsloop.store.series import AnomalySeries
from opsloop.ui.charts import series_chart
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error
from opsloop.ui.widgets import chip, chips, money, when

user = require_user()
api = user.client()
incident_id = st.query_params.get("id") or st.session_state.get("incident_id")
if not incident_id:
    st.title("Incident")
    st.info("Pick an incident on the Incidents page.")
    st.page_link("pages/incidents.py", label="← Incidents")
    st.stop()
st.session_state["incident_id"] = incident_id

try:
    inc = api.get(f"/incidents/{incident_id}", Incident)
except ApiError as exc:
    st.title("Incident")
    show_error(exc, f"open incident {incident_id}")
    st.stop()

st.title(inc.title or inc.id)
st.markdown(chips(inc.severity.value, inc.status.value, inc.kind.value,
                  inc.assessment.category if inc.assessment else ""))
st.caption(f"{inc.id} · first seen {when(inc.first_seen)} · last seen {when(inc.last_seen)}")

# -- status moves -------------------------------------------------------------------------------
if user.can(Role.operator):
    moves = {IncidentStatus.open: [("Acknowledge", "acknowledge"), ("Resolve", "resolve")],
             IncidentStatus.acknowledged: [("Resolve", "resolve")],
             IncidentStatus.mitigating: [("Acknowledge", "acknowledge"), ("Resolve", "resolve")],
             IncidentStatus.resolved: [("Reopen", "reopen")]}[inc.status]
    reason = st.text_input("Reason (optional, kept in the audit trail)", key="move-reason")
    cols = st.columns(len(moves) + 3)
    for col, (label, move) in zip(cols, moves, strict=False):
        if col.button(label, key=f"move-{move}"):
            try:
                moved = api.post(f"/incidents/{inc.id}/{move}", Incident, json={"reason": reason or None})
                st.session_state["flash"] = f"{inc.id} is now {moved.status.value}"
                st.rerun()
            except ApiError as exc:
                show_error(exc, f"{move} the incident")
if flash := st.session_state.pop("flash", None):
    st.success(flash)

# -- assessment ---------------------------------------------------------------------------------
a = inc.assessment
st.subheader("Assessment")
if a is None:
    st.info("No assessment stored for this incident.")
else:
    st.markdown(f"**Summary.** {a.summary}")
    st.markdown(f"**Root cause.** {a.root_cause}")
    st.markdown(f"**Category** `{a.category}`" + (f" (the rules said `{a.rule_category}`)" if a.rule_category else "")
                + f" · **confidence** {a.confidence:.0%} · written by {a.generated_by}")
    st.markdown(chips(a.narrative.phrase)
                + (f" {a.fallback_reason}" if a.narrative.value == "fell_back" and a.fallback_reason else ""))
    if a.hypotheses:
        st.markdown("**Hypotheses**" + (" — *insufficient evidence to tell them apart*" if a.insufficient_evidence else ""))
        for n, h in enumerate(a.hypotheses, 1):
            with st.container(border=True):
                st.markdown(f"{n}. **{h.title}** (`{h.category}`) · confidence {h.confidence:.0%}")
                if h.explanation:
                    st.caption(h.explanation)
                for x in h.supporting:
                    st.markdown(f"- ✅ {x}")
                for x in h.contrary:
                    st.markdown(f"- ❌ {x}")
                if not h.contrary:
                    st.caption("nothing found against it")
    if a.mitigation:
        st.markdown(f"**Mitigation** (quoted from `{a.mitigation[0].document}`)")
        for m in a.mitigation:
            st.markdown(f"> {m.text}\n>\n> — *{m.section.split(' > ')[-1]}*")
    for title, items in (("Evidence", a.evidence), ("Assumptions", a.assumptions),
                         ("Uncertainties", a.uncertainties)):
        if items:
            st.markdown(f"**{title}**")
            st.markdown("\n".join(f"- {x}" for x in items))

# -- charts -------------------------------------------------------------------------------------
st.subheader("Anomalous series")
try:
    series = api.page(f"/incidents/{inc.id}/series", AnomalySeries).data
except ApiError as exc:
    series = []
    if exc.status != 404:
        show_error(exc, "load the series")
if not series:
    st.info("No series snapshot for this incident (log-template and ticket evidence has no series).")
for s in series:
    labels = ", ".join(f"{k}={v}" for k, v in s.labels.items())
    st.markdown(f"**{s.metric}**{' {' + labels + '}' if labels else ''} · {s.detector}, watching "
                f"{s.direction} · anomaly {when(s.start)} → {when(s.end)}")
    st.altair_chart(series_chart(s), use_container_width=True)

for a_ in inc.anomalies:
    st.caption(f"{a_.kind.value} · {a_.line()}")

# -- logs and tickets ---------------------------------------------------------------------------
if inc.signatures:
    st.subheader("Log signatures")
    st.dataframe([{"template": g.template, "count": g.count, "rate": round(g.rate, 3),
                   "baseline rate": round(g.baseline_rate, 3)} for g in inc.signatures], hide_index=True)
if inc.clusters:
    st.subheader("Ticket clusters")
    for c in inc.clusters:
        with st.container(border=True):
            st.markdown(f"**{c.label or ', '.join(c.top_terms[:3]) or 'unlabelled theme'}** · {c.size} tickets · "
                        f"{when(c.first_seen)} → {when(c.last_seen)}")
            st.caption("top terms: " + ", ".join(c.top_terms))
            for ex in c.examples[:3]:
                st.markdown(f"> {ex.get('subject', '')} — {str(ex.get('body', ''))[:240]}")

blast = (a.blast_radius if a else {}) or inc.affected
if blast:
    st.subheader("Blast radius")
    st.markdown("\n".join(f"- **{k}**: {', '.join(v)}" for k, v in blast.items()))

# -- revenue ------------------------------------------------------------------------------------
if a is not None:
    st.subheader("Revenue at risk")
    r = a.risk
    amount = money(r.revenue_at_risk_window, r.currency)
    if amount is None:
        st.write("No money figure: " + (r.method or "the domain pack has no revenue model."))
    else:
        c1, c2, c3 = st.columns(3)
        c1.metric("over the incident", amount)
        c2.metric("per hour", money(r.revenue_at_risk_per_hour, r.currency) or "—")
        c3.metric("lost orders", f"{r.lost_orders:,.0f}" if r.lost_orders is not None else "—")
        if r.interval:
            st.caption(f"approx. 95% interval {money(r.interval[0], r.currency)} – {money(r.interval[1], r.currency)}")
        st.caption(f"method: {r.method}")

# -- runbook passages ---------------------------------------------------------------------------
st.subheader("Runbook passages")
if not a or not a.citations:
    st.info("No runbook passage cited.")
else:
    for c in a.citations:
        with st.container(border=True):
            st.markdown(f"**{c.document}** › {c.section}")
            st.markdown(c.text or "_(no text stored)_")

# -- actions ------------------------------------------------------------------------------------
st.subheader("Actions")
if not inc.actions:
    st.write("No actions proposed.")
for x in inc.actions:
    st.markdown(f"{chips(x.status.value, x.risk.value)} **{x.type}** `{x.id}` — {x.rationale}")
if any(x.status.value in ("proposed", "approved", "unknown") for x in inc.actions):
    st.page_link("pages/approvals.py", label="Review on the Approvals page →")

# -- timeline and similar -----------------------------------------------------------------------
st.subheader("Timeline")
try:
    for t in api.page(f"/incidents/{inc.id}/timeline", TimelineEntryOut).data:
        st.markdown(f"- `{when(t.at)}` {t.text}" + ("" if t.actor == "opsloop" else f" — *{t.actor}*"))
except ApiError as exc:
    show_error(exc, "load the timeline")

st.subheader("Similar incidents")
try:
    similar = api.page(f"/incidents/{inc.id}/similar", SimilarIncidentOut).data
except ApiError as exc:
    similar = []
    show_error(exc, "load similar incidents")
if not similar:
    st.write("None found.")
for sim in similar:
    col1, col2 = st.columns([5, 2])
    if col1.button(sim.title or sim.id, key=f"similar-{sim.id}", type="tertiary"):
        st.session_state["incident_id"] = sim.id
        st.switch_page("pages/incident.py", query_params={"id": sim.id})
    col1.caption(f"{sim.id} · shares {', '.join(sim.shared[:4])}")
    with col2:
        chip(sim.status.value)
        st.caption(f"similarity {sim.score:.2f}")
