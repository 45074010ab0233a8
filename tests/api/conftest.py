"""An API app on a store seeded with one incident and actions of every risk, and tokens per role."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from opsloop.api.app import create_app
from opsloop.config import Settings
from opsloop.domain import Incident, Kind, ProposedAction, Risk, Severity
from opsloop.store import repository as repo
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 7, 15, 0, tzinfo=UTC)


def seed_store(url: str) -> dict[str, str]:
    """One incident with a proposed action per risk level (ids ``act-low`` …); returns tokens by role."""
    store = open_store(url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, Incident(
            id="cand", fingerprint="fp-webhook", kind=Kind.hard, first_seen=T0, last_seen=T0 + timedelta(hours=1),
            severity=Severity.critical, title="HTTP 403 spike on POST /webhooks/orders"), timedelta(hours=6))
        for risk in Risk:
            repo.add_action(s, ProposedAction(
                id=f"act-{risk.value}", incident_id=inc.id, type="open_ticket", params={"summary": risk.value},
                rationale="test", risk=risk, confidence=0.9, requires_approval=True, idempotency_key=f"key-{risk.value}"))
        repo.add_action(s, ProposedAction(
            id="act-byhand", incident_id=inc.id, type="open_ticket", params={}, rationale="proposed by alice",
            risk=Risk.medium, confidence=0.9, requires_approval=True, idempotency_key="key-byhand"), actor="alice")
        tokens = {role: repo.create_token(s, role + "-user", role) for role in repo.ROLES}
        tokens["alice"] = repo.create_token(s, "alice", "approver")
        tokens["bob"] = repo.create_token(s, "bob", "approver")
    return tokens


@pytest.fixture
def api(store_url, tmp_path):
    """(client, tokens, settings) on SQLite and on PostgreSQL."""
    tokens = seed_store(store_url)
    settings = Settings(home=tmp_path, database_url=store_url, pack="checkout")
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client, tokens, settings


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
