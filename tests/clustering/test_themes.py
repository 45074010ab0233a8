"""Stable theme ids across cycles (centroid matching) and the embedding cache."""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.clustering.dbscan import normalise
from opsloop.clustering.embedders import TfidfEmbedder
from opsloop.clustering.themes import (
    CachedEmbedder,
    InMemoryEmbeddingCache,
    KnownTheme,
    assign_ids,
    match_themes,
    update_themes,
)
from opsloop.clustering.tickets import cluster


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _themes(seed: int = 0, k: int = 4, dim: int = 64):
    rng = np.random.default_rng(seed)
    cents = normalise(rng.standard_normal((k, dim)))
    return [KnownTheme(f"th-{i}", cents[i], size=10, label=f"theme {i}") for i in range(k)], cents, rng


def test_shifted_centroids_keep_their_ids_and_new_themes_get_none():
    known, cents, rng = _themes()
    shifted = normalise(cents + 0.25 * rng.standard_normal(cents.shape) / np.sqrt(cents.shape[1]))
    assert (np.einsum("ij,ij->i", shifted, cents) > 0.9).all()
    fresh = normalise(rng.standard_normal((1, cents.shape[1])))
    new = np.vstack([shifted[2], fresh[0], shifted[0], shifted[3]])  # order shuffled, theme 1 gone
    assert match_themes(known, new, min_similarity=0.8) == ["th-2", None, "th-0", "th-3"]
    assert assign_ids(known, ["cl-a", "cl-b", "cl-c", "cl-d"], new) == ["th-2", "cl-b", "th-0", "th-3"]


def test_matching_is_one_to_one_and_respects_the_floor():
    known, cents, rng = _themes(seed=1, k=2)
    near = _unit(cents[0] + 0.05 * rng.standard_normal(cents.shape[1]) / np.sqrt(cents.shape[1]))
    nearer = _unit(cents[0] + 0.01 * rng.standard_normal(cents.shape[1]) / np.sqrt(cents.shape[1]))
    got = match_themes(known, np.vstack([near, nearer]))
    assert got.count("th-0") == 1 and got[1] == "th-0"  # the closer one wins theme 0; no double use
    assert got[0] is None
    assert match_themes(known, cents[:1] * 3.0) == ["th-0"]  # scale does not matter
    assert match_themes([], cents) == [None, None]
    assert match_themes(known, np.zeros((0, cents.shape[1]))) == []


def test_update_moves_centroids_and_adds_new_themes():
    known, cents, rng = _themes(seed=2, k=2)
    moved = _unit(cents[0] + 0.3 * rng.standard_normal(cents.shape[1]) / np.sqrt(cents.shape[1]))
    other = _unit(rng.standard_normal(cents.shape[1]))
    out = {t.id: t for t in update_themes(known, ["th-0", "cl-new"], np.vstack([moved, other]), [10, 3],
                                          ["checkout failing", "new"])}
    assert set(out) == {"th-0", "th-1", "cl-new"}
    assert out["th-0"].size == 20 and out["th-0"].label == "checkout failing"
    c = out["th-0"].centroid
    assert abs(np.linalg.norm(c) - 1) < 1e-5 and c @ cents[0] < 0.9999 and c @ moved > cents[0] @ moved
    assert out["th-1"].size == 10 and out["cl-new"].size == 3


class CountingEmbedder:
    """A random unit vector per distinct text (seeded by the text); records its calls."""

    name = "fake"

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        vecs = [np.random.default_rng(list(t.encode())).standard_normal(16) for t in texts]
        return normalise(np.array(vecs, dtype=np.float32).reshape(len(texts), 16))


def test_cached_embedder_embeds_each_distinct_text_once():
    inner, cache = CountingEmbedder(), InMemoryEmbeddingCache()
    emb = CachedEmbedder(inner, cache)
    first = emb.embed(["alpha", "beta", "alpha"])
    assert inner.calls == [["alpha", "beta"]] and emb.misses == 2 and emb.hits == 0
    second = CachedEmbedder(inner, cache).embed(["beta", "gamma", "alpha"])
    assert inner.calls[-1] == ["gamma"] and len(cache) == 3
    assert np.array_equal(second[0], first[1]) and np.array_equal(second[2], first[0])
    assert all(k.startswith("fake:") for k in cache._data)
    assert emb.embed([]).shape[0] == 0


def test_tfidf_is_not_cached():
    cache = InMemoryEmbeddingCache()
    emb = CachedEmbedder(TfidfEmbedder(), cache)
    assert emb.embed(["webhook failed", "cart empty"]).shape[0] == 2 and len(cache) == 0


def test_cluster_ids_are_stable_across_cycles():
    texts = (["Webhook deliveries failing for our orders since noon"] * 4
             + ["Please send a copy of last month's invoice to accounting"] * 4)
    t0 = pd.Timestamp("2026-11-03 09:00", tz="UTC")
    day1 = pd.DataFrame({"id": [f"A-{i}" for i in range(8)], "created_at": [t0 + pd.Timedelta(minutes=i) for i in range(8)],
                         "subject": texts, "body": texts})
    emb = CachedEmbedder(CountingEmbedder(), InMemoryEmbeddingCache())
    first = cluster(day1, emb, eps=0.05, min_samples=3)
    assert len(first.clusters) == 2 and {t.id for t in first.themes} == {c.id for c in first.clusters}
    day2 = day1.assign(id=[f"B-{i}" for i in range(8)], created_at=day1["created_at"] + pd.Timedelta(days=1)).iloc[:7]
    second = cluster(day2, emb, eps=0.05, min_samples=3, known_themes=first.themes)
    by_label = {c.label: c.id for c in first.clusters}
    assert {c.label: c.id for c in second.clusters} == by_label
    assert second.clusters[0].ticket_ids[0].startswith("B-")
    assert {t.id: t.size for t in second.themes} == {by_label[texts[0]]: 8, by_label[texts[-1]]: 7}
