"""Incident lifecycle on SQLite and PostgreSQL: acknowledge / resolve / reopen, the per-window review
(auto-resolve after clear windows, escalation of unacknowledged incidents), reopen on recurrence."""

from __future__ import annotations

from datetime import timedelta

import pytest

from opsloop.domain import IncidentStatus, Window
from opsloop.store import repository as repo
from opsloop.store.session import open_store
from tests.store.test_repository import GAP, T0, incident

H = timedelta(hours=1)


def _window(k: int) -> Window:
    return Window(start=T0 + k * H, end=T0 + (k + 1) * H)


def test_acknowledge_resolve_reopen_are_audited_and_refused_when_they_do_not_apply(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, incident(), GAP)
    with store.begin() as s:
        assert repo.move_incident(s, inc.id, "acknowledged", "alice").status == IncidentStatus.acknowledged
    with store.begin() as s, pytest.raises(repo.Conflict, match="is acknowledged; it cannot be reopened"):
        repo.move_incident(s, inc.id, "reopened", "alice")
    with store.begin() as s:
        assert (
            repo.move_incident(s, inc.id, "resolved", "bob", "fixed the secret").status
            == IncidentStatus.resolved
        )
    with store.begin() as s, pytest.raises(repo.Conflict, match="is resolved"):
        repo.move_incident(s, inc.id, "acknowledged", "alice")
    with store.begin() as s:
        assert repo.move_incident(s, inc.id, "reopened", "carol").status == IncidentStatus.open
    with store.begin() as s, pytest.raises(repo.NotFound):
        repo.move_incident(s, "inc-nope", "resolved", "bob")
    with store() as s:
        events = [(e.actor, e.verb, e.detail.get("from")) for e in repo.list_audit(s) if e.subject == inc.id]
        assert events[1:] == [
            ("alice", "incident.acknowledged", "open"),
            ("bob", "incident.resolved", "acknowledged"),
            ("carol", "incident.reopened", "resolved"),
        ]
        assert repo.verify_audit(s) == []


def test_review_resolves_after_clear_windows_and_a_recurrence_reopens(store_url):
    store = open_store(store_url)
    with store.begin() as s:  # the incident's anomalies span window 0
        inc, _ = repo.upsert_incident(s, incident(minutes=50), GAP)
    with store.begin() as s:
        assert repo.review_incidents(s, _window(0), {inc.id}, 3, None).resolved == []
    for k in (1, 2):
        with store.begin() as s:
            assert repo.review_incidents(s, _window(k), set(), 3, None).resolved == []
    with store.begin() as s:
        assert repo.review_incidents(s, _window(3), set(), 3, None).resolved == [inc.id]
    with store() as s:
        assert repo.get_incident(s, inc.id).status == IncidentStatus.resolved
    with store.begin() as s:  # the same problem within the merge gap: the same incident, reopened
        again, created = repo.upsert_incident(s, incident(start=T0 + 5 * H, minutes=20), GAP)
        assert not created and again.id == inc.id and again.status == IncidentStatus.open
    with store() as s:
        assert [e.verb for e in repo.list_audit(s) if e.subject == inc.id][-2:] == [
            "incident.resolved",
            "incident.reopened",
        ]


def test_a_seen_incident_is_not_resolved_and_an_old_unacknowledged_one_escalates_once(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, incident(), GAP)
        acked, _ = repo.upsert_incident(s, incident(fp="fp2"), GAP)
        repo.move_incident(s, acked.id, "acknowledged", "alice")
    for k in range(1, 5):  # seen every window: never resolved
        with store.begin() as s:
            r = repo.review_incidents(s, _window(k), {inc.id, acked.id}, 2, timedelta(hours=3))
            assert r.resolved == []
            assert [i.id for i in r.escalate] == (
                [inc.id] if k == 2 else []
            )  # 3 h old at the end of window 2
