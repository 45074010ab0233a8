"""State that ticket clustering carries across cycles: stable theme ids and an embedding cache.

**Theme ids.** DBSCAN labels are arbitrary per run, and a cluster id hashed from its ticket ids
changes whenever one ticket joins. A *theme* is a cluster with a persistent id: each cycle's clusters
are matched to the known themes by the cosine similarity of their centroids, one-to-one (Hungarian
assignment, Kuhn 1955, via ``scipy.optimize.linear_sum_assignment``), and a match needs at least
``min_similarity``. A matched cluster keeps the theme's id; an unmatched one starts a new theme under
its own id. The store persists :class:`KnownTheme` rows (id, unit centroid, size, label, last seen);
everything here is pure numpy.

**Embedding cache.** MiniLM is the slow part of clustering (tens of tickets per second on two CPU
cores), and the same ticket is seen by many cycles. :class:`CachedEmbedder` wraps an embedder and
looks vectors up by content hash in an :class:`EmbeddingCache` first; the store backs that protocol
with a table, :class:`InMemoryEmbeddingCache` is the in-process version. Keys are
``"<embedder name>:<sha256 of the text>"``, so two models never share vectors. Embedders whose vectors
depend on the corpus (the TF-IDF fallback: its vocabulary is fitted per instance) are not cached.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import numpy as np
from scipy.optimize import linear_sum_assignment

from opsloop.clustering.embedders import Embedder, content_hash

# --------------------------------------------------------------------------------------------------
# Theme ids
# --------------------------------------------------------------------------------------------------


@dataclass
class KnownTheme:
    """A theme remembered from earlier cycles: ``centroid`` ``(dim,)`` unit vector, ``size`` tickets
    seen so far (the weight of the centroid), ``label`` and ``last_seen`` for display and expiry."""

    id: str
    centroid: np.ndarray
    size: int = 0
    label: str = ""
    last_seen: datetime | None = None


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    n = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(n > 0, n, 1.0)


def match_themes(known: list[KnownTheme], new_centroids: np.ndarray, min_similarity: float = 0.8) -> list[str | None]:
    """The known theme id for each new centroid, or ``None`` for a new theme.

    ``new_centroids`` ``(n_new, dim)`` (normalised here). Each known theme matches at most one new
    cluster and vice versa, and only pairs with cosine similarity >= ``min_similarity`` may match.
    Among the one-to-one assignments with the most such matches, the one with the largest total
    similarity is chosen (pairs below the floor cost far more than any similarity can gain).
    """
    new = np.asarray(new_centroids, dtype=np.float64)
    if new.size == 0:
        return []
    new = _unit(new)
    if not known:
        return [None] * len(new)
    old = _unit(np.stack([np.asarray(k.centroid, dtype=np.float64).ravel() for k in known]))
    if old.shape[1] != new.shape[1]:
        raise ValueError(f"centroid dimension mismatch: known {old.shape[1]}, new {new.shape[1]} "
                         "(was the embedder changed? themes of another model cannot be matched)")
    sim = old @ new.T  # (n_known, n_new)
    feasible = sim >= min_similarity
    cost = np.where(feasible, -sim, 1e6)  # infeasible pairs: costly, and dropped below
    rows, cols = linear_sum_assignment(cost)
    out: list[str | None] = [None] * len(new)
    for r, c in zip(rows, cols):
        if feasible[r, c]:
            out[c] = known[r].id
    return out


def update_themes(known: list[KnownTheme], ids: list[str], centroids: np.ndarray, sizes: list[int],
                  labels: list[str], seen: datetime | None = None, max_weight: int = 1000) -> list[KnownTheme]:
    """Known themes after a cycle: a matched theme's centroid moves to the size-weighted mean of its old
    centroid and the new cluster's (old weight capped at ``max_weight`` so a theme can drift with its
    tickets), size adds up, label and ``last_seen`` are refreshed; new ids are appended; themes not seen
    this cycle are kept unchanged. ``ids``/``centroids``/``sizes``/``labels`` describe this cycle's
    clusters (ids as returned by :func:`assign_ids`)."""
    by_id = {k.id: k for k in known}
    cents = _unit(np.asarray(centroids, dtype=np.float64)) if len(ids) else np.zeros((0, 0))
    for i, tid in enumerate(ids):
        old = by_id.get(tid)
        if old is None:
            by_id[tid] = KnownTheme(tid, cents[i].astype(np.float32), int(sizes[i]), labels[i], seen)
            continue
        w_old = min(old.size, max_weight)
        mean = _unit(w_old * _unit(old.centroid)[0] + sizes[i] * cents[i])[0]
        by_id[tid] = KnownTheme(tid, mean.astype(np.float32), old.size + int(sizes[i]), labels[i] or old.label,
                                seen or old.last_seen)
    return list(by_id.values())


def assign_ids(known: list[KnownTheme], cluster_ids: list[str], centroids: np.ndarray,
               min_similarity: float = 0.8) -> list[str]:
    """Stable ids for this cycle's clusters: the matched known theme's id, else the cluster's own id."""
    matched = match_themes(known, centroids, min_similarity)
    return [m if m is not None else own for m, own in zip(matched, cluster_ids)]


