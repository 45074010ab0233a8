"""The audit trail detects what a database writer without the key can do: edit an event and re-hash
the chain, delete the newest events, insert one, change a status directly in a table."""

from __future__ import annotations

import hashlib
import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from opsloop.domain import Incident, Kind, ProposedAction, Risk, Severity
from opsloop.store import audit
from opsloop.store import repository as repo
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 7, 15, 0, tzinfo=UTC)


@pytest.fixture
def trail(store_url):
    """A store with an incident, two actions (one approved) and a dozen audit events."""
    store = open_store(store_url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, Incident(
            id="cand", fingerprint="fp", kind=Kind.hard, first_seen=T0, last_seen=T0 + timedelta(hours=1),
            severity=Severity.high, title="errors up"), timedelta(hours=6))
        for i in range(2):
            repo.add_action(s, ProposedAction(
                id=f"act-{i}", incident_id=inc.id, type="open_ticket", params={}, rationale="r", risk=Risk.low,
                confidence=0.9, requires_approval=True, idempotency_key=f"k{i}"))
    for n in range(8):
        with store.begin() as s:
            repo.append_audit(s, "alice", "note.added", f"n{n}", {"n": n})
    with store.begin() as s:
        repo.approve_action(s, "act-0", "bob", repo.Policy())
    with store() as s:
        assert repo.verify_audit(s) == []
    return store


def _one(store, sql: str, **params) -> None:
    with store.begin() as s:
        s.execute(text(sql), params)


def _problems(store) -> list[str]:
    with store() as s:
        return repo.verify_audit(s)


def test_edit_and_rehash_without_the_key_is_detected(trail):
    with trail() as s:
        rows = s.execute(text("SELECT seq, at, actor, verb, subject, detail, prev_hash FROM audit_events ORDER BY seq")
                         ).all()
    prev = audit.GENESIS
    for seq, at, actor, verb, subject, detail, _ in rows:  # rewrite event 3, recompute every later hash
        actor = "mallory" if seq == 3 else actor
        detail = json.loads(detail) if isinstance(detail, str) else detail
        at = at if isinstance(at, datetime) else datetime.fromisoformat(at)
        payload = json.dumps([seq, at.replace(tzinfo=UTC).isoformat(), actor, verb, subject, detail, prev],
                             sort_keys=True, default=str, separators=(",", ":"))
        h = hashlib.sha256(payload.encode()).hexdigest()
        _one(trail, "UPDATE audit_events SET actor = :a, prev_hash = :p, hash = :h WHERE seq = :q",
             a=actor, p=prev, h=h, q=seq)
        prev = h
    problems = _problems(trail)
    assert problems and problems[0].startswith("audit event 1: content does not match its keyed hash")


def test_deleting_the_newest_events_is_detected(trail):
    with trail() as s:
        top = s.execute(text("SELECT max(seq) FROM audit_events")).scalar_one()
    _one(trail, "DELETE FROM audit_events WHERE seq = :q", q=top)
    assert any(f"checkpoint records event {top}" in p for p in _problems(trail))
    _one(trail, "DELETE FROM audit_events WHERE seq > :q", q=top - 10)
    assert any("the newest events were deleted" in p for p in _problems(trail))


def test_a_status_written_directly_is_named(trail):
    _one(trail, "UPDATE actions SET status = 'approved' WHERE id = 'act-1'")
    problems = _problems(trail)
    assert problems == ["action act-1 is approved but its audit events lead to proposed (changed outside opsloop)"]
    _one(trail, "UPDATE actions SET status = 'proposed' WHERE id = 'act-1'")
    _one(trail, "UPDATE incidents SET status = 'resolved'")
    assert _problems(trail)[0].endswith("its audit events lead to open (changed outside opsloop)")


def test_an_inserted_event_is_detected(trail):
    with trail() as s:
        top = s.execute(text("SELECT max(seq), max(hash) FROM audit_events")).one()
    _one(trail, "INSERT INTO audit_events (seq, at, actor, verb, subject, detail, prev_hash, hash) "
                "VALUES (:q, :at, 'mallory', 'action.approved', 'act-1', '{}', :p, :h)",
         q=top[0] + 1, at=T0, p=top[1], h="f" * 64)
    assert any(p.startswith(f"audit event {top[0] + 1}: content does not match") for p in _problems(trail))


def test_key_file_is_created_owner_only(tmp_path, monkeypatch):
    monkeypatch.delenv("OPSLOOP_AUDIT_KEY")
    store = open_store(f"sqlite:///{tmp_path / 'k.db'}")
    with store.begin() as s:
        repo.append_audit(s, "alice", "note.added", "x")
    key = tmp_path / "audit.key"
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    head = json.loads((tmp_path / "k.db.audit-head.json").read_text())
    assert head["seq"] == 1
    with store() as s:
        assert repo.verify_audit(s) == []
    monkeypatch.setenv("OPSLOOP_AUDIT_KEY", "another key")  # the same trail under another key: not ours
    with store() as s:
        assert "written under another key" in repo.verify_audit(s)[0]


def test_a_rolled_back_append_does_not_move_the_checkpoint(tmp_path):
    store = open_store(f"sqlite:///{tmp_path / 'r.db'}")
    with store.begin() as s:
        repo.append_audit(s, "alice", "note.added", "x")
    with pytest.raises(RuntimeError), store.begin() as s:
        repo.append_audit(s, "alice", "note.added", "y")
        raise RuntimeError("abort")
    with store() as s:
        assert repo.verify_audit(s) == []
        assert audit.read_head(audit.head_path(s)) == audit.head(s)
