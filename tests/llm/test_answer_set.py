"""The validator's accept and reject rates on a fixture answer set, served over Ollama's real wire
format.

A fake Ollama server (:mod:`tests.fake_ollama`) replays each answer of ``tests/fixtures/llm_answers.yaml``
for each incident of the demo's simulated checkout days (one rules-only cycle per session), rendered
from that incident's facts; :func:`opsloop.llm.narrate` asks for it through
:class:`~opsloop.llm.ollama.OllamaLLM` and the official client. Every ``good`` answer must be
validated (``generated_by`` ``ollama:llama3.2``); no hostile or degenerate answer may be: each falls
back to the rules with the reason its entry names, and the one that changes the category without
evidence is used with the rules' category kept.

The first tests check the fake itself: what it sends is what an Ollama server sends.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict

import httpx
import pytest

from opsloop.llm import narrate
from opsloop.llm.base import LLMUnavailable
from opsloop.llm.ollama import OllamaLLM
from opsloop.llm.prompts import build_prompt
from opsloop.packs import load_pack
from tests.fake_ollama import FakeOllama, Reply, applies, count_tokens, load_answers, render

CATEGORIES = load_pack("checkout").category_names
ENTRIES = load_answers()
MODEL = "llama3.2"


@pytest.fixture(scope="module")
def fake():
    with FakeOllama(models=(MODEL,)) as server:
        yield server


# ------------------------------------------------------------------------------ the wire format

CHAT_FIELDS = {"model", "created_at", "message", "done", "done_reason", "total_duration", "load_duration",
               "prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"}


def test_non_streaming_chat_is_ollamas_body(fake):
    fake.responder = lambda request: '{"summary": "ok"}'
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi there"}], "stream": False,
            "format": {"type": "object"}, "options": {"temperature": 0}}
    r = httpx.post(f"{fake.url}/api/chat", json=body)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    out = r.json()
    assert set(out) == CHAT_FIELDS
    assert out["model"] == MODEL and out["created_at"].endswith("Z") and out["done"] is True
    assert out["message"] == {"role": "assistant", "content": '{"summary": "ok"}'} and out["done_reason"] == "stop"
    assert out["eval_count"] == count_tokens('{"summary": "ok"}') and out["prompt_eval_count"] == 2
    assert all(isinstance(out[k], int) and out[k] > 0 for k in CHAT_FIELDS if k.endswith("duration"))
    assert out["total_duration"] >= out["eval_duration"]
    assert fake.requests[-1] == {"method": "POST", "path": "/api/chat", **body}


def test_streaming_chat_is_ndjson_and_the_client_reassembles_it(fake):
    import ollama

    content = '{"summary": "Webhook deliveries fail", "confidence": 0.8}'
    fake.responder = lambda request: content
    r = httpx.post(f"{fake.url}/api/chat", json={"model": MODEL, "messages": [{"role": "user", "content": "x"}]})
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert r.headers["content-type"] == "application/x-ndjson" and len(lines) > 2
    assert all(not x["done"] and set(x) == {"model", "created_at", "message", "done"} for x in lines[:-1])
    assert "".join(x["message"]["content"] for x in lines) == content
    assert lines[-1]["done"] is True and set(lines[-1]) == CHAT_FIELDS and lines[-1]["message"]["content"] == ""

    parts = list(ollama.Client(host=fake.url).chat(model=MODEL, messages=[{"role": "user", "content": "x"}],
                                                   stream=True))
    assert "".join(p.message.content for p in parts) == content
    assert parts[-1].done and parts[-1].eval_count == count_tokens(content)


def test_tags_version_and_unknown_models(fake):
    import ollama

    client = ollama.Client(host=fake.url)
    assert [m.model for m in client.list().models] == [f"{MODEL}:latest"]
    assert httpx.get(f"{fake.url}/api/version").json() == {"version": "0.6.3"}
    assert httpx.get(fake.url).text == "Ollama is running"
    r = httpx.post(f"{fake.url}/api/chat", json={"model": "mistral", "messages": [], "stream": False})
    assert r.status_code == 404 and r.json() == {"error": "model 'mistral' not found"}
    with pytest.raises(LLMUnavailable, match="model 'mistral' not available"):
        OllamaLLM(host=fake.url, model="mistral").generate("hi", {}, 5)
    assert client.chat(model=f"{MODEL}:latest", messages=[]).done  # a tag names the same model


def test_replies_can_be_errors_raw_bodies_or_paced():
    with FakeOllama(lambda request: Reply(status=503, error="server busy")) as server:
        r = httpx.post(f"{server.url}/api/chat", json={"model": MODEL, "stream": False})
        assert r.status_code == 503 and r.json() == {"error": "server busy"}
        server.responder = lambda request: Reply(body="<html>proxy</html>", content_type="text/html")
        assert httpx.post(f"{server.url}/api/chat", json={"model": MODEL}).text == "<html>proxy</html>"
    with FakeOllama(lambda request: "one two three four", tokens_per_s=200.0) as server:
        out = httpx.post(f"{server.url}/api/chat", json={"model": MODEL, "stream": False}).json()
        assert out["eval_count"] == 4 and out["eval_duration"] == 20_000_000  # 4 tokens at 200/s
        assert out["total_duration"] >= 20_000_000


# ------------------------------------------------------------------------------ the answer set


def test_the_answer_set_covers_the_issue():
    names = [e["name"] for e in ENTRIES]
    by_set = Counter(e["set"] for e in ENTRIES)
    assert len(names) == len(set(names))
    assert by_set["good"] >= 8 and by_set["hostile"] + by_set["degenerate"] >= 12
    assert all(e["expect"] == "accept" for e in ENTRIES if e["set"] == "good")
    assert all(e["expect"] != "accept" for e in ENTRIES if e["set"] != "good")
    assert all(e.get("reason") for e in ENTRIES if e["expect"] == "reject")
    assert any(e["expect"] == "accept_keep_category" for e in ENTRIES)


@pytest.fixture(scope="module")
def demo(demo_home):
    """The demo's incidents and their rule-based assessments (the session's rules-only demo cycle)."""
    from opsloop.config import Settings
    from opsloop.store import repository as repo
    from opsloop.store.session import open_store

    with open_store(Settings(home=demo_home, pack="checkout").resolved_database_url())() as s:
        cases = [(inc, inc.assessment) for inc in repo.list_incidents(s) if inc.assessment is not None]
    assert len({rule.category for _, rule in cases}) >= 5, [rule.category for _, rule in cases]
    return cases


@pytest.fixture(scope="module")
def outcomes(demo, fake):
    """Every entry replayed for every demo incident it applies to: one row per (entry, incident)."""
    llm = OllamaLLM(host=fake.url, model=MODEL, retries=0)
    rows: dict[str, list[dict]] = defaultdict(list)
    for entry in ENTRIES:
        for inc, rule in demo:
            if not applies(entry, rule.category):
                continue
            prompt = build_prompt(inc, rule, rule.citations, categories=CATEGORIES)
            try:
                reply = render(entry, prompt)
            except KeyError:  # the answer talks about evidence this incident does not have
                continue
            fake.responder = lambda request, reply=reply: reply
            n = len(fake.requests)
            out, meta = narrate(inc, rule, rule.citations, llm, None, categories=CATEGORIES, timeout=10)
            assert len(fake.requests) == n + 1 and fake.requests[-1]["format"] == prompt.schema
            rows[entry["name"]].append({"incident": inc.title, "rule_category": rule.category, "rule": rule, "out": out,
                                        "meta": meta, "validated": meta["fallback_reason"] is None})
    return rows


@pytest.mark.slow
def test_every_demo_incident_has_good_answers(demo, outcomes):
    good = {e["name"] for e in ENTRIES if e["set"] == "good"}
    for inc, rule in demo:
        replayed = [n for n in good for row in outcomes[n] if row["incident"] == inc.title]
        assert len(replayed) >= 1, (rule.category, replayed)


@pytest.mark.slow
@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_answer(entry, outcomes):
    rows = outcomes[entry["name"]]
    assert rows, f"{entry['name']} applies to no demo incident"
    for row in rows:
        out, meta, where = row["out"], row["meta"], f"{entry['name']} on {row['incident']!r}"
        if entry["expect"] == "reject":
            reason = meta["fallback_reason"]
            assert not row["validated"] and out.generated_by == "rules", f"{where}: validated"
            assert entry["reason"] in reason, f"{where}: fell back for another reason: {reason}"
            assert out.uncertainties[-1] == f"LLM narrative not used ({reason}); the rule-based narrative stands"
            continue
        assert row["validated"], f"{where}: rejected: {meta['fallback_reason']}"
        assert out.generated_by == f"ollama:{MODEL}" and out.narrative.value == "written"
        assert (out.evidence, out.risk) == (row["rule"].evidence, row["rule"].risk)  # the facts stay the rules'
        if entry["expect"] == "accept_keep_category":
            assert out.category == row["rule_category"] and out.rule_category is None, where
            assert any("without citing evidence the rules count for it" in u for u in out.uncertainties), where


@pytest.mark.slow
def test_accept_and_reject_rates(outcomes, capsys):
    """100% of the good answers are validated and none of the hostile or degenerate ones get through
    (an answer that only changes the category is used, but with the rules' category)."""
    through: dict[str, list[bool]] = defaultdict(list)
    validated: dict[str, list[bool]] = defaultdict(list)
    for entry in ENTRIES:
        for row in outcomes[entry["name"]]:
            changed = row["out"].category != row["rule_category"]
            validated[entry["set"]].append(row["validated"])
            through[entry["set"]].append(row["validated"] and (entry["expect"] != "accept_keep_category" or changed))
    rates = {s: round(sum(v) / len(v), 3) for s, v in through.items()}
    with capsys.disabled():
        print(f"\nanswers through the validator per set: {json.dumps(rates)}; validated share (category-only "
              f"changes count): {json.dumps({s: round(sum(v) / len(v), 3) for s, v in validated.items()})}; "
              f"answers: {json.dumps({s: len(v) for s, v in validated.items()})}")
    assert rates == {"good": 1.0, "hostile": 0.0, "degenerate": 0.0}
