"""LLM narrative per backend and answer set: validated share, rejection reasons, seconds, tokens/s.

Incidents: the demo's simulated checkout days (``--days`` 3, ``--seed`` 7: all six injected incident
kinds), one rules-only cycle (as ``benchmarks/scenario.py``; the cycle's MiniLM embedder needs
``HF_HUB_OFFLINE=1`` offline), the first ``--n`` of its incidents with their rule-based assessments
and retrieved passages. Each answer goes through :func:`opsloop.llm.narrate` (prompt, backend call,
validation, fallback), without a cache.

Backends (``--backends``):

* ``fake-ollama``: the answer sets of ``tests/fixtures/llm_answers.yaml`` (``good``, ``hostile``,
  ``degenerate``), each answer rendered from the incident's facts and replayed by the fake Ollama
  server of ``tests/fake_ollama.py`` over real HTTP, through :class:`~opsloop.llm.ollama.OllamaLLM`
  and the official client. Measures the validator: the share of each set it lets through and why it
  rejects the rest (``as_expected``: the share whose outcome, and reason, is the fixture's). Its
  seconds are the pipeline's own cost (prompt, HTTP, validation); its tokens/s are those the fake
  reports (``eval_count`` / ``eval_duration``): a replay, not a model, unless ``--fake-tokens-per-s``
  paces it.
* ``llamacpp``: the bundled SmolLM2-135M-Instruct (``opsloop.llm.get_llm("llamacpp")``, ``--threads``
  1) writing its own answers (set ``model``); tokens/s from llama.cpp's timings. A 135M model mostly
  falls back; the reasons say why.
* ``ollama``: a real Ollama server at ``--ollama-host`` (``--ollama-model``), set ``model``; tokens/s
  from the ``eval_count`` / ``eval_duration`` of its responses. Only with ``--ollama-host``.

Output: one JSON line per answer and one summary JSON line per (backend, set) on stdout —
``validated_share``, ``rejections`` (a count per reason, with incident details such as numbers and
quoted values removed), ``latency_p50_s`` / ``latency_p95_s`` per narrate() call, ``tokens_per_s``
(generated) and ``prompt_tokens_per_s`` — then a readable table on stderr.

    HF_HUB_OFFLINE=1 python benchmarks/llm.py                        # fake-ollama and llamacpp
    HF_HUB_OFFLINE=1 python benchmarks/llm.py --backends fake-ollama --n 6
    HF_HUB_OFFLINE=1 python benchmarks/llm.py --backends ollama --ollama-host http://127.0.0.1:11434

Figures (2026-12-03 06:50 UTC, shared 2-core machine at load ~2.7, validator of h-validate 761c1f9, the
6 demo incidents): fake-ollama good 11 of 12 validated (``good-latency-pool-saturation`` rejected: its
``2.6 s`` for 2595 ms and ``0.45 s`` for 453.2 ms are not read as conversions, because the metric-unit
rule does not match an evidence line behind its ``- E2:`` prefix), hostile 12 of 68 validated (all
category-only changes, stored with the rules' category; 68 of 68 as expected), degenerate 0 of 108;
p50 0.026 s, p95 0.07 s per narrate() call. llamacpp (SmolLM2-135M, 1 thread): 1 of 6 validated (a
fluent but invented summary; 3 summaries with markup, 2 answers truncated at 384 tokens), p50 32.7 s,
p95 41.0 s, 23.4 generated and 113 prompt tokens/s, 2,187 prompt tokens on average.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
import types
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opsloop.llm import get_llm, narrate
from opsloop.llm.ollama import OllamaLLM
from opsloop.llm.prompts import build_prompt
from opsloop.packs import load_pack
from tests.fake_ollama import FakeOllama, applies, demo_cases, load_answers, render

CATEGORIES = load_pack("checkout").category_names
BACKENDS = ("fake-ollama", "llamacpp", "ollama")


class TimedOllama(OllamaLLM):
    """:class:`OllamaLLM` that keeps the last chat response (its ``eval_count``, ``eval_duration``…)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_response: Any = None

    def generate(self, prompt: str, schema: dict[str, Any], timeout: float,
                 system: str | None = None) -> dict[str, Any]:
        self.last_response = None
        return super().generate(prompt, schema, timeout, system=system)

    def _attempt(self, ollama: Any, messages: list[dict[str, str]], schema: dict[str, Any],
                 options: dict[str, Any], timeout: float) -> dict[str, Any]:
        outer = self

        class Client(ollama.Client):
            def chat(self, *args: Any, **kwargs: Any) -> Any:
                response = super().chat(*args, **kwargs)
                outer.last_response = response
                return response

        shim = types.SimpleNamespace(Client=Client, ResponseError=ollama.ResponseError)
        return super()._attempt(shim, messages, schema, options, timeout)


def ollama_counters(llm: TimedOllama) -> dict[str, Any]:
    r = llm.last_response
    if r is None or not r.eval_duration:
        return {}
    return {"generated_tokens": r.eval_count, "generate_s": r.eval_duration / 1e9,
            "prompt_tokens": r.prompt_eval_count, "prompt_s": (r.prompt_eval_duration or 0) / 1e9}


