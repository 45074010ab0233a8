"""Hybrid retrieval: modes, fusion, approximate index, and the prometheus-operator benchmark."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from opsloop.rag.documents import load_documents

from opsloop.packs import load_pack
from opsloop.rag.index import RunbookIndex

from ..conftest import ROOT, shared_dataset
from .conftest import HashEmbedder


def _bench():
    spec = importlib.util.spec_from_file_location("rag_bench", ROOT / "benchmarks" / "rag.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_modes_scores_and_document_ranking():
    index = RunbookIndex(load_documents(load_pack("checkout").runbooks_path), HashEmbedder())
    for mode in ("dense", "bm25", "hybrid"):
        hits = index.query("webhook deliveries rejected with 403 signature verification failed", k=5, mode=mode)
        assert len(hits) == 5 and [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        assert index.category_of(hits[0].document) == "webhook_auth"
    fused = index.query("webhook 403 signature", k=3)
    assert 0 < fused[0].score <= 2 / 61  # reciprocal rank fusion, k = 60
    docs = index.query_documents("checkout latency 504 timeouts", k=4)
    assert len({d.document for d in docs}) == 4
    assert index.query("   ", k=3) == [] and index.query("zzzz qqqq", k=3, mode="bm25") == []
    with pytest.raises(ValueError, match="unknown retrieval mode"):
        index.query("x", mode="sparse")


def test_approximate_index_above_the_threshold():
    chunks = load_documents(load_pack("checkout").runbooks_path)
    exact = RunbookIndex(chunks, HashEmbedder())
    approx = RunbookIndex(chunks, HashEmbedder(), hnsw_threshold=10)
    assert exact.kind == "flat" and approx.kind == "hnsw" and approx.dim == 64
    q = "customers charged but no order created"
    assert [h.chunk_id for h in approx.query(q, 3, "dense")] == [h.chunk_id for h in exact.query(q, 3, "dense")]


def test_hybrid_is_at_least_as_good_as_either_mode_on_the_bundled_runbooks(minilm):
    bench = _bench()
    chunks = load_documents(load_pack("checkout").runbooks_path)
    by_cat = bench._category_docs(chunks)
    oncall = json.loads((ROOT / "benchmarks" / "rag_queries" / "bundled_oncall.json").read_text())["queries"]
    queries = [{"query": q["query"], "answers": by_cat[q["category"]]} for q in oncall]
    index = RunbookIndex(chunks, minilm)
    res = {m: bench.evaluate(index, queries, m) for m in ("dense", "bm25", "hybrid")}
    for metric in ("recall@1", "recall@3", "mrr"):
        assert res["hybrid"][metric] >= max(res["dense"][metric], res["bm25"][metric]), (metric, res)


def test_prometheus_operator_symptom_benchmark(minilm):
    root = shared_dataset("runbooks", "prometheus-operator", "content", "runbooks")
    bench = _bench()
    queries = bench.prometheus_queries(Path(root))
    assert len(queries) >= 60 and len({q["answers"][0] for q in queries}) >= 50
    index = RunbookIndex(load_documents(root), minilm)
    res = {m: bench.evaluate(index, queries, m) for m in ("dense", "bm25", "hybrid")}
    assert res["hybrid"]["recall@3"] >= 0.85, res["hybrid"]["misses"]
    assert res["hybrid"]["recall@3"] >= max(res["dense"]["recall@3"], res["bm25"]["recall@3"])
    assert res["hybrid"]["mrr"] >= max(res["dense"]["mrr"], res["bm25"]["mrr"])


def test_primed_queries_rank_as_unprimed_ones_and_are_used_once():
    from opsloop.clustering.embedders import TfidfEmbedder
    from opsloop.packs import load_pack
    from opsloop.rag.documents import load_documents
    from opsloop.rag.index import RunbookIndex

    index = RunbookIndex(load_documents(load_pack("checkout").runbooks_path), TfidfEmbedder())
    texts = ["webhook 403 signature verification failed", "checkout is slow, p95 latency up"]
    plain = [index.query(t, k=3) for t in texts]
    index.prime(texts)
    assert [index.query(t, k=3) for t in texts] == plain
    assert index._queries == {}  # each primed vector serves one query; later queries embed as before
