"""The opsloop web UI (``opsloop ui``): a Streamlit multipage app over the API.

Pages: Incidents (list and one incident), Approvals, Cycles, Knowledge base, Audit, Health. Until a
user signs in with an API token only the sign-in page is shown; what a page offers follows the
token's role (see :mod:`opsloop.ui.session`). The API's URL is ``OPSLOOP_API_URL``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from opsloop.ui.client import ApiError, api_url
from opsloop.ui.session import current_user, sign_in, sign_out

PAGES = Path(__file__).parent / "pages"


def _sign_in_page() -> None:
    st.title("opsloop")
    st.caption(f"Incident intelligence · API {api_url()}")
    with st.form("sign-in"):
        token = st.text_input("API token", type="password", help="`opsloop tokens create NAME --role ROLE`")
        submitted = st.form_submit_button("Sign in")
    if submitted:
        if not token.strip():
            st.error("Enter a token.")
            return
        try:
            sign_in(token)
        except ApiError as exc:
            st.error("That token is not valid (unknown, expired or revoked)." if exc.status == 401
                     else f"Could not sign in: {exc}")
            return
        st.rerun()


def main() -> None:
    st.set_page_config(page_title="opsloop", layout="wide")
    user = current_user()
    if user is None:
        st.navigation([st.Page(_sign_in_page, title="Sign in", url_path="signin")]).run()
        return
    with st.sidebar:
        st.write(f"Signed in as **{user.name}** ({user.role.value})")
        if st.button("Sign out"):
            sign_out()
            st.rerun()
    pages = [
        st.Page(PAGES / "incidents.py", title="Incidents", url_path="incidents", default=True),
        st.Page(PAGES / "incident.py", title="Incident", url_path="incident"),
        st.Page(PAGES / "approvals.py", title="Approvals", url_path="approvals"),
        st.Page(PAGES / "cycles.py", title="Cycles", url_path="cycles"),
        st.Page(PAGES / "knowledge.py", title="Knowledge base", url_path="knowledge"),
        st.Page(PAGES / "audit.py", title="Audit", url_path="audit"),
        st.Page(PAGES / "health.py", title="Health", url_path="health"),
    ]
    st.navigation(pages).run()


main()
