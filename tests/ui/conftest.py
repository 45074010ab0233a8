"""A live API (uvicorn on loopback, in a thread) over a store that holds the demo's cycle: the
checkout scenario (seed 7, 7 days) run once per session with MiniLM. Tokens per role, plus two
approvers (``alice``, ``bob``) for critical actions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from opsloop.api.app import create_app
from opsloop.config import Settings
from opsloop.store import repository as repo
from opsloop.store.session import open_store
from tests.live import free_port, serve

PAGES = Path(__file__).resolve().parents[2] / "opsloop" / "ui" / "pages"


@dataclass(frozen=True)
class LiveApi:
    """A running API: ``url``, ``tokens`` by role name (and ``alice``/``bob``), ``settings``."""

    url: str
    tokens: dict[str, str]
    settings: Settings


@pytest.fixture(scope="session")
def live_api(demo_home) -> LiveApi:
    settings = Settings(home=demo_home, pack="checkout")
    store = open_store(settings.resolved_database_url())
    with store.begin() as s:
        tokens = {role: repo.create_token(s, f"{role}-user", role) for role in repo.ROLES}
        tokens["alice"] = repo.create_token(s, "alice", "approver")
        tokens["bob"] = repo.create_token(s, "bob", "approver")
    port = free_port()
    server = serve(create_app(settings), port)
    yield LiveApi(url=f"http://127.0.0.1:{port}", tokens=tokens, settings=settings)
    server.should_exit = True


@pytest.fixture
def signed_in(live_api):
    """``app(page, role="approver", **query)``: an AppTest of the app on ``opsloop/ui/pages/<page>.py``
    with a user of ``role`` signed in (its session holds the token, as after the sign-in form)."""
    from streamlit.testing.v1 import AppTest

    from opsloop.domain import Role
    from opsloop.ui.session import User

    def app(page: str, role: str = "approver", token_name: str | None = None, **query: str) -> AppTest:
        at = AppTest.from_file(str(PAGES.parent / "app.py"), default_timeout=60)
        at.switch_page(f"pages/{page}.py")
        name = token_name or role
        at.session_state["opsloop_user"] = User(name=f"{name}-user" if name in repo.ROLES else name,
                                                role=Role(role), token=live_api.tokens[name], api=live_api.url)
        for k, v in query.items():
            at.query_params[k] = v
        return at.run()

    return app