# --------------------------------------------------------------------------------------------------
# Embedding cache
# --------------------------------------------------------------------------------------------------


class EmbeddingCache(Protocol):
    """Vectors by key (``"<embedder>:<sha256>"``); the store implements it with a table."""

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        """The cached vectors among ``keys`` (missing keys are simply absent)."""
        ...

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        """Store ``vectors`` (float32 ``(dim,)`` each); existing keys may be overwritten."""
        ...


@dataclass
class InMemoryEmbeddingCache:
    """A dict-backed :class:`EmbeddingCache`; ``max_items`` bounds it (oldest inserted dropped first)."""

    max_items: int | None = None
    _data: dict[str, np.ndarray] = field(default_factory=dict)

    def get_many(self, keys: list[str]) -> dict[str, np.ndarray]:
        return {k: self._data[k] for k in keys if k in self._data}

    def put_many(self, vectors: Mapping[str, np.ndarray]) -> None:
        for k, v in vectors.items():
            self._data.pop(k, None)
            self._data[k] = np.asarray(v, dtype=np.float32)
        if self.max_items is not None:
            while len(self._data) > self.max_items:
                self._data.pop(next(iter(self._data)))

    def __len__(self) -> int:
        return len(self._data)


class CachedEmbedder:
    """An :class:`~opsloop.clustering.embedders.Embedder` that asks ``cache`` before ``embedder``.

    Distinct texts missing from the cache are embedded once, in one batch, and written back. Counts
    of hits and misses since creation are in ``hits`` / ``misses``. Corpus-dependent embedders (no
    ``cacheable`` attribute and name ``"tfidf"``, or ``cacheable = False``) pass through uncached.
    """

    def __init__(self, embedder: Embedder, cache: EmbeddingCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.name = embedder.name
        self.cacheable = bool(getattr(embedder, "cacheable", embedder.name != "tfidf"))
        self.hits = 0
        self.misses = 0

    def key(self, text: str) -> str:
        """Cache key of ``text`` for this embedder."""
        return f"{self.name}:{content_hash(text)}"

    def embed(self, texts: list[str]) -> np.ndarray:
        if not self.cacheable:
            return self.embedder.embed(texts)
        keys = [self.key(t) for t in texts]
        found = self.cache.get_many(sorted(set(keys)))
        todo: dict[str, str] = {}
        for k, t in zip(keys, texts):
            if k not in found and k not in todo:
                todo[k] = t
        self.hits += sum(k in found for k in keys)
        self.misses += len(todo)
        if todo:
            vecs = self.embedder.embed(list(todo.values()))
            fresh = {k: np.asarray(v, dtype=np.float32) for k, v in zip(todo.keys(), vecs)}
            self.cache.put_many(fresh)
            found = {**found, **fresh}
        if not keys:
            return self.embedder.embed([])
        return np.stack([found[k] for k in keys]).astype(np.float32)


def theme_rows(themes: Iterable[KnownTheme]) -> list[dict]:
    """Themes as plain rows for storage (``centroid`` as a list of floats)."""
    return [{"id": t.id, "centroid": np.asarray(t.centroid, dtype=np.float32).tolist(), "size": t.size,
             "label": t.label, "last_seen": t.last_seen} for t in themes]