def llamacpp_counters(llm: Any) -> dict[str, Any]:
    t = llm.last_timings or {}
    if not t.get("predicted_ms"):
        return {}
    return {"generated_tokens": t.get("predicted_n"), "generate_s": t["predicted_ms"] / 1000,
            "prompt_tokens": t.get("prompt_n", 0) + t.get("cache_n", 0), "prompt_s": t.get("prompt_ms", 0.0) / 1000}


_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PAREN = re.compile(r"\s*\([^()]*\)")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def reason_kind(reason: str) -> str:
    """A fallback reason without its incident-specific details (numbers, quoted values, passage ids,
    parenthesised detail), for counting: ``invalid: summary states number(s) not in the computed facts``."""
    head, _, rest = reason.partition(": ")
    if head == "invalid" and rest.startswith("schema: "):
        _, where, msg = (rest.split(": ", 2) + ["", ""])[:3]
        where = re.sub(r"/\d+", "/N", where)
        return f"invalid: schema: {where}: {_PAREN.sub('', _QUOTED.sub('…', msg)).strip()}"
    rest = rest.split(": ", 1)[0]
    rest = _NUMBER.sub("N", _PAREN.sub("", _QUOTED.sub("…", rest))).strip()
    return f"{head}: {rest}" if rest else head


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 4)


def row(backend: str, answer_set: str, answer: str, inc: Any, rule: Any, out: Any, meta: dict[str, Any],
        counters: dict[str, Any], entry: dict[str, Any] | None = None) -> dict[str, Any]:
    reason = meta["fallback_reason"]
    r: dict[str, Any] = {
        "backend": backend, "set": answer_set, "answer": answer, "incident": inc.title, "rule_category": rule.category,
        "category": out.category, "validated": reason is None, "reason": reason,
        "reason_kind": reason_kind(reason) if reason else None, "latency_s": meta["latency_s"], **counters,
    }
    if counters.get("generate_s"):
        r["tokens_per_s"] = round(counters["generated_tokens"] / counters["generate_s"], 1)
    if entry is not None:
        expect = entry["expect"]
        r["expect"] = expect
        if expect == "reject":
            r["as_expected"] = reason is not None and entry.get("reason", "") in reason
        else:
            r["as_expected"] = reason is None and (expect == "accept" or out.category == rule.category)
    if reason is None and entry is None:
        r["summary"] = out.summary[:160]
    return r


def run_fake(cases: list[tuple[Any, Any]], timeout: float, tokens_per_s: float | None) -> list[dict[str, Any]]:
    rows = []
    with FakeOllama(models=("llama3.2",), tokens_per_s=tokens_per_s) as fake:
        llm = TimedOllama(host=fake.url, model="llama3.2", retries=0)
        for entry in load_answers():
            for inc, rule in cases:
                if not applies(entry, rule.category):
                    continue
                prompt = build_prompt(inc, rule, rule.citations, categories=CATEGORIES)
                reply = render(entry, prompt)
                fake.responder = lambda request, reply=reply: reply
                out, meta = narrate(inc, rule, rule.citations, llm, None, categories=CATEGORIES, timeout=timeout)
                r = row("fake-ollama", entry["set"], entry["name"], inc, rule, out, meta, ollama_counters(llm), entry)
                rows.append(r)
                print(json.dumps(r), flush=True)
    return rows


def run_model(backend: str, llm: Any, counters: Any, cases: list[tuple[Any, Any]], timeout: float) -> list[dict]:
    rows = []
    for inc, rule in cases:
        out, meta = narrate(inc, rule, rule.citations, llm, None, categories=CATEGORIES, timeout=timeout)
        r = row(backend, "model", f"{llm.name}:{llm.model}", inc, rule, out, meta, counters(llm))
        rows.append(r)
        print(json.dumps(r), flush=True)
    return rows


def summarise(rows: list[dict[str, Any]], extra: dict[tuple[str, str], dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["backend"], r["set"])].append(r)
    out = []
    for (backend, answer_set), rs in groups.items():
        timed = [r for r in rs if r.get("generate_s")]
        gen_n, gen_s = sum(r["generated_tokens"] for r in timed), sum(r["generate_s"] for r in timed)
        pro_n, pro_s = sum(r["prompt_tokens"] or 0 for r in timed), sum(r["prompt_s"] for r in timed)
        s: dict[str, Any] = {
            "summary": True, "backend": backend, "set": answer_set, "answers": len(rs),
            "incidents": len({r["incident"] for r in rs}), "validated": sum(r["validated"] for r in rs),
            "validated_share": round(sum(r["validated"] for r in rs) / len(rs), 3),
            "rejections": dict(Counter(r["reason_kind"] for r in rs if r["reason_kind"]).most_common()),
            "latency_p50_s": pct([r["latency_s"] for r in rs], 50),
            "latency_p95_s": pct([r["latency_s"] for r in rs], 95),
            "tokens_per_s": round(gen_n / gen_s, 1) if gen_s else None,
            "prompt_tokens_per_s": round(pro_n / pro_s, 1) if pro_s else None,
            "generated_tokens_mean": round(gen_n / len(timed), 1) if timed else None,
            "prompt_tokens_mean": round(pro_n / len(timed), 1) if timed else None,
        }
        if any("as_expected" in r for r in rs):
            s["as_expected_share"] = round(sum(r["as_expected"] for r in rs) / len(rs), 3)
            s["not_as_expected"] = [f"{r['answer']} on {r['incident']!r}: {r['reason'] or 'validated'}"
                                    for r in rs if not r["as_expected"]]
        s.update(extra.get((backend, answer_set), {}))
        out.append(s)
    return out


