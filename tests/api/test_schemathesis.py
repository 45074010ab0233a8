"""Property-based API testing from the app's own OpenAPI schema: no generated request gets a 5xx."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from opsloop.api.app import create_app
from opsloop.config import Settings

from .conftest import seed_store

_HOME = Path(tempfile.mkdtemp(prefix="opsloop-schemathesis-"))
_URL = f"sqlite:///{_HOME / 'opsloop.db'}"
_TOKENS = seed_store(_URL)
APP = create_app(Settings(home=_HOME, database_url=_URL))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    response = case.call(headers={"Authorization": f"Bearer {_TOKENS['admin']}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code} {response.text[:300]}"
    if response.status_code >= 400:
        assert "detail" in response.json()
