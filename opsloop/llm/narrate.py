"""Narrate an incident with an LLM, keeping the rule-based facts and falling back to the rules.

:func:`narrate` is the one entry point the pipeline calls. The LLM only writes narrative; whatever
it returns is validated (:mod:`opsloop.llm.validate`) and, if anything is wrong, the rule-based
assessment stands and the reason is recorded — in the returned metadata (``fallback_reason``) *and*
as the last line of the assessment's ``uncertainties`` (so the SRE reading it sees why the
narrative is the rules' one).

What a validated answer may change, and what it may not:

* ``summary``, ``root_cause``, ``assumptions`` (appended to the rules' ones), ``uncertainties``
  (appended to the rules' ones) and ``citations`` (its picks among the retrieved passages; the
  rules' citations if it picks none) come from the model;
* ``category`` stays the rules' unless the model picks another allowed one *and* cites evidence
  (``category_evidence``: ``E1``… ids) that the rules count for that category's hypothesis; then
  ``rule_category`` keeps the rules' and an uncertainty line says so (both shown). A suggestion
  without such evidence leaves the rules' category and is noted;
* ``hypotheses``: the model's ranking and ``why`` for the rules' hypotheses (their evidence for and
  against stays the rules'), plus at most one it adds with the evidence it cites;
* ``confidence`` is ``min(model, rules)`` (the rules' confidence in the stored category): the model
  can lower the confidence, never raise it, so it cannot push an action over the auto-execute
  threshold;
* ``evidence``, ``blast_radius`` and ``risk`` are always the rules' (computed facts);
* ``latency_s`` and ``fallback_reason`` record how it was written.

Answers are cached by ``f"{llm.name}:{llm.model}:{prompt.cache_key}"``, where the prompt's cache key
hashes the incident fingerprint, the computed facts, the retrieved passage ids and the prompt
version: an unchanged incident costs no new call. Validated answers and rejected ones (bad output,
failed validation) are cached; timeouts and unavailability are not (the next cycle retries).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

from opsloop.domain import Assessment, Citation, Hypothesis, Incident, Narrative
from opsloop.llm.base import LLM, LLMBadOutput, LLMError
from opsloop.llm.prompts import Prompt, build_prompt
from opsloop.llm.validate import validate


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(i for i in items if i))


def _meta(generated_by: str, latency: float, reason: str | None, hit: bool, key: str | None,
          rule: Assessment, **extra: Any) -> dict[str, Any]:
    return {"generated_by": generated_by, "latency_s": round(latency, 4), "fallback_reason": reason,
            "cache_hit": hit, "cache_key": key, "rule_category": rule.category,
            "rule_confidence": rule.confidence, **extra}


def _fallback(rule: Assessment, reason: str, latency: float) -> Assessment:
    note = f"LLM narrative not used ({reason}); the rule-based narrative stands"
    return rule.model_copy(update={"uncertainties": _dedupe([*rule.uncertainties, note]),
                                   "generated_by": "rules", "fallback_reason": reason,
                                   "narrative": Narrative.fell_back, "latency_s": round(latency, 4)})


def _cited(rule: Assessment, ids: list[str]) -> list[str]:
    """The evidence lines the ids ``E1``… name (unknown ids dropped; the schema allows none)."""
    out = []
    for ref in dict.fromkeys(ids):
        i = int(ref[1:]) - 1 if ref[:1] == "E" and ref[1:].isdigit() else -1
        if 0 <= i < len(rule.evidence):
            out.append(rule.evidence[i])
    return out


def _category(rule: Assessment, out: dict[str, Any]) -> tuple[str, str | None]:
    """(the category to store, the model's rejected suggestion or ``None``): the rules' category,
    unless the model picked another allowed one and cited evidence the rules count for it."""
    want = out["category"]
    if want == rule.category:
        return want, None
    backing = next((h for h in rule.hypotheses if h.category == want), None)
    cited = _cited(rule, out.get("category_evidence") or [])
    if backing is not None and any(line in backing.supporting for line in cited):
        return want, None
    return rule.category, want


def _confidence_of(rule: Assessment, category: str) -> float:
    """The rules' confidence in ``category``: the assessment's for its own, else that hypothesis'."""
    if category == rule.category:
        return rule.confidence
    return next((h.confidence for h in rule.hypotheses if h.category == category), rule.confidence)


def _hypotheses(rule: Assessment, out: dict[str, Any]) -> list[Hypothesis]:
    """The model's ranking of the rules' hypotheses, with its ``why``; the evidence for and against
    each stays the rules'. A hypothesis the model adds carries the evidence it cites and no more
    confidence than the rules' weakest one."""
    by_cat = {h.category: h for h in rule.hypotheses}
    floor = min((h.confidence for h in rule.hypotheses), default=0.0)
    ranked: list[Hypothesis] = []
    added = 0
    for h in out.get("hypotheses") or []:
        cat = h["category"]
        if cat in {x.category for x in ranked}:
            continue
        if cat in by_cat:
            ranked.append(by_cat[cat].model_copy(update={"explanation": h["why"].strip()}))
        elif not added:
            added += 1
            ranked.append(Hypothesis(category=cat, title=cat, confidence=round(min(floor, float(out["confidence"])), 2),
                                     explanation=h["why"].strip(), supporting=_cited(rule, h.get("evidence") or [])))
    ranked += [h for h in rule.hypotheses if h.category not in {x.category for x in ranked}]
    return ranked


def _narrated(rule: Assessment, out: dict[str, Any], passages: list[Citation], generated_by: str,
              latency: float) -> Assessment:
    by_id = {p.chunk_id: p for p in passages}
    picked = [by_id[i] for i in dict.fromkeys(out["citations"]) if i in by_id]
    uncertainties = [*rule.uncertainties, *out["uncertainties"]]
    category, refused = _category(rule, out)
    if category != rule.category:
        uncertainties.append(f"the rules categorise this as {rule.category} (confidence {rule.confidence:.2f}); "
                             f"{category} is the LLM's reading, on the evidence it cites")
    if refused:
        uncertainties.append(f"the LLM suggested {refused} without citing evidence the rules count for it; "
                             f"the rules' {rule.category} stands")
    hypotheses = _hypotheses(rule, out)
    if category != rule.category:
        hypotheses = sorted(hypotheses, key=lambda h: h.category != category)
    return rule.model_copy(update={
        "summary": out["summary"].strip(), "root_cause": out["root_cause"].strip(), "category": category,
        "rule_category": rule.category if category != rule.category else None,
        "confidence": round(min(float(out["confidence"]), _confidence_of(rule, category)), 2),
        "assumptions": _dedupe([*rule.assumptions, *out["assumptions"]]), "uncertainties": _dedupe(uncertainties),
        "citations": picked or list(rule.citations), "hypotheses": hypotheses,
        "generated_by": generated_by, "narrative": Narrative.written, "latency_s": round(latency, 4),
        "fallback_reason": None,
    })


def narrate(incident: Incident, rule_assessment: Assessment, passages: list[Citation], llm: LLM | None,
            cache: MutableMapping[str, Any] | None = None, *, categories: tuple[str, ...] | list[str],
            timeout: float) -> tuple[Assessment, dict[str, Any]]:
    """The assessment to store for ``incident`` and metadata about how it was written.

    ``rule_assessment``: from :func:`opsloop.pipeline.decide.assess`; ``passages``: the retrieved
    passages the model may cite (usually ``rule_assessment.citations``); ``llm``: a backend from
    :func:`opsloop.llm.factory.get_llm`, or ``None`` (rules only); ``cache``: any mutable mapping of
    JSON-able values (e.g. :class:`LRUCache`, :class:`opsloop.store.state.StoreLLMCache`), or ``None``; ``categories``:
    the categories the answer may name (e.g. the domain pack's); ``timeout``: seconds for the LLM
    call (``settings.llm.timeout``).

    Metadata: ``generated_by`` (``"rules"`` or ``"name:model"``), ``latency_s`` (time spent here),
    ``fallback_reason`` (``None`` unless an LLM answer was wanted and not used), ``cache_hit``,
    ``cache_key``, ``rule_category``, ``rule_confidence``. Never raises for LLM trouble.
    """
    t0 = time.perf_counter()
    if llm is None:
        return rule_assessment, _meta("rules", 0.0, None, False, None, rule_assessment)
    tag = f"{llm.name}:{llm.model}"
    prompt: Prompt = build_prompt(incident, rule_assessment, passages, categories=categories)
    key = f"{tag}:{prompt.cache_key}"

    entry = cache.get(key) if cache is not None else None
    hit = isinstance(entry, dict) and entry.get("status") in ("ok", "rejected")
    if hit:
        cached, reason = entry.get("output"), entry.get("reason")
        if entry["status"] == "ok":
            ok, why = validate(cached, prompt)
            if ok:
                latency = time.perf_counter() - t0
                return (_narrated(rule_assessment, cached, passages, tag, latency),
                        _meta(tag, latency, None, True, key, rule_assessment))
            reason = f"invalid: {why}"
        latency = time.perf_counter() - t0
        return (_fallback(rule_assessment, reason or "rejected earlier", latency),
                _meta("rules", latency, reason or "rejected earlier", True, key, rule_assessment))

    cacheable = True
    out: Any = None
    try:
        out = llm.generate(prompt.user, prompt.schema, timeout, system=prompt.system)
    except LLMError as exc:
        reason = str(exc)
        cacheable = isinstance(exc, LLMBadOutput)  # timeouts and outages are retried next cycle
    except Exception as exc:  # noqa: BLE001 - a backend bug must not break the cycle
        reason = f"error: {exc.__class__.__name__}: {exc}"
        cacheable = False
    else:
        ok, why = validate(out, prompt)
        reason = None if ok else f"invalid: {why}"
    latency = time.perf_counter() - t0

    if cache is not None and cacheable:
        cache[key] = {"status": "ok" if reason is None else "rejected", "output": out if reason is None else None,
                      "reason": reason, "generated_by": tag, "latency_s": round(latency, 4),
                      "at": datetime.now(UTC).isoformat(timespec="seconds")}
    if reason is None:
        return (_narrated(rule_assessment, out, passages, tag, latency),
                _meta(tag, latency, None, False, key, rule_assessment))
    return _fallback(rule_assessment, reason, latency), _meta("rules", latency, reason, False, key, rule_assessment)


class LRUCache(MutableMapping[str, Any]):
    """A thread-safe in-memory mapping that keeps the ``maxsize`` most recently used entries."""

    def __init__(self, maxsize: int = 1024) -> None:
        self.maxsize = maxsize
        self._data: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()

    def __getitem__(self, key: str) -> Any:
        with self._lock:
            value = self._data[key]
            self._data.move_to_end(key)
            return value

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.maxsize:
                self._data.popitem(last=False)

    def __delitem__(self, key: str) -> None:
        with self._lock:
            del self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._data))

    def __len__(self) -> int:
        return len(self._data)
