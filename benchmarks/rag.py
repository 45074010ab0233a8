"""Retrieval quality (recall@1, recall@3, MRR) and query latency of dense, BM25 and hybrid search.

Corpora and query sets (a query is answered when the right *document* is among the top k; documents
rank by their best chunk):

* ``bundled`` — the runbooks in ``opsloop/data/runbooks`` (answer: the runbook whose front-matter
  ``category`` is the incident's):
  - ``simulator_truth``: the ground-truth description of every incident injected by
    ``simulate(seed, days)`` for ``--truth-seeds``;
  - ``cycle_build_query``: incidents of real cycles (``run_cycle`` on ``--cycle-seeds``) that match
    an injected incident, queried as the pipeline queries (``decide.build_query``);
  - ``oncall``: hand-written on-call phrasings (``benchmarks/rag_queries/bundled_oncall.json``).
* ``prometheus-operator`` — the 108 runbooks in
  ``../shared/datasets/runbooks/prometheus-operator/content/runbooks`` (answer: the runbook named
  after the alert), queried with symptom phrasings that avoid the alert name
  (``benchmarks/rag_queries/prometheus_operator.json``).

Latency: p50/p95 wall time of one ``RunbookIndex.query`` (query embedding included, with a fresh
embedder so nothing is memoised) at 100, 1,000 and 10,000 chunks, exact flat index, plus HNSW at the
largest size. Chunks beyond the real ones (~520) are synthesised by perturbing real ones: words
dropped and swapped for random corpus words, and the real chunk's embedding plus Gaussian noise
(cosine ≈ 0.9 to the original) instead of embedding 10,000 texts with MiniLM on two cores.

Prints one JSON line per (corpus, query set, mode), per latency point, and a summary line.

    python benchmarks/rag.py                       # everything (~5 min on 2 cores)
    python benchmarks/rag.py --cycle-seeds         # skip the pipeline cycles
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from opsloop.clustering.embedders import MiniLMEmbedder, get_embedder
from opsloop.packs import load_pack
from opsloop.rag.documents import Chunk, load_documents
from opsloop.rag.index import MODES, RunbookIndex

HERE = Path(__file__).resolve().parent
QUERIES = HERE / "rag_queries"
PROM_ROOT = HERE.parent.parent / "shared" / "datasets" / "runbooks" / "prometheus-operator" / "content" / "runbooks"


def evaluate(index: RunbookIndex, queries: list[dict], mode: str, depth: int = 20) -> dict:
    """recall@1, recall@3 and MRR (first relevant document within ``depth``) of ``queries``
    (``{"query", "answers": [document, ...]}``)."""
    if mode != "bm25":  # one batched call; the embedder memoises, so each query below is a cache hit
        index.embedder.embed([q["query"] for q in queries])
    r1 = r3 = rr = 0.0
    misses = []
    for q in queries:
        docs = [c.document for c in index.query_documents(q["query"], k=depth, mode=mode)]
        rank = next((i + 1 for i, d in enumerate(docs) if d in q["answers"]), None)
        r1 += rank == 1
        r3 += rank is not None and rank <= 3
        rr += 1.0 / rank if rank else 0.0
        if rank is None or rank > 3:
            misses.append({"query": q["query"][:90], "answer": q["answers"][0], "rank": rank, "top": docs[:3]})
    n = max(len(queries), 1)
    return {"n": len(queries), "recall@1": round(r1 / n, 3), "recall@3": round(r3 / n, 3), "mrr": round(rr / n, 3),
            "misses": misses}


def prometheus_queries(root: Path = PROM_ROOT) -> list[dict]:
    data = json.loads((QUERIES / "prometheus_operator.json").read_text())
    return [{"query": q["query"], "answers": [q["answer"]]} for q in data["queries"]]


def _category_docs(chunks: list[Chunk]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for c in chunks:
        if "category" in c.meta and c.document not in out.get(c.meta["category"], []):
            out.setdefault(c.meta["category"], []).append(c.document)
    return out


def bundled_queries(chunks: list[Chunk], truth_seeds: list[int], cycle_seeds: list[int], days: int) -> dict[str, list[dict]]:
    from opsloop.packs.checkout.simulator import simulate

    by_cat = _category_docs(chunks)
    sets: dict[str, list[dict]] = {}
    oncall = json.loads((QUERIES / "bundled_oncall.json").read_text())["queries"]
    sets["oncall"] = [{"query": q["query"], "answers": by_cat[q["category"]]} for q in oncall]
    sets["simulator_truth"] = [
        {"query": gt["description"], "answers": by_cat[gt["category"]]}
        for seed in truth_seeds for gt in simulate(seed=seed, days=days).ground_truth
    ]
    if cycle_seeds:
        sets["cycle_build_query"] = [{"query": q, "answers": by_cat[c]} for q, c in _cycle_queries(cycle_seeds, days)]
    return sets


def _cycle_queries(seeds: list[int], days: int) -> list[tuple[str, str]]:
    """(query, true category) for every cycle incident that matches an injected incident."""
    from opsloop.config import Settings
    from opsloop.packs.checkout.simulator import simulate, write_scenario
    from opsloop.pipeline.cycle import run_cycle
    from opsloop.pipeline.decide import build_query
    from opsloop.pipeline.evaluate import match_ground_truth
    from opsloop.pipeline.observe import observe
    from opsloop.store.session import open_store

    built = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            work = Path(tmp) / f"seed{seed}"
            paths = write_scenario(simulate(seed=seed, days=days), work)
            truth = {gt["id"]: gt for gt in json.loads(paths["ground_truth"].read_text())}
            signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
            result = run_cycle(signals, open_store(f"sqlite:///{work / 'opsloop.db'}"), Settings(home=work, pack="checkout"))
            incidents = {i.id: i for i in result.incidents}
            for found in match_ground_truth(result.incidents, list(truth.values()))["found"]:
                category = truth[found["truth"]]["category"]
                for inc_id in found["incidents"]:
                    built.append((build_query(incidents[inc_id]), category))
    return built


def _perturb(chunks: list[Chunk], vectors: np.ndarray, n: int, seed: int = 0) -> tuple[list[Chunk], np.ndarray]:
    """``n`` chunks: the real ones, then perturbed copies (see the module docstring)."""
    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    vocab = sorted({w for c in chunks for w in c.text.split()})
    out, vecs = [], []
    for i in range(n):
        base = i % len(chunks)
        c = chunks[base]
        if i < len(chunks):
            out.append(c)
            vecs.append(vectors[base])
            continue
        words = [w for w in c.text.split() if rng.random() > 0.15]
        words = [rng.choice(vocab) if rng.random() < 0.1 else w for w in words]
        out.append(Chunk(id=f"syn-{i}", document=f"synthetic/{c.document}#{i // len(chunks)}", section=c.section,
                         text=" ".join(words), meta=c.meta))
        v = vectors[base] + nrng.normal(0, 0.5 / np.sqrt(vectors.shape[1]), vectors.shape[1])
        vecs.append(v / np.linalg.norm(v))
    return out, np.asarray(vecs, dtype=np.float32)


def latency(chunks: list[Chunk], vectors: np.ndarray, queries: list[str], sizes: list[int],
            hnsw_at: int | None) -> list[dict]:
    rows = []
    runs = [(n, None) for n in sizes] + ([(hnsw_at, 0)] if hnsw_at else [])
    for n, threshold in runs:
        syn, vecs = _perturb(chunks, vectors, n)
        t0 = time.perf_counter()
        kw = {"hnsw_threshold": threshold} if threshold is not None else {}
        index = RunbookIndex(syn, MiniLMEmbedder(), vectors=vecs, **kw)
        build = time.perf_counter() - t0
        for mode in MODES:
            index.embedder = MiniLMEmbedder()  # fresh in-process memo: every query is embedded
            index.query("warm up the model", k=3, mode=mode)
            times = []
            for q in queries:
                t = time.perf_counter()
                index.query(q, k=3, mode=mode)
                times.append((time.perf_counter() - t) * 1000)
            rows.append({"latency": True, "chunks": n, "index": index.kind, "mode": mode, "queries": len(times),
                         "p50_ms": round(float(np.percentile(times, 50)), 1),
                         "p95_ms": round(float(np.percentile(times, 95)), 1), "build_s": round(build, 2)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--truth-seeds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6, 7, 8])
    ap.add_argument("--cycle-seeds", type=int, nargs="*", default=[1, 2, 3])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--sizes", type=int, nargs="*", default=[100, 1_000, 10_000])
    ap.add_argument("--hnsw-at", type=int, default=10_000, help="also time an HNSW index of this size (0: no)")
    ap.add_argument("--misses", action="store_true", help="print the queries hybrid misses at 3")
    args = ap.parse_args()
    embedder, note = get_embedder("minilm")
    if note:
        print(json.dumps({"degraded": note}))
    summary = {}

    def report(corpus: str, name: str, index: RunbookIndex, queries: list[dict]) -> None:
        for mode in MODES:
            res = evaluate(index, queries, mode)
            misses = res.pop("misses")
            print(json.dumps({"corpus": corpus, "queries": name, "mode": mode, **res}), flush=True)
            summary[f"{corpus}/{name}/{mode}/recall@3"] = res["recall@3"]
            if args.misses and mode == "hybrid":
                for m in misses:
                    print(json.dumps({"miss": m}))

    bundled = load_documents(load_pack("checkout").runbooks_path)
    b_index = RunbookIndex(bundled, embedder)
    sets = bundled_queries(bundled, args.truth_seeds, args.cycle_seeds, args.days)
    for name, queries in sets.items():
        report("bundled", name, b_index, queries)
    report("bundled", "all", b_index, [q for qs in sets.values() for q in qs])

    if PROM_ROOT.exists():
        prom = load_documents(PROM_ROOT)
        t0 = time.perf_counter()
        p_index = RunbookIndex(prom, embedder)
        print(json.dumps({"corpus": "prometheus-operator", "documents": len({c.document for c in prom}),
                          "chunks": len(prom), "index_build_s": round(time.perf_counter() - t0, 2)}), flush=True)
        pq = prometheus_queries()
        print(json.dumps({"corpus": "prometheus-operator", "queries": "symptom", "n": len(pq),
                          "runbooks_covered": len({q["answers"][0] for q in pq})}))
        report("prometheus-operator", "symptom", p_index, pq)
        real = bundled + prom
        vectors = embedder.embed([c.embed_text for c in real])
        for row in latency(real, vectors, [q["query"] for q in pq], args.sizes, args.hnsw_at or None):
            print(json.dumps(row), flush=True)
            summary[f"latency/{row['chunks']}/{row['index']}/{row['mode']}/p50_ms"] = row["p50_ms"]
    else:
        print(json.dumps({"skipped": f"prometheus-operator runbooks not found at {PROM_ROOT}"}))
    print(json.dumps({"summary": summary}))


if __name__ == "__main__":
    main()
