"""Maintenance windows in the store (SQLite and PostgreSQL): add, list by overlap, remove, audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsloop.domain import MaintenanceWindow
from opsloop.store import repository as repo
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 5, 1, 0, tzinfo=UTC)


def test_windows_are_stored_listed_by_overlap_and_removed(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        a = repo.add_maintenance(s, MaintenanceWindow(start=T0, end=T0 + timedelta(minutes=45),
                                                      labels={"endpoint": "GET /v1/orders/{id}"}, reason="db"), "ops")
        b = repo.add_maintenance(s, MaintenanceWindow(start=T0 + timedelta(days=1), end=T0 + timedelta(days=1, hours=1)),
                                 "ops")
    assert a.id.startswith("mw-") and a.id != b.id and a.created_by == "ops"
    with store() as s:
        listed = repo.list_maintenance(s)
        assert [w.id for w in listed] == [a.id, b.id]
        assert listed[0].labels == {"endpoint": "GET /v1/orders/{id}"} and listed[0].start == T0
        assert listed[0].start.tzinfo is not None
        assert [w.id for w in repo.list_maintenance(s, T0 + timedelta(minutes=30), T0 + timedelta(hours=2))] == [a.id]
        assert repo.list_maintenance(s, T0 + timedelta(minutes=45), T0 + timedelta(hours=2)) == []  # half-open
    with store.begin() as s:
        repo.remove_maintenance(s, a.id, "ops")
    with store() as s:
        assert [w.id for w in repo.list_maintenance(s)] == [b.id]
        verbs = [e.verb for e in repo.list_audit(s)]
        assert verbs.count("maintenance.added") == 2 and "maintenance.removed" in verbs
        assert repo.verify_audit(s) == []
    with pytest.raises(repo.NotFound), store.begin() as s:
        repo.remove_maintenance(s, a.id, "ops")
