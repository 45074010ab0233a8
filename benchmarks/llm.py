"""Latency and validation rate of the LLM narrative with the embedded backend (llama.cpp, SmolLM2-135M).

Builds ``--n`` synthetic incidents (webhook 403s, checkout 401s, payments without orders, slow
checkout; numbers vary per incident), their rule-based assessments and runbook passages (the
bundled runbook of their category first), then narrates each one twice through one cache: the
first pass calls the model, the second must be answered from the cache. Prints one JSON line per
incident and a summary line: model load seconds, p50/p95 seconds per assessment, share validated
vs fallen back (with reasons), cache-hit latency, llama.cpp prompt/generation token rates.

    python benchmarks/llm.py --n 8 --threads 1 --timeout 60
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from opsloop.packs.checkout import names as C
from opsloop.domain import Anomaly, Citation, Incident, Kind, RiskReport, Severity, TicketCluster
from opsloop.evidence import ErrorRateEvidence, EventRatioEvidence, RobustZEvidence
from opsloop.llm import LRUCache, get_llm, narrate
from opsloop.packs import load_pack
from opsloop.pipeline.decide import assess
from opsloop.rag.documents import load_documents

CATEGORIES = load_pack("checkout").category_names

KINDS = ("webhook_auth", "api_auth", "event_loss", "latency")


def synthetic_incident(i: int) -> Incident:
    """The ``i``-th synthetic incident: one of :data:`KINDS`, numbers varying with ``i``."""
    cat = KINDS[i % len(KINDS)]
    t0 = datetime(2024, 5, 14, 8, 0, tzinfo=UTC) + timedelta(hours=6 * i)
    t1 = t0 + timedelta(minutes=45 + 15 * (i % 5))
    stage = ["dual_run", "headless", "legacy"][i % 3]
    merchants = [f"m-{10 + 3 * k + i}" for k in range(1 + i % 4)]
    common = {"start": t0, "end": t1, "peak": t0 + timedelta(minutes=10), "severity": Severity.high}
    if cat in ("webhook_auth", "api_auth"):
        endpoint = "POST /webhooks/orders" if cat == "webhook_auth" else "POST /v1/checkout/sessions"
        status = 403 if cat == "webhook_auth" else 401
        errors, requests = 150 + 37 * i, 900 + 110 * i
        a = Anomaly(kind=Kind.hard, **common, evidence=ErrorRateEvidence(
            metric="http_errors", labels={"endpoint": endpoint, "status": str(status)}, score=20.0 + i,
            observed=errors / requests, expected=0.003, endpoint=endpoint, status=status, errors=errors,
            requests=requests, examples=[f"{endpoint} status={status} merchant={merchants[0]}"]))
        kind, title = Kind.hard, f"HTTP {status} on {endpoint}"
    elif cat == "event_loss":
        up, down = 800 + 50 * i, 520 + 20 * i
        a = Anomaly(kind=Kind.soft, **common, evidence=EventRatioEvidence(
            metric=f"{C.EVENT_ORDER_CREATED}/{C.EVENT_PAYMENT_SUCCEEDED}", labels={"stage": stage}, score=12.0 + i,
            observed=down / up, expected=0.98, direction="down", upstream_event=C.EVENT_PAYMENT_SUCCEEDED,
            downstream_event=C.EVENT_ORDER_CREATED, upstream=up, downstream=down, missing=round(0.98 * up - down)))
        kind, title = Kind.soft, f"order.created missing for payment.succeeded on {stage}"
    else:
        a = Anomaly(kind=Kind.hard, **common, evidence=RobustZEvidence(
            metric=C.METRIC_P95_LATENCY, labels={"stage": stage}, score=9.0 + i, observed=2400.0 + 100 * i,
            expected=620.0))
        kind, title = Kind.hard, f"p95 checkout latency up on {stage}"
    cluster = TicketCluster(id=f"cl-{i}", size=5 + i % 7, top_terms=["checkout", "orders", "merchant"],
                            examples=[{"id": f"t-{i}", "subject": f"Problem with {title.lower()}",
                                       "body": "Customers complain since this morning."}],
                            label=f"Problem with {title.lower()}", first_seen=t0, last_seen=t1)
    return Incident(id=f"cand-bench{i}", fingerprint=f"bench{i}", kind=kind, first_seen=t0, last_seen=t1,
                    severity=Severity.high, title=title, anomalies=[a], clusters=[cluster] if i % 2 == 0 else [],
                    affected={"stage": [stage], "merchant_id": merchants})


def passages_for(category: str, chunks, k: int) -> list[Citation]:
    same = [c for c in chunks if c.meta.get("category") == category]
    other = [c for c in chunks if c.meta.get("category") != category]
    pick = same[: k - 1] + other[:1]
    return [Citation(chunk_id=c.id, document=c.document, section=c.section, score=1.0 - 0.1 * j, text=c.text)
            for j, c in enumerate(pick)]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 3)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 3)


def reason_kind(reason: str) -> str:
    """A fallback reason without its incident-specific details (for counting)."""
    rules = [("invalid: summary states", "invalid: summary states numbers not in the facts"),
             ("invalid: root_cause states", "invalid: root_cause states numbers not in the facts"),
             ("invalid: category", "invalid: category not allowed"),
             ("invalid: cites", "invalid: cites a passage not retrieved"),
             ("invalid: summary repeats", "invalid: summary repeats the instructions"),
             ("invalid: root_cause repeats", "invalid: root_cause repeats the instructions"),
             ("invalid: summary loops", "invalid: summary loops"),
             ("invalid: root_cause loops", "invalid: root_cause loops"),
             ("bad_output: answer truncated", "bad_output: truncated at max_tokens"),
             ("bad_output: answer is not JSON", "bad_output: not JSON")]
    for prefix, label in rules:
        if reason.startswith(prefix):
            return label
    if reason.startswith("invalid: schema: "):
        return "invalid: schema: " + reason.split(": ")[2]
    return reason.split(":", 1)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=8, help="synthetic incidents")
    ap.add_argument("--threads", type=int, default=None, help="llama.cpp CPU threads (default: half the CPUs, 1-2)")
    ap.add_argument("--max-tokens", type=int, default=384)
    ap.add_argument("--timeout", type=float, default=90.0, help="seconds per assessment")
    ap.add_argument("--passages", type=int, default=3)
    ap.add_argument("--model-path", default=None, help="GGUF file (default: SmolLM2-135M-Instruct)")
    args = ap.parse_args()

    llm = get_llm("llamacpp", model_path=args.model_path, threads=args.threads, max_tokens=args.max_tokens)
    load_s = llm.load()
    chunks = load_documents(load_pack("checkout").runbooks_path)
    cache = LRUCache()
    cases = []
    for i in range(args.n):
        inc = synthetic_incident(i)
        rule = assess(inc, None, RiskReport(lost_orders=40.0 + 7 * i, revenue_at_risk_window=3200.0 + 560 * i,
                                            revenue_at_risk_per_hour=1600.0 + 100 * i,
                                            revenue_at_risk_per_day=38400.0 + 2400 * i, interval=(2500.0, 4100.0),
                                            currency="USD"), load_pack("checkout"))
        passages = passages_for(rule.category, chunks, args.passages)
        cases.append((inc, rule.model_copy(update={"citations": passages}), passages))

    latencies, hits, reasons, rates = [], [], Counter(), []
    validated = 0
    for inc, rule, passages in cases:
        out, meta = narrate(inc, rule, passages, llm, cache, timeout=args.timeout, categories=CATEGORIES)
        timings = llm.last_timings or {}
        latencies.append(meta["latency_s"])
        validated += meta["fallback_reason"] is None
        if meta["fallback_reason"]:
            reasons[reason_kind(meta["fallback_reason"])] += 1
        if timings:
            rates.append(timings)
        print(json.dumps({"incident": inc.id, "rule_category": rule.category, "category": out.category,
                          "generated_by": out.generated_by, "latency_s": meta["latency_s"],
                          "fallback_reason": meta["fallback_reason"],
                          "prompt_tokens": (timings.get("prompt_n", 0) + timings.get("cache_n", 0)) or None,
                          "generated_tokens": timings.get("predicted_n"),
                          "summary": out.summary[:160]}), flush=True)
    for inc, rule, passages in cases:
        t0 = time.perf_counter()
        _, meta = narrate(inc, rule, passages, llm, cache, timeout=args.timeout, categories=CATEGORIES)
        if meta["cache_hit"]:
            hits.append(time.perf_counter() - t0)

    def rate(key_n: str, key_ms: str) -> float | None:
        n, ms = sum(t.get(key_n, 0) for t in rates), sum(t.get(key_ms, 0.0) for t in rates)
        return round(n / ms * 1000.0, 1) if ms else None

    print(json.dumps({
        "summary": True, "backend": f"{llm.name}:{llm.model}", "threads": llm.threads, "cpus": os.cpu_count(),
        "load_avg_1m": round(os.getloadavg()[0], 2), "n": args.n, "max_tokens": args.max_tokens,
        "timeout_s": args.timeout, "model_load_s": round(load_s, 2),
        "latency_p50_s": pct(latencies, 50), "latency_p95_s": pct(latencies, 95),
        "latency_mean_s": round(statistics.mean(latencies), 3) if latencies else None,
        "validated_share": round(validated / max(args.n, 1), 3),
        "fallback_share": round(1 - validated / max(args.n, 1), 3), "fallback_reasons": dict(reasons),
        "cache_hits": len(hits), "cache_hit_latency_p50_ms": round(statistics.median(hits) * 1000, 3) if hits else None,
        "cache_hit_latency_max_ms": round(max(hits) * 1000, 3) if hits else None,
        "prompt_tokens_mean": round(statistics.mean(t["prompt_n"] + t.get("cache_n", 0) for t in rates), 1)
        if rates else None,
        "generated_tokens_mean": round(statistics.mean(t["predicted_n"] for t in rates), 1) if rates else None,
        "prompt_tokens_per_s": rate("prompt_n", "prompt_ms"),
        "generated_tokens_per_s": rate("predicted_n", "predicted_ms"),
    }), flush=True)


if __name__ == "__main__":
    main()
