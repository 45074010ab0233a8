"""narrate(): validated answers replace the narrative only; every bad answer falls back to the rules
with its reason recorded; answers are cached by fingerprint and facts."""

from __future__ import annotations

import pytest

from opsloop.llm import LRUCache, get_llm, narrate
from opsloop.llm.base import LLM, LLMBadOutput, LLMTimeout, LLMUnavailable
from tests.llm import CATEGORIES, TIMEOUT, FakeLLM, make_incident, make_passages, make_rule, valid_answer


@pytest.fixture(scope="module")
def case():
    inc = make_incident()
    passages = make_passages()
    return inc, make_rule(inc, passages), passages


def ids(passages):
    return [p.chunk_id for p in passages]


def test_off_means_rules(case):
    inc, rule, passages = case
    assert get_llm("off") is None
    out, meta = narrate(inc, rule, passages, None, categories=CATEGORIES, timeout=TIMEOUT)
    assert out == rule
    assert meta["generated_by"] == "rules" and meta["fallback_reason"] is None and not meta["cache_hit"]


def test_validated_answer_keeps_facts_and_takes_narrative(case):
    inc, rule, passages = case
    llm = FakeLLM(valid_answer(ids(passages), citations=ids(passages)[1:3], confidence=0.99))
    assert isinstance(llm, LLM)
    out, meta = narrate(inc, rule, passages, llm, categories=CATEGORIES, timeout=TIMEOUT)
    assert meta == {**meta, "generated_by": "fake:fake-1", "fallback_reason": None, "cache_hit": False}
    assert out.generated_by == "fake:fake-1"
    assert out.summary.startswith("Merchant webhook deliveries") and "signing secret" in out.root_cause
    assert (out.evidence, out.blast_radius, out.risk) == (rule.evidence, rule.blast_radius, rule.risk)
    assert [c.chunk_id for c in out.citations] == ids(passages)[1:3]
    assert out.confidence == rule.confidence < 0.99  # the model may lower confidence, never raise it
    assert out.category == "webhook_auth"
    assert rule.assumptions[0] in out.assumptions and "the rotation happened shortly before 09:00 UTC" in out.assumptions
    call = llm.calls[0]
    assert call["system"] and "<<<FACTS" in call["prompt"] and call["schema"]["additionalProperties"] is False


def test_model_category_differing_from_rules_is_noted(case):
    inc, rule, passages = case
    llm = FakeLLM(valid_answer(ids(passages), category="api_auth", confidence=0.3))
    out, _ = narrate(inc, rule, passages, llm, categories=CATEGORIES, timeout=TIMEOUT)
    assert out.category == "api_auth" and out.confidence == 0.3 and out.rule_category == "webhook_auth"
    assert any("the rules categorise this as webhook_auth" in u for u in out.uncertainties)
    assert out.hypotheses[0].category == "api_auth"  # both readings shown, the model's first


def test_a_category_change_without_evidence_keeps_the_rules_category(case):
    inc, rule, passages = case
    for evidence in ([], ["E2"]):  # nothing cited; or a line the rules do not count for api_auth
        llm = FakeLLM(valid_answer(ids(passages), category="api_auth", category_evidence=evidence))
        out, meta = narrate(inc, rule, passages, llm, categories=CATEGORIES, timeout=TIMEOUT)
        assert meta["fallback_reason"] is None and out.narrative.value == "written"
        assert out.category == rule.category == "webhook_auth" and out.rule_category is None
        assert any("suggested api_auth without citing evidence" in u for u in out.uncertainties)


def test_the_model_ranks_the_rules_hypotheses_and_adds_at_most_one(case):
    inc, rule, passages = case
    ranking = [{"category": "error_spike", "why": "Errors on the webhook endpoint.", "evidence": ["E1"]},
               {"category": "event_loss", "why": "Orders may be lost downstream.", "evidence": ["E1"]},
               {"category": "latency", "why": "Slow deliveries could time out.", "evidence": []}]
    out, _ = narrate(inc, rule, passages, FakeLLM(valid_answer(ids(passages), hypotheses=ranking)),
                     categories=CATEGORIES, timeout=TIMEOUT)
    cats = [h.category for h in out.hypotheses]
    rules_cats = [h.category for h in rule.hypotheses]
    assert cats[0] == "error_spike" and out.hypotheses[0].explanation == "Errors on the webhook endpoint."
    assert len(set(cats) - set(rules_cats)) == 1 and "event_loss" in cats and "latency" not in cats
    added = next(h for h in out.hypotheses if h.category == "event_loss")
    assert added.confidence <= min(h.confidence for h in rule.hypotheses) and added.supporting == [rule.evidence[0]]
    by_cat = {h.category: h for h in rule.hypotheses}
    assert out.hypotheses[0].supporting == by_cat["error_spike"].supporting  # evidence stays the rules'


