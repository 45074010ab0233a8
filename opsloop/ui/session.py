"""Who is signed in: the API token and the caller's name and role, kept in Streamlit's session state
(never in a URL or on disk)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from opsloop.domain import Role
from opsloop.ui.client import ApiClient, ApiError, api_url

_KEY = "opsloop_user"


@dataclass(frozen=True)
class User:
    """The signed-in caller: ``name`` and ``role`` as the API reports them for ``token``."""

    name: str
    role: Role
    token: str
    api: str

    def can(self, role: Role | str) -> bool:
        """Whether this user's role is at least ``role`` (viewer < operator < approver < admin)."""
        return self.role.rank >= Role(role).rank

    def client(self) -> ApiClient:
        return ApiClient(self.api, self.token)


def sign_in(token: str, base_url: str | None = None) -> User:
    """Check ``token`` against the API (``GET /me``) and keep the user in the session; raises
    :class:`~opsloop.ui.client.ApiError` (401 for an unknown or revoked token)."""
    url = base_url or api_url()
    me = ApiClient(url, token.strip()).get("/me")
    user = User(name=me["name"], role=Role(me["role"]), token=token.strip(), api=url)
    st.session_state[_KEY] = user
    return user


def sign_out() -> None:
    st.session_state.pop(_KEY, None)


def current_user() -> User | None:
    return st.session_state.get(_KEY)


def require_user() -> User:
    """The signed-in user, or a note to sign in and the page stops."""
    user = current_user()
    if user is None:
        st.info("Sign in with an API token (`opsloop tokens create NAME --role ROLE`).")
        st.stop()
    return user


def show_error(exc: ApiError, doing: str) -> None:
    """Explain a failed call in one line: what was being done and the API's reason."""
    if exc.status == 401:
        st.error(f"Could not {doing}: your token is no longer valid; sign in again.")
    elif exc.status == 403:
        st.error(f"Could not {doing}: not allowed for your role — {exc.detail}")
    elif exc.status == 409:
        st.warning(f"Could not {doing}: it changed meanwhile — {exc.detail}")
    else:
        st.error(f"Could not {doing}: {exc}")
