"""Approvals: the actions waiting for a human — approve, reject with a reason, execute — and the
executions a crash left unknown (resolve after checking, or retry)."""

from __future__ import annotations

import streamlit as st

from opsloop.api.schemas import ActionDetail, ApproveOut, IncidentSummary
from opsloop.domain import ActionStatus, ProposedAction, Role
from opsloop.ui.client import ApiError
from opsloop.ui.session import require_user, show_error
from opsloop.ui.widgets import chips, when

user = require_user()
api = user.client()
st.title("Approvals")
if flash := st.session_state.pop("approvals_flash", None):
    st.success(flash)

waiting: list[ProposedAction] = []
try:
    for status in (ActionStatus.proposed, ActionStatus.approved, ActionStatus.unknown):
        waiting += api.page("/actions", ProposedAction, {"status": status.value, "limit": 200}).data
    titles = {i.id: i.title for i in api.page("/incidents", IncidentSummary, {"limit": 500}).data}
except ApiError as exc:
    show_error(exc, "list the actions")
    st.stop()

st.caption(f"{len(waiting)} action(s) wait: proposed ones for an approver, approved ones to be executed, "
           "unknown ones for an operator's check. You are "
           f"{user.name} ({user.role.value}).")
if not waiting:
    st.info("Nothing waits for approval.")


def _done(message: str) -> None:
    st.session_state["approvals_flash"] = message
    st.rerun()


for x in waiting:
    with st.container(border=True):
        st.markdown(f"{chips(x.status.value, x.risk.value)} **{x.type}** `{x.id}` · confidence {x.confidence:.0%}")
        st.markdown(x.rationale)
        if x.params:
            st.caption("parameters: " + ", ".join(f"{k}={v}" for k, v in x.params.items()))
        title = titles.get(x.incident_id, x.incident_id)
        if st.button(f"for incident: {title}", key=f"inc-{x.id}", type="tertiary"):
            st.session_state["incident_id"] = x.incident_id
            st.switch_page("pages/incident.py", query_params={"id": x.incident_id})
        try:
            detail = api.get(f"/actions/{x.id}", ActionDetail)
        except ApiError as exc:
            show_error(exc, f"read {x.id}")
            continue
        if detail.approvals:
            got = ", ".join(f"{a.approver} ({when(a.at)})" for a in detail.approvals)
            st.caption(f"approvals: {got} — {len(detail.approvals)} of {detail.approvals_needed}")
            if x.status == ActionStatus.proposed and len(detail.approvals) < detail.approvals_needed:
                st.warning(f"Waits for a second approver ({x.risk.value} risk needs {detail.approvals_needed}, "
                           "from different people).")
        if x.status == ActionStatus.proposed:
            if not user.can(Role.approver):
                st.caption("An approver decides this action.")
                continue
            c1, c2 = st.columns([1, 3])
            if c1.button("Approve", key=f"approve-{x.id}"):
                try:
                    out = api.post(f"/actions/{x.id}/approve", ApproveOut)
                    _done(f"Approved {x.id}; it is now {out.action.status.value}" if out.approved else
                          f"Recorded your approval of {x.id}; waits for a second approver")
                except ApiError as exc:
                    show_error(exc, f"approve {x.id}")
            with c2.form(f"reject-{x.id}", border=False):
                reason = st.text_input("Reason", key=f"reason-{x.id}", placeholder="why it should not run")
                if st.form_submit_button("Reject"):
                    if not reason.strip():
                        st.error("A rejection needs a reason.")
                    else:
                        try:
                            out_r = api.post(f"/actions/{x.id}/reject", ProposedAction, json={"reason": reason})
                            _done(f"Rejected {x.id}; it is now {out_r.status.value}")
                        except ApiError as exc:
                            show_error(exc, f"reject {x.id}")
        elif x.status == ActionStatus.approved:
            if not user.can(Role.operator):
                st.caption("An operator executes this action.")
                continue
            if st.button("Execute", key=f"execute-{x.id}"):
                try:
                    out_e = api.post(f"/actions/{x.id}/execute", ProposedAction, timeout=120)
                    _done(f"Executed {x.id}; it is now {out_e.status.value}")
                except ApiError as exc:
                    show_error(exc, f"execute {x.id}")
        elif x.status == ActionStatus.unknown:
            st.warning("Its execution was interrupted: check whether the side effect happened, then record "
                       "what you found or run it again (same idempotency key).")
            if not user.can(Role.operator):
                continue
            with st.form(f"resolve-{x.id}", border=False):
                outcome = st.radio("Outcome", ["succeeded", "failed"], horizontal=True, key=f"outcome-{x.id}")
                note = st.text_input("What you checked", key=f"note-{x.id}")
                c1, c2 = st.columns(2)
                resolve = c1.form_submit_button("Record outcome")
                retry = c2.form_submit_button("Retry")
            if resolve:
                if not note.strip():
                    st.error("Say what you checked.")
                else:
                    try:
                        out_v = api.post(f"/actions/{x.id}/resolve", ProposedAction,
                                         json={"outcome": outcome, "note": note})
                        _done(f"Recorded {x.id} as {out_v.status.value}")
                    except ApiError as exc:
                        show_error(exc, f"resolve {x.id}")
            if retry:
                try:
                    out_t = api.post(f"/actions/{x.id}/retry", ProposedAction, timeout=120)
                    _done(f"Retried {x.id}; it is now {out_t.status.value}")
                except ApiError as exc:
                    show_error(exc, f"retry {x.id}")