@pytest.mark.parametrize("answer, reason", [
    (valid_answer([], citations=["ch-made-up"]), "invalid: cites passage(s) that were not retrieved: ch-made-up"),
    (valid_answer([], category="database"), "invalid: category 'database' is not in the allowed set"),
    (valid_answer([], root_cause="A deploy broke 1,900 of 1530 calls."),
     "invalid: root_cause states number(s) not in the computed facts: '1,900'"),
    ("Sure! The incident is about webhooks.", "bad_output: answer is not JSON"),
    ('{"summary": "cut sho', "bad_output: answer is not JSON"),
    ("[1, 2]", "bad_output: answer is JSON but not an object: list"),
    (LLMTimeout("no answer within 5.0 s"), "timeout: no answer within 5.0 s"),
    (LLMUnavailable("cannot connect"), "unavailable: cannot connect"),
    (RuntimeError("backend bug"), "error: RuntimeError: backend bug"),
])
def test_bad_answers_fall_back_to_rules_with_reason(case, answer, reason):
    inc, rule, passages = case
    out, meta = narrate(inc, rule, passages, FakeLLM(answer), categories=CATEGORIES, timeout=TIMEOUT)
    assert meta["generated_by"] == out.generated_by == "rules"
    assert meta["fallback_reason"].startswith(reason), meta["fallback_reason"]
    # the rule assessment stands; the reason is stored with it and is also its last uncertainty
    assert out.fallback_reason == meta["fallback_reason"] and out.latency_s == meta["latency_s"] >= 0
    assert out.narrative.value == "fell_back"
    assert out.model_copy(update={"uncertainties": rule.uncertainties, "fallback_reason": None,
                                  "latency_s": None, "narrative": rule.narrative}) == rule
    assert out.uncertainties[-1].startswith(f"LLM narrative not used ({reason}")


