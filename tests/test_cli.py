"""The ``opsloop`` command as a user runs it: demo, review, approve/reject, audit, input errors."""

from __future__ import annotations

import json
import uuid

import pytest
from typer.testing import CliRunner

from opsloop.cli import app
from opsloop.store.session import open_store


def _token(role: str, name: str | None = None) -> str:
    """A token of ``role`` in the store the environment points at (a unique name unless given)."""
    from opsloop.config import Settings
    from opsloop.store import repository as repo

    with open_store(Settings().resolved_database_url()).begin() as s:
        return repo.create_token(s, name or f"{role}-{uuid.uuid4().hex[:8]}", role)


def _cli():
    """``run(*args)``: the ``opsloop`` command in-process (typer's CliRunner), exceptions raised."""
    runner = CliRunner()

    def _run(*args: str):
        return runner.invoke(app, list(args), catch_exceptions=False)

    return _run


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return tmp_path_factory.mktemp("home")


@pytest.fixture
def run(home, monkeypatch):
    monkeypatch.setenv("OPSLOOP_HOME", str(home))
    monkeypatch.delenv("OPSLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("OPSLOOP_TOKEN", _token("approver"))
    yield _cli()
    open_store.cache_clear()


def test_demo_json_finds_the_ground_truth(run):
    res = run("demo", "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    assert doc["match"]["recall"] == 1.0 and len(doc["match"]["false_incidents"]) <= 1
    assert doc["report"]["counts"]["incidents_new"] == len(doc["incidents"]) >= 6
    for inc in doc["incidents"]:
        assert {"id", "kind", "category", "first_seen", "last_seen", "citations", "actions"} <= set(inc)
    again = json.loads(run("demo", "--json").stdout)  # same window again: nothing new
    assert again["report"]["counts"]["incidents_new"] == 0 and again["report"]["counts"]["actions_new"] == 0


def test_review_approve_reject_and_audit(run):
    incidents = json.loads(run("incidents", "list", "--json").stdout)
    assert incidents and incidents[0]["severity"] in ("critical", "high")
    shown = run("incidents", "show", incidents[0]["id"])
    assert shown.exit_code == 0 and "Assessment" in shown.stdout and "Runbook passages" in shown.stdout
    assert json.loads(run("incidents", "show", incidents[0]["id"], "--json").stdout)["id"] == incidents[0]["id"]
    assert run("incidents", "show", "inc-missing").exit_code == 1

    proposed = json.loads(run("actions", "list", "--status", "proposed", "--json").stdout)
    assert len(proposed) >= 2 and all(a["requires_approval"] for a in proposed)
    first, second = proposed[0]["id"], proposed[1]["id"]
    ok = run("actions", "approve", first)
    assert ok.exit_code == 0 and "approved" in ok.stdout
    twice = run("actions", "approve", first)
    assert twice.exit_code == 1 and "is approved, not proposed" in twice.stderr
    assert run("actions", "reject", second, "--reason", " ").exit_code == 2
    rej = run("actions", "reject", second, "--reason", "merchant fixed it")
    assert rej.exit_code == 0 and "rejected" in rej.stdout
    statuses = {a["id"]: a["status"] for a in json.loads(run("actions", "list", "--json").stdout)}
    assert statuses[first] == "approved" and statuses[second] == "rejected"
    audit = run("audit", "verify")
    assert audit.exit_code == 0 and "intact" in audit.stdout


def test_cycle_reports_input_errors_clearly(run, tmp_path):
    res = run("cycle", "--kpis", str(tmp_path / "missing.csv"))
    assert res.exit_code == 2 and "missing.csv" in res.stderr
    bad = tmp_path / "kpis.txt"
    bad.write_text("ts,metric,value\n")
    res = run("cycle", "--kpis", str(bad))
    assert res.exit_code == 2 and "kpis.txt" in res.stderr
    assert run("cycle").exit_code == 2
    assert run("cycle", "--kpis", str(bad), "--start", "not-a-time").exit_code == 2


def test_cycle_on_a_small_kpi_file(run, tmp_path):
    import numpy as np
    import pandas as pd

    ts = pd.date_range("2026-11-01", periods=2000, freq="1min", tz="UTC")
    v = 50 + np.random.default_rng(0).normal(0, 1, len(ts))
    v[1500:1560] += 30
    f = tmp_path / "queue_depth.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(f, index=False)
    res = run("cycle", "--kpis", str(f), "--json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.stdout)
    burst = [i for i in doc["incidents"] if ts[1500] <= pd.Timestamp(i["first_seen"]) <= ts[1505]]
    assert len(burst) == 1 and burst[0]["title"] == "queue_depth rise" and burst[0]["category"] == "kpi_anomaly"
    assert len(doc["incidents"]) <= 4  # plus, at most, the burst's end and a rare new extreme of the noise


def test_cycle_shows_which_assessments_fell_back_from_the_llm_and_why(run, tmp_path, monkeypatch):
    """An unreachable Ollama: every narrative falls back to the rules, the cycle says so per incident,
    and the reason is stored with the assessment."""
    import socket

    import numpy as np
    import pandas as pd

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("OPSLOOP_LLM", "ollama")
    monkeypatch.setenv("OPSLOOP_OLLAMA_HOST", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OPSLOOP_LLM_RETRIES", "0")
    ts = pd.date_range("2026-10-01", periods=1500, freq="1min", tz="UTC")
    v = 20 + np.random.default_rng(1).normal(0, 1, len(ts))
    v[1200:1260] -= 15
    f = tmp_path / "worker_throughput.csv"
    pd.DataFrame({"timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"), "value": v}).to_csv(f, index=False)
    res = run("cycle", "--kpis", str(f))
    assert res.exit_code == 0, res.output
    assert "LLM narratives (ollama): 0 of" in res.stdout and "fell back to the rules" in res.stdout
    assert "not used: unavailable: cannot connect to Ollama" in res.stderr
    incidents = [i for i in json.loads(run("incidents", "list", "--json").stdout)
                 if i["title"].startswith("worker_throughput")]
    assert incidents
    shown = json.loads(run("incidents", "show", incidents[0]["id"], "--json").stdout)["assessment"]
    assert shown["generated_by"] == "rules" and shown["fallback_reason"].startswith("unavailable: cannot connect")
    assert shown["latency_s"] >= 0 and shown["narrative"] == "fell_back"
    again = run("narrate")  # the cycle drained the queue: nothing is pending
    assert again.exit_code == 0 and "narratives: 0 of 0" in again.stdout, again.output
    assert "LLM narrative not used: unavailable" in run("incidents", "show", incidents[0]["id"]).stdout


def test_rag_commands(run, tmp_path, monkeypatch):
    monkeypatch.setenv("OPSLOOP_PACK", "checkout")  # --defaults: the pack's 8 runbooks and the upload
    doc = tmp_path / "disk-full.md"
    doc.write_text("---\ntitle: Disk full\ncategory: kpi_anomaly\n---\n# Disk full\n\n## Symptoms\n\n"
                   "Writes fail with ENOSPC and the node reports no space left on device.\n")
    assert run("rag", "query", "anything").exit_code == 1  # empty knowledge base: a clear message
    first = json.loads(run("rag", "ingest", str(doc), "--defaults").stdout)
    assert first["added"] == 9 and first["embedded"] > 0
    again = json.loads(run("rag", "ingest", str(doc), "--defaults").stdout)
    assert again["unchanged"] == 9 and again["embedded"] == 0
    hits = json.loads(run("rag", "query", "no space left on the device, writes failing", "-k", "2", "--json").stdout)
    assert hits[0]["document"] == "disk-full.md" and len(hits) == 2
    assert json.loads(run("rag", "stats").stdout)["documents"] == 9
    assert run("rag", "ingest", str(tmp_path / "missing.md")).exit_code == 2
    assert run("rag", "clear").exit_code == 0
    assert json.loads(run("rag", "stats").stdout)["documents"] == 0
    monkeypatch.setenv("OPSLOOP_PACK", "generic")  # a pack with no runbooks: only the given file
    assert json.loads(run("rag", "ingest", str(doc), "--defaults").stdout)["added"] == 1


def test_a_bad_pack_is_one_line_naming_the_file(run, tmp_path):
    (tmp_path / "mypack").mkdir()
    (tmp_path / "mypack" / "pack.yaml").write_text("name: x\ncategories: [{name: a, title: A, root_cause: r, confidence: 0.5}]\nlabelz: []\n")
    kpis = tmp_path / "k.csv"
    kpis.write_text("timestamp,value\n2024-01-01 00:00:00,1\n")
    res = run("cycle", "--kpis", str(kpis), "--pack", str(tmp_path / "mypack"))
    assert res.exit_code == 2
    assert "pack.yaml: labelz: unknown key" in res.stderr and "Traceback" not in res.stderr


def test_maintenance_add_list_remove(run):
    res = run("maintenance", "add", "--start", "2026-11-05T01:00:00Z", "--end", "2026-11-05T01:45:00",
              "--label", "endpoint=GET /v1/orders/{id}", "--reason", "db upgrade", "--json")
    assert res.exit_code == 0, res.output
    window = json.loads(res.stdout)
    assert window["labels"] == {"endpoint": "GET /v1/orders/{id}"} and window["end"].startswith("2026-11-05T01:45")
    listed = json.loads(run("maintenance", "list", "--json").stdout)
    assert window["id"] in [w["id"] for w in listed]
    bad = run("maintenance", "add", "--start", "2026-11-05T02:00:00Z", "--end", "2026-11-05T01:00:00Z")
    assert bad.exit_code == 2 and "not after start" in bad.output
    assert run("maintenance", "add", "--start", "2026-11-05T01:00Z", "--end", "2026-11-05T02:00Z",
               "--label", "endpoint").exit_code == 2  # a selector is NAME=VALUE
    assert run("maintenance", "remove", window["id"]).exit_code == 0
    assert window["id"] not in [w["id"] for w in json.loads(run("maintenance", "list", "--json").stdout)]
    assert run("maintenance", "remove", window["id"]).exit_code == 1


def test_incidents_ack_resolve_reopen(fresh, tmp_path):
    from tests.runner.test_kill import _kpis

    run = fresh
    assert run("cycle", "--kpis", str(_kpis(tmp_path / "k.csv"))).exit_code == 0
    inc = json.loads(run("incidents", "list", "--json").stdout)[0]["id"]
    ack = run("incidents", "ack", inc)
    assert ack.exit_code == 0 and f"{inc} is now acknowledged" in ack.stdout
    bad = run("incidents", "reopen", inc)
    assert bad.exit_code == 1 and "is acknowledged; it cannot be reopened" in bad.stderr
    assert "resolved" in run("incidents", "resolve", inc, "--reason", "fixed").stdout
    assert [i["id"] for i in json.loads(run("incidents", "list", "--status", "resolved", "--json").stdout)] == [inc]
    assert "now open" in run("incidents", "reopen", inc).stdout
    assert run("incidents", "resolve", "inc-missing").exit_code == 1


@pytest.fixture
def fresh(tmp_path, monkeypatch):
    """A CLI runner on its own empty OPSLOOP_HOME (TF-IDF embedder, SQLite)."""
    monkeypatch.setenv("OPSLOOP_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPSLOOP_EMBEDDER", "tfidf")
    monkeypatch.delenv("OPSLOOP_DATABASE_URL", raising=False)
    monkeypatch.setenv("OPSLOOP_TOKEN", _token("approver", "alice"))
    yield _cli()
    open_store.cache_clear()


def _cycle_with_incidents(run, tmp_path, *extra: str) -> list[dict]:
    from tests.runner.test_kill import _kpis

    res = run("cycle", "--kpis", str(_kpis(tmp_path / "k.csv")), *extra)
    assert res.exit_code == 0, res.output
    incidents = json.loads(run("incidents", "list", "--json").stdout)
    assert len(incidents) >= 2
    return incidents


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def test_full_ids_in_a_narrow_terminal_and_unique_prefixes_accepted(fresh, tmp_path, monkeypatch):
    from opsloop import cli

    incidents = _cycle_with_incidents(fresh, tmp_path)
    monkeypatch.setattr(cli.out, "width", 120)
    table = fresh("incidents", "list").stdout
    assert all(i["id"] in table for i in incidents) and "…" not in table
    actions = json.loads(fresh("actions", "list", "--json").stdout)
    listed = fresh("actions", "list").stdout
    assert all(a["id"] in listed and a["incident_id"] in listed for a in actions)

    ambiguous = fresh("incidents", "show", "inc-")
    assert ambiguous.exit_code == 1 and len(ambiguous.stderr.strip().splitlines()) == 1
    assert "ambiguous" in ambiguous.stderr and all(i["id"] in ambiguous.stderr for i in incidents)
    target = incidents[0]["id"]
    prefix = next(target[:n] for n in range(5, len(target))
                  if sum(i["id"].startswith(target[:n]) for i in incidents) == 1)
    shown = fresh("incidents", "show", prefix)
    assert shown.exit_code == 0 and shown.stdout.startswith(target)
    assert f"{target} is now acknowledged" in fresh("incidents", "ack", prefix).stdout
    assert f"{target} is now resolved" in fresh("incidents", "resolve", prefix).stdout
    assert f"{target} is now open" in fresh("incidents", "reopen", prefix).stdout
    missing = fresh("incidents", "ack", "inc-zzz")
    assert missing.exit_code == 1 and "inc-zzz" in missing.stderr

    proposed = [a["id"] for a in actions if a["status"] == "proposed"]
    assert len(proposed) >= 2
    first, second = proposed[0], proposed[1]
    short = next(first[:n] for n in range(5, len(first))
                 if sum(a["id"].startswith(first[:n]) for a in actions) == 1)
    ok = fresh("actions", "approve", short)
    assert ok.exit_code == 0 and f"{first} " in ok.stdout and "approved" in ok.stdout
    rej = fresh("actions", "reject", second[:-1], "--reason", "not needed")
    assert rej.exit_code == 0 and f"{second} " in rej.stdout and "rejected" in rej.stdout
    assert fresh("actions", "execute", "act-").exit_code == 1  # ambiguous
    statuses = {a["id"]: a["status"] for a in json.loads(fresh("actions", "list", "--json").stdout)}
    assert statuses[first] == "approved" and statuses[second] == "rejected"


def test_show_prints_passage_text_assumptions_uncertainties_and_rationale(fresh, tmp_path):
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    (runbooks / "latency.md").write_text(
        "---\ntitle: Latency\ncategory: latency\n---\n# Latency rise\n\n## Mitigation\n\n"
        "Shed load from the slow service and compare its p99 with the dependency dashboard.\n")
    inc = _cycle_with_incidents(fresh, tmp_path, "--runbooks", str(runbooks))[0]
    full = json.loads(fresh("incidents", "show", inc["id"], "--json").stdout)
    a = full["assessment"]
    assert a["citations"] and a["assumptions"] and a["uncertainties"] and full["actions"]
    shown = fresh("incidents", "show", inc["id"]).stdout
    assert "Shed load from the slow service and compare its p99 with the dependency dashboard." in shown
    assert "Assumptions:" in shown and all(x in shown for x in a["assumptions"])
    assert "Uncertainties:" in shown and all(u in shown for u in a["uncertainties"])
    for x in full["actions"]:
        assert f"{x['id']} ({x['type']}): {x['rationale']}" in shown


def test_bad_enum_options_are_one_line_errors_naming_the_allowed_values(fresh):
    res = fresh("incidents", "list", "--status", "closed")
    assert res.exit_code == 2 and _error_lines(res.stderr) == [
        "error: --status: 'closed' is not one of open, acknowledged, mitigating, resolved"]
    res = fresh("actions", "list", "--status", "done")
    assert res.exit_code == 2 and len(_error_lines(res.stderr)) == 1
    assert "'done' is not one of proposed, approved, rejected" in res.stderr
    res = fresh("rag", "query", "x", "--mode", "fuzzy")
    assert res.exit_code == 2 and "--mode: 'fuzzy' is not one of hybrid, dense, bm25" in res.stderr
    res = fresh("tokens", "create", "--name", "ci", "--role", "root")
    assert res.exit_code == 2 and "--role: 'root' is not one of viewer" in res.stderr
    assert fresh("incidents", "list", "--status", "open").exit_code == 0


def test_rag_on_an_empty_knowledge_base_answers_without_loading_the_embedder(fresh, monkeypatch):
    monkeypatch.setenv("OPSLOOP_EMBEDDER", "minilm")
    stats = json.loads(fresh("rag", "stats").stdout)
    assert stats == {"documents": 0, "chunks": 0, "index": "flat", "dim": 0, "embedder": "minilm"}
    res = fresh("rag", "query", "disk full")
    assert res.exit_code == 1 and "the knowledge base is empty" in res.stderr
    assert json.loads(fresh("rag", "stats").stdout)["dim"] == 0  # still not loaded after the query


def test_progress_is_one_plain_line_per_stage_when_piped(fresh, tmp_path):
    from tests.runner.test_kill import _kpis

    res = fresh("cycle", "--kpis", str(_kpis(tmp_path / "k.csv")))
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert lines[0] == "… observe: loading signals"
    assert {"… detect", "… correlate", "… assess", "… act"} <= set(lines)
    assert "\x1b" not in res.stderr and "\r" not in res.stderr  # no spinner redraws


def test_bad_option_setting_or_database_is_one_line_not_a_traceback(fresh, monkeypatch):
    res = fresh("demo", "--days", "2")
    assert res.exit_code == 2 and len(_error_lines(res.stderr)) == 1
    assert "days must be an integer >= 3" in res.stderr and "Traceback" not in res.stderr

    monkeypatch.setenv("OPSLOOP_LLM_TIMEOUT", "abc")
    res = fresh("incidents", "list")
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "OPSLOOP_LLM_TIMEOUT='abc'" in res.stderr
    monkeypatch.delenv("OPSLOOP_LLM_TIMEOUT")

    monkeypatch.setenv("OPSLOOP_DATABASE_URL", "postgresql+psycopg2://ops:s3cret@127.0.0.1:1/x")
    for args in (("incidents", "list"), ("actions", "approve", "act-1"), ("rag", "stats")):
        res = fresh(*args)
        assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1, res.stderr
        assert "cannot open the database postgresql+psycopg2://ops:***@127.0.0.1:1/x" in res.stderr
        assert "s3cret" not in res.stderr


def test_mutating_commands_act_as_a_tokens_owner(fresh, monkeypatch, tmp_path):
    run = fresh
    proposed = [a for a in _cycle_with_actions(run, tmp_path)]
    first = proposed[0]
    monkeypatch.delenv("OPSLOOP_TOKEN")
    none = run("actions", "approve", first)
    assert none.exit_code == 2 and "--token or set OPSLOOP_TOKEN" in none.stderr
    assert "--actor" not in run("actions", "approve", "--help").stdout
    viewer = run("actions", "approve", first, "--token", _token("viewer", "vic"))
    assert viewer.exit_code == 1 and "needs role approver; token 'vic' has viewer" in viewer.stderr
    assert run("actions", "approve", first, "--token", "opl_forged").exit_code == 2
    ok = run("actions", "approve", first, "--token", _token("approver", "bob"))
    assert ok.exit_code == 0
    audit = [e for e in _audit(first) if e[1] == "action.approved"]
    assert audit == [("bob", "action.approved")]


def test_tokens_create_list_revoke_rotate_and_expiry(fresh, monkeypatch):
    run = fresh
    monkeypatch.delenv("OPSLOOP_TOKEN")
    first = run("tokens", "create", "--name", "root", "--role", "admin")  # bootstrap: no admin yet
    assert first.exit_code == 0, first.output
    admin = first.stdout.strip()
    refused = run("tokens", "create", "--name", "carol", "--role", "viewer")
    assert refused.exit_code == 2 and "OPSLOOP_TOKEN" in refused.stderr  # now it takes an admin's token
    monkeypatch.setenv("OPSLOOP_TOKEN", admin)
    for reserved in ("policy", "opsloop", "System"):
        res = run("tokens", "create", "--name", reserved, "--role", "approver")
        assert res.exit_code == 2 and "reserved" in res.stderr
    carol = run("tokens", "create", "--name", "carol", "--role", "approver", "--expires-in", "1h").stdout.strip()
    listed = {t["name"]: t for t in json.loads(run("tokens", "list", "--json").stdout)}
    assert listed["carol"]["state"] == "active" and listed["carol"]["expires_at"] and "token_hash" not in listed["carol"]
    assert carol not in run("tokens", "list").stdout
    rotated = run("tokens", "rotate", "carol").stdout.strip()
    assert rotated.startswith("opl_") and rotated != carol
    assert _identity(carol) is None and _identity(rotated) == ("carol", "approver")
    assert run("tokens", "revoke", "carol").exit_code == 0
    assert _identity(rotated) is None
    again = run("tokens", "revoke", "carol")
    assert again.exit_code == 1 and "revoked already" in again.stderr
    states = lambda: {t["name"]: t["state"] for t in json.loads(run("tokens", "list", "--json").stdout)}
    assert states()["carol"] == "revoked"
    from datetime import timedelta

    from opsloop.config import Settings
    from opsloop.store import repository as repo

    with open_store(Settings().resolved_database_url()).begin() as s:
        short = repo.create_token(s, "dora", "viewer", repo.now() + timedelta(seconds=1))
    assert _identity(short) == ("dora", "viewer")
    import time

    time.sleep(1.1)
    assert _identity(short) is None
    assert states()["dora"] == "expired" and states()["root"] == "active"
    verbs = {v for _a, v in _audit("carol")}
    assert {"token.created", "token.rotated", "token.revoked"} <= verbs


def _identity(token: str):
    from opsloop.config import Settings
    from opsloop.store import repository as repo

    with open_store(Settings().resolved_database_url())() as s:
        return repo.token_identity(s, token)


def _audit(subject: str) -> list[tuple[str, str]]:
    from opsloop.config import Settings
    from opsloop.store import repository as repo

    with open_store(Settings().resolved_database_url())() as s:
        return [(e.actor, e.verb) for e in repo.list_audit(s, 10_000) if e.subject == subject]


def _cycle_with_actions(run, tmp_path) -> list[str]:
    incidents = _cycle_with_incidents(run, tmp_path)
    assert incidents
    return [a["id"] for a in json.loads(run("actions", "list", "--status", "proposed", "--json").stdout)]