def table(summaries: list[dict[str, Any]]) -> str:
    def f(x: Any, spec: str = "") -> str:
        return "-" if x is None else format(x, spec)

    head = f"{'backend':<12} {'set':<11} {'answers':>7} {'validated':>9} {'share':>6} {'as exp.':>7} " \
           f"{'p50 s':>8} {'p95 s':>8} {'tok/s':>8}"
    lines = [head, "-" * len(head)]
    for s in summaries:
        lines.append(f"{s['backend']:<12} {s['set']:<11} {s['answers']:>7} {s['validated']:>9} "
                     f"{s['validated_share']:>6.3f} {f(s.get('as_expected_share'), '.3f'):>7} "
                     f"{f(s['latency_p50_s'], '.3f'):>8} {f(s['latency_p95_s'], '.3f'):>8} "
                     f"{f(s['tokens_per_s'], '.1f'):>8}")
        for reason, n in s["rejections"].items():
            lines.append(f"{'':<12}   {n:>4} × {reason[:100]}")
        for miss in s.get("not_as_expected", []):
            lines.append(f"{'':<12}   NOT AS EXPECTED: {miss[:160]}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backends", nargs="+", choices=BACKENDS, default=None,
                    help="default: fake-ollama and llamacpp, plus ollama when --ollama-host is given")
    ap.add_argument("--n", type=int, default=None, help="the first N demo incidents (default: all)")
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per narrate() call")
    ap.add_argument("--days", type=int, default=3, help="simulated demo days")
    ap.add_argument("--seed", type=int, default=7, help="simulator seed")
    ap.add_argument("--threads", type=int, default=1, help="llama.cpp CPU threads")
    ap.add_argument("--max-tokens", type=int, default=384, help="answer budget (llamacpp, ollama)")
    ap.add_argument("--model-path", default=None, help="GGUF file for llamacpp (default: SmolLM2-135M-Instruct)")
    ap.add_argument("--ollama-host", default=None, help="a real Ollama server, e.g. http://127.0.0.1:11434")
    ap.add_argument("--ollama-model", default="llama3.2")
    ap.add_argument("--fake-tokens-per-s", type=float, default=None,
                    help="pace the fake's answers like a model generating this many tokens/s (default: no pacing)")
    args = ap.parse_args()
    backends = args.backends or ["fake-ollama", "llamacpp", *(["ollama"] if args.ollama_host else [])]
    if "ollama" in backends and not args.ollama_host:
        ap.error("--backends ollama needs --ollama-host")

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cases = demo_cases(Path(tmp), seed=args.seed, days=args.days)[: args.n]
    cycle_s = time.perf_counter() - t0
    print(json.dumps({"incidents": [inc.title for inc, _ in cases], "categories": [r.category for _, r in cases],
                      "days": args.days, "seed": args.seed, "cycle_s": round(cycle_s, 2)}), flush=True)

    rows: list[dict[str, Any]] = []
    extra: dict[tuple[str, str], dict[str, Any]] = {}
    for backend in backends:
        if backend == "fake-ollama":
            rows += run_fake(cases, args.timeout, args.fake_tokens_per_s)
            for s in ("good", "hostile", "degenerate"):
                extra[(backend, s)] = {"paced_tokens_per_s": args.fake_tokens_per_s}
        elif backend == "llamacpp":
            llm = get_llm("llamacpp", model_path=args.model_path, threads=args.threads, max_tokens=args.max_tokens)
            try:
                load_s = round(llm.load(), 2)
            except Exception as exc:  # noqa: BLE001 - reported, the other backends still run
                load_s = f"not loaded: {exc}"
            rows += run_model(backend, llm, llamacpp_counters, cases, args.timeout)
            extra[(backend, "model")] = {"model": llm.model, "threads": llm.threads, "model_load_s": load_s}
        else:
            llm = TimedOllama(host=args.ollama_host, model=args.ollama_model, max_tokens=args.max_tokens)
            rows += run_model(backend, llm, ollama_counters, cases, args.timeout)
            extra[(backend, "model")] = {"model": args.ollama_model, "host": args.ollama_host}

    summaries = summarise(rows, extra)
    machine = {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)}
    for s in summaries:
        print(json.dumps({**s, **machine}), flush=True)
    print(f"\n{len(cases)} demo incidents (seed {args.seed}, {args.days} days), cycle {cycle_s:.1f} s; "
          f"{machine['cpus']} CPUs, load {machine['load_avg_1m']}\n{table(summaries)}", file=sys.stderr)


if __name__ == "__main__":
    main()