def test_unchanged_incident_costs_no_new_call(case):
    inc, rule, passages = case
    cache = LRUCache()
    llm = FakeLLM(valid_answer(ids(passages)))
    first, m1 = narrate(inc, rule, passages, llm, cache, categories=CATEGORIES, timeout=TIMEOUT)
    second, m2 = narrate(inc, rule, passages, llm, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(llm.calls) == 1 and (m1["cache_hit"], m2["cache_hit"]) == (False, True)
    assert first.model_copy(update={"latency_s": None}) == second.model_copy(update={"latency_s": None})
    assert m1["cache_key"] == m2["cache_key"] and first.fallback_reason is None
    assert first.latency_s == m1["latency_s"] and second.latency_s == m2["latency_s"] < 0.1
    # new facts (more errors) -> new key -> new call
    grown = make_incident(n=5)
    narrate(grown, make_rule(grown, passages), passages, llm, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(llm.calls) == 2
    # another model -> its own cache entry
    narrate(inc, rule, passages, FakeLLM(valid_answer(ids(passages)), model="fake-2"), cache,
            categories=CATEGORIES, timeout=TIMEOUT)
    assert len(cache) == 3


def test_rejections_are_cached_but_outages_are_retried(case):
    inc, rule, passages = case
    cache: dict = {}
    bad = FakeLLM(valid_answer(ids(passages), category="nope"))
    narrate(inc, rule, passages, bad, cache, categories=CATEGORIES, timeout=TIMEOUT)
    out, meta = narrate(inc, rule, passages, bad, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(bad.calls) == 1 and meta["cache_hit"] and meta["fallback_reason"].startswith("invalid: category")
    assert out.generated_by == "rules"
    down = FakeLLM(LLMUnavailable("down"), model="other")
    narrate(inc, rule, passages, down, cache, categories=CATEGORIES, timeout=TIMEOUT)
    narrate(inc, rule, passages, down, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(down.calls) == 2
    truncated = FakeLLM(LLMBadOutput("answer truncated"), model="third")
    narrate(inc, rule, passages, truncated, cache, categories=CATEGORIES, timeout=TIMEOUT)
    narrate(inc, rule, passages, truncated, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(truncated.calls) == 1


def test_store_cache_survives_a_restart(case, sqlite_url):
    from opsloop.store.session import Store, make_engine, upgrade
    from opsloop.store.state import StoreLLMCache

    def fresh_store() -> Store:  # a new engine each time: what a second process sees
        engine = make_engine(sqlite_url)
        upgrade(engine)
        return Store(engine)

    inc, rule, passages = case
    llm = FakeLLM(valid_answer(ids(passages)))
    narrate(inc, rule, passages, llm, StoreLLMCache(fresh_store()), categories=CATEGORIES, timeout=TIMEOUT)
    cache = StoreLLMCache(fresh_store())
    out, meta = narrate(inc, rule, passages, llm, cache, categories=CATEGORIES, timeout=TIMEOUT)
    assert len(llm.calls) == 1 and meta["cache_hit"] and out.generated_by == "fake:fake-1"
    assert len(cache) == 1 and list(cache) == [meta["cache_key"]]


def test_get_llm_factory():
    from opsloop.llm.llamacpp import LlamaCppLLM
    from opsloop.llm.ollama import OllamaLLM

    o = get_llm("ollama", host="http://127.0.0.1:9", model="qwen2.5:0.5b", retries=None)
    assert isinstance(o, OllamaLLM) and (o.host, o.model, o.retries) == ("http://127.0.0.1:9", "qwen2.5:0.5b", 2)
    lc = get_llm("llamacpp", model="/models/x.gguf", threads=1)
    assert isinstance(lc, LlamaCppLLM) and lc.model == "x" and lc.threads == 1
    assert get_llm("llamacpp").model == "SmolLM2-135M-Instruct.Q4_1"
    with pytest.raises(ValueError, match="unknown LLM backend"):
        get_llm("gpt")
    with pytest.raises(TypeError, match="unknown LLM setting"):
        get_llm("ollama", hots="x")
    # one settings dict serves both backends
    both = {"host": "http://h:1", "model": "llama3.2", "threads": 1, "max_tokens": 99, "retries": None}
    assert get_llm("ollama", **both).max_tokens == 99
    assert get_llm("llamacpp", **both).model == "SmolLM2-135M-Instruct.Q4_1"


def test_llm_from_settings():
    from opsloop.config import LLMConfig
    from opsloop.llm import llm_from_settings

    assert llm_from_settings(LLMConfig(backend="off")) is None
    o = llm_from_settings(LLMConfig(backend="ollama", host="http://h:1", retries=0, max_tokens=99))
    assert (o.name, o.model, o.host, o.retries, o.max_tokens) == ("ollama", "llama3.2", "http://h:1", 0, 99)
    ll = llm_from_settings(LLMConfig(backend="llamacpp", model="/m/tiny.gguf", threads=1))
    assert (ll.name, ll.model, ll.threads) == ("llamacpp", "tiny", 1)


def test_every_backend_name_has_a_factory_entry():
    from typing import get_args

    from opsloop.llm.base import LLMKind
    from opsloop.llm.factory import _KEYS

    assert set(_KEYS) == set(get_args(LLMKind)) - {"off"}


def test_llm_base_and_prompts_import_no_config_backend_or_pipeline():
    import subprocess
    import sys

    code = ("import sys, opsloop.llm.base, opsloop.llm.prompts, opsloop.llm.validate; "
            "print([m for m in sys.modules if m.startswith(('opsloop.config', 'opsloop.pipeline', "
            "'opsloop.llm.ollama', 'opsloop.llm.llamacpp', 'ollama', 'xllamacpp'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_gguf_is_unavailable(case, tmp_path):
    inc, rule, passages = case
    llm = get_llm("llamacpp", model_path=str(tmp_path / "missing.gguf"))
    out, meta = narrate(inc, rule, passages, llm, categories=CATEGORIES, timeout=TIMEOUT)
    assert meta["fallback_reason"].startswith("unavailable: GGUF model file not found")
    assert out.generated_by == "rules"
