"""The store on SQLite and PostgreSQL: dedup by fingerprint, conditional action transitions, audit chain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from opsloop.domain import ActionStatus, Incident, Kind, ProposedAction, Risk, Severity
from opsloop.store import repository as repo
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 3, 14, 0, tzinfo=UTC)
GAP = timedelta(hours=6)


def incident(fp: str = "fp1", start: datetime = T0, minutes: int = 60, severity: Severity = Severity.medium) -> Incident:
    return Incident(id="cand", fingerprint=fp, kind=Kind.hard, first_seen=start,
                    last_seen=start + timedelta(minutes=minutes), severity=severity, title="HTTP 403 spike")


def action(incident_id: str, key: str = "k1") -> ProposedAction:
    return ProposedAction(id=f"act-{key}", incident_id=incident_id, type="open_ticket", params={"summary": "x"},
                          rationale="r", risk=Risk.medium, confidence=0.8, requires_approval=True, idempotency_key=key)


def test_incidents_are_deduplicated_by_fingerprint(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        a, created_a = repo.upsert_incident(s, incident(), GAP)
        b, created_b = repo.upsert_incident(s, incident(start=T0 + timedelta(minutes=30), severity=Severity.high), GAP)
        c, created_c = repo.upsert_incident(s, incident(start=T0 + timedelta(days=2)), GAP)
        d, created_d = repo.upsert_incident(s, incident(fp="other"), GAP)
    assert (created_a, created_b, created_c, created_d) == (True, False, True, True)
    assert a.id == b.id and c.id != a.id
    with store() as s:
        got = repo.get_incident(s, a.id)
        assert got.severity == Severity.high  # raised to the worse
        assert got.last_seen == T0 + timedelta(minutes=90)  # span widened
        assert got.first_seen.tzinfo is not None
        assert repo.count_rows(s)["incidents"] == 3


def test_action_transitions_are_conditional_and_audited(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, incident(), GAP)
        act, new = repo.add_action(s, action(inc.id))
        again, new_again = repo.add_action(s, action(inc.id))
    assert new and not new_again and again.id == act.id
    with store.begin() as s:
        approved = repo.transition_action(s, act.id, ActionStatus.proposed, ActionStatus.approved, "alice")
    assert approved.status == ActionStatus.approved
    with pytest.raises(repo.Conflict, match="is approved, not proposed"), store.begin() as s:
        repo.transition_action(s, act.id, ActionStatus.proposed, ActionStatus.rejected, "bob", "no")
    with pytest.raises(repo.NotFound), store.begin() as s:
        repo.transition_action(s, "act-missing", ActionStatus.proposed, ActionStatus.approved, "bob")
    with store() as s:
        assert repo.get_action(s, act.id).status == ActionStatus.approved
        assert repo.verify_audit(s) == []
        assert repo.count_rows(s)["audit_events"] == 3  # opened, proposed, approved


def test_audit_chain_detects_edits_and_deletions(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        for i in range(4):
            repo.append_audit(s, "alice", "note", f"subject-{i}", {"i": i})
    with store.begin() as s:
        s.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"))
    with store() as s:
        assert any("event 2" in p and "edited" in p for p in repo.verify_audit(s))
    with store.begin() as s:
        s.execute(text("UPDATE audit_events SET actor = 'alice' WHERE seq = 2"))
        s.execute(text("DELETE FROM audit_events WHERE seq = 3"))
    with store() as s:
        problems = repo.verify_audit(s)
        assert any("event 3 is missing" in p for p in problems)
