"""DBSCAN (Ester et al. 1996) on cosine distance at scale: a FAISS neighbour graph fed to scikit-learn.

scikit-learn's ``DBSCAN(metric="cosine")`` computes every pairwise distance (O(n²) time and, for
dense clusters, O(n²) memory). Here the eps-neighbourhoods come from FAISS instead and reach
scikit-learn as a sparse precomputed distance graph (``metric="precomputed"``, CSR). scikit-learn
treats every *stored* entry of that graph as a neighbour (explicit zeros included) and nothing else,
so the graph stores an entry -- with its distance, ``0.0`` for exact duplicates -- for every pair
within ``eps`` (DBSCAN itself sets the diagonal).

Vectors are L2-normalised, so inner product is cosine similarity and cosine distance is ``1 - ip``.

Two graph modes:

* **exact** (the default up to :data:`EXACT_MAX_N` points): full eps-neighbourhoods from
  ``IndexFlatIP.range_search`` with radius ``1 - eps`` (in query batches). Labels equal scikit-learn's
  brute-force ``DBSCAN(metric="cosine")``.
* **bounded** (above it): the same range search, but a row with more than ``max_neighbors``
  pairs within eps keeps ``max_neighbors`` of them (evenly strided over the result order), and the
  graph is symmetrised. Memory is O(n · max_neighbors) however dense the clusters are (a cluster of
  10k near-identical tickets would otherwise store 10^8 pairs). Core points are exactly DBSCAN's (a
  point with at least ``min_samples <= max_neighbors`` neighbours keeps at least that many), border
  points keep their full rows, so after symmetrisation every core point within eps of a border point
  lists it. What can differ: two core points within eps of each other whose truncated rows both miss
  the other are linked only through other points; in a dense region such paths exist, so labels match
  exact DBSCAN up to rare splits of a cluster (``benchmarks/clustering.py`` compares at 10k).

Above :data:`FLAT_MAX_N` distinct points the search itself is IVF-style (:class:`_CellSearch`):
spherical k-means cells, each cell's queries scored against the cells that can hold their neighbours
in one BLAS product. That search is approximate like any IVF index (see the class).

Exact duplicate vectors are collapsed first and carried as DBSCAN ``sample_weight`` (identical to
running on the duplicates, since duplicates share neighbourhoods and core status).

The default ``eps`` comes from the data: the knee (Kneedle, Satopää et al. 2011) of the sorted
k-distance curve with ``k = min_samples`` (the distance at which each point would become core; the
heuristic of Ester et al. §4.2), clipped to ``eps_bounds``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from sklearn.cluster import DBSCAN

#: Up to this many (distinct) points the graph is exact (full range search) unless told otherwise.
EXACT_MAX_N = 5_000
#: Up to this many (distinct) points FAISS searches exhaustively (``IndexFlatIP``); above, IVF.
FLAT_MAX_N = 20_000


def normalise(vectors: np.ndarray) -> np.ndarray:
    """``vectors`` ``(n, d)`` as C-contiguous float32 rows of unit L2 norm (zero rows stay zero)."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"vectors must be 2-D (n, dim); got shape {x.shape}")
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)


@dataclass
class Knee:
    """The k-distance knee: ``eps`` (clipped), ``raw`` (before clipping), ``k``, ``position`` (fraction
    of points whose k-distance is below the knee) and ``curve`` (sorted k-distances, at most 200
    quantiles, for plotting)."""

    eps: float
    raw: float
    k: int
    position: float
    curve: list[float] = field(default_factory=list)


def kneedle(values: np.ndarray) -> int:
    """Index of the knee of an increasing convex curve ``values`` ``(n,)`` (sorted ascending).

    Kneedle (Satopää et al. 2011, offline form, no smoothing): rescale x and y to [0, 1]; the knee is
    the point farthest below the chord from first to last point, the maximum of ``x_n - y_n``.
    Returns ``n - 1`` for a flat or too short curve.
    """
    y = np.asarray(values, dtype=float)
    n = y.size
    if n < 3 or not np.isfinite(y).all() or y[-1] - y[0] <= 0:
        return max(n - 1, 0)
    x = np.linspace(0.0, 1.0, n)
    yn = (y - y[0]) / (y[-1] - y[0])
    return int(np.argmax(x - yn))


def knee_eps(kdist: np.ndarray, k: int, eps_bounds: tuple[float, float] = (0.05, 0.5)) -> Knee:
    """The DBSCAN ``eps`` at the knee of the sorted k-distances ``kdist`` ``(n,)`` (cosine distances)."""
    curve = np.sort(np.clip(np.asarray(kdist, dtype=float), 0.0, None))
    if curve.size == 0:
        lo, hi = eps_bounds
        return Knee(eps=float(hi), raw=float("nan"), k=k, position=float("nan"))
    i = kneedle(curve)
    raw = float(curve[i])
    lo, hi = eps_bounds
    sample = np.quantile(curve, np.linspace(0, 1, min(200, curve.size))).round(5).tolist()
    return Knee(eps=float(min(max(raw, lo), hi)), raw=raw, k=k, position=i / max(curve.size - 1, 1), curve=sample)


def _stride_keep(counts: np.ndarray, max_neighbors: int) -> np.ndarray:
    """Mask over entries grouped by row (``counts`` per row): a row with more than ``max_neighbors``
    entries keeps ``max_neighbors`` of them, evenly strided over its order; other rows keep all."""
    counts = counts.astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    row = np.repeat(np.arange(len(counts)), counts)
    pos = np.arange(int(counts.sum())) - starts[row]
    c = counts[row]
    stride = (pos == 0) | ((pos * max_neighbors) // np.maximum(c, 1) > ((pos - 1) * max_neighbors) // np.maximum(c, 1))
    return (c <= max_neighbors) | stride


class _FlatSearch:
    """Exhaustive neighbour search with FAISS ``IndexFlatIP`` (BLAS inside for query batches)."""

    kind = "flat"

    def __init__(self, x: np.ndarray) -> None:
        import faiss

        self.x = x
        self.index = faiss.IndexFlatIP(x.shape[1])
        self.index.add(x)

    def knn(self, rows: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Cosine distances ``(len(rows), k)`` ascending and neighbour ids (-1: none found)."""
        dist = np.empty((len(rows), k), dtype=np.float32)
        idx = np.empty((len(rows), k), dtype=np.int64)
        for s in range(0, len(rows), batch_size):
            sims, ids = self.index.search(self.x[rows[s : s + batch_size]], k)
            dist[s : s + batch_size], idx[s : s + batch_size] = 1.0 - sims, ids
        dist[idx < 0] = np.inf
        return np.clip(dist, 0.0, None), idx

    def range(self, eps: float, batch_size: int, max_neighbors: int | None):
        """``(row, col, dist, rows truncated)`` of every pair within ``eps`` (``range_search`` in query
        batches). FAISS keeps inner products strictly above the radius; the radius is lowered by 1e-6
        and the distance re-checked, so the test is ``1 - ip <= eps`` as in scikit-learn."""
        out_r, out_c, out_d, truncated = [], [], [], 0
        for s in range(0, len(self.x), batch_size):
            q = np.arange(s, min(s + batch_size, len(self.x)))
            lims, sims, ids = self.index.range_search(self.x[q], float(1.0 - eps - 1e-6))
            counts = np.diff(lims.astype(np.int64))
            d = np.clip(1.0 - sims, 0.0, None)
            keep = (d <= eps) & (ids >= 0)
            if max_neighbors is not None and (counts > max_neighbors).any():
                truncated += int((counts > max_neighbors).sum())
                keep &= _stride_keep(counts, max_neighbors)
            out_r.append(np.repeat(q, counts)[keep])
            out_c.append(ids[keep])
            out_d.append(d[keep])
        return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d), truncated


def _groups(keys: np.ndarray, values: np.ndarray, n_groups: int):
    """``(group, values of the group)`` for each non-empty group ``0..n_groups-1``."""
    order = np.argsort(keys, kind="stable")
    bounds = np.searchsorted(keys[order], np.arange(n_groups + 1))
    for g in range(n_groups):
        if bounds[g + 1] > bounds[g]:
            yield g, values[order[bounds[g] : bounds[g + 1]]]


class _CellSearch:
    """IVF-style neighbour search for large n, computed in dense blocks.

    Spherical k-means (FAISS ``Kmeans``) splits the points into ``nlist`` cells with centroid ``μ_c``
    and angular radius ``θ_c`` (the largest angle between a member and ``μ_c``). By the triangle
    inequality for angles on the sphere, a point of cell ``c`` can have a neighbour within cosine
    distance ``eps`` in cell ``c'`` only if ``∠(μ_c, μ_c') <= θ_c + θ_c' + arccos(1 - eps)``; the range
    search scans only those cells (an exact pruning), at most ``max_probe`` of them, nearest first
    (the cap is what can miss neighbours: it binds for wide, sparse cells, i.e. noise). The queries of
    a cell are scored against the candidates in one BLAS matrix product (``faiss.IndexIVFFlat`` scans
    vector by vector, several times slower here). k-NN queries (for the knee) scan the ``max_probe``
    cells nearest to their cell's centroid.
    """

    kind = "ivf"

    def __init__(self, x: np.ndarray, nlist: int | None, max_probe: int, seed: int,
                 radius_quantile: float = 0.9) -> None:
        import faiss

        n, d = x.shape
        self.x = x
        self.nlist = int(nlist or min(max(np.sqrt(n), 16), n // 40))
        self.max_probe = min(max_probe, self.nlist)
        rng = np.random.default_rng(seed)
        kmeans = faiss.Kmeans(d, self.nlist, niter=10, spherical=True, seed=seed, verbose=False)
        kmeans.train(x[rng.choice(n, size=min(n, 40 * self.nlist), replace=False)])
        centroids = normalise(kmeans.centroids)
        cindex = faiss.IndexFlatIP(d)
        cindex.add(centroids)
        sim, cell = cindex.search(x, 1)
        self.cell = cell.ravel()
        angle = np.arccos(np.clip(sim.ravel(), -1.0, 1.0))
        self.radius = np.zeros(self.nlist)
        for c, a in _groups(self.cell, angle, self.nlist):
            self.radius[c] = np.quantile(a, radius_quantile)
        self.centroid_angle = np.arccos(np.clip(centroids @ centroids.T, -1.0, 1.0))
        order = np.argsort(self.cell, kind="stable")
        bounds = np.searchsorted(self.cell[order], np.arange(self.nlist + 1))
        self.members = [order[bounds[c] : bounds[c + 1]] for c in range(self.nlist)]
        self.capped = 0

    def _probe(self, c: int, eps: float | None) -> np.ndarray:
        near = np.argsort(self.centroid_angle[c], kind="stable")
        if eps is None:
            return near[: self.max_probe]
        reach = self.radius[c] + self.radius + np.arccos(1.0 - min(eps, 2.0))
        ok = near[self.centroid_angle[c, near] <= reach[near] + 1e-6]
        if len(ok) > self.max_probe:
            self.capped += 1
        return ok[: self.max_probe]

    def _blocks(self, rows: np.ndarray | None, eps: float | None, batch_size: int):
        """``(query ids, candidate ids, sims)`` blocks; ``sims`` ``(len(q), len(cand))`` float32."""
        wanted = None
        if rows is not None:
            wanted = np.zeros(len(self.x), dtype=bool)
            wanted[rows] = True
        for c in range(self.nlist):
            q_all = self.members[c] if wanted is None else self.members[c][wanted[self.members[c]]]
            if not len(q_all):
                continue
            cand = np.concatenate([self.members[p] for p in self._probe(c, eps)])
            xc = self.x[cand]
            step = int(max(64, min(batch_size, 25_000_000 // max(len(cand), 1))))
            for s in range(0, len(q_all), step):
                q = q_all[s : s + step]
                yield q, cand, self.x[q] @ xc.T

    def knn(self, rows: np.ndarray, k: int, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        pos = np.full(len(self.x), -1, dtype=np.int64)
        pos[rows] = np.arange(len(rows))
        dist = np.full((len(rows), k), np.inf, dtype=np.float32)
        idx = np.full((len(rows), k), -1, dtype=np.int64)
        for q, cand, sims in self._blocks(rows, None, batch_size):
            kk = min(k, len(cand))
            part = np.argpartition(-sims, kk - 1, axis=1)[:, :kk]
            top = np.take_along_axis(sims, part, axis=1)
            order = np.argsort(-top, axis=1, kind="stable")
            dist[pos[q], :kk] = np.clip(1.0 - np.take_along_axis(top, order, axis=1), 0.0, None)
            idx[pos[q], :kk] = cand[np.take_along_axis(part, order, axis=1)]
        return dist, idx

    def range(self, eps: float, batch_size: int, max_neighbors: int | None):
        out_r, out_c, out_d, truncated = [], [], [], 0
        self.capped = 0
        for q, cand, sims in self._blocks(None, eps, batch_size):
            qi, ci = np.nonzero(sims >= 1.0 - eps - 1e-6)
            d = np.clip(1.0 - sims[qi, ci], 0.0, None)
            keep = d <= eps
            qi, ci, d = qi[keep], ci[keep], d[keep]
            if max_neighbors is not None:
                counts = np.bincount(qi, minlength=len(q))
                if (counts > max_neighbors).any():
                    truncated += int((counts > max_neighbors).sum())
                    keep = _stride_keep(counts, max_neighbors)
                    qi, ci, d = qi[keep], ci[keep], d[keep]
            out_r.append(q[qi])
            out_c.append(cand[ci])
            out_d.append(d)
        return np.concatenate(out_r), np.concatenate(out_c), np.concatenate(out_d), truncated


def _csr(n: int, r: np.ndarray, c: np.ndarray, d: np.ndarray, symmetric: bool) -> sparse.csr_matrix:
    """CSR distance graph with explicit entries (zeros kept), self pairs included, rows ordered by
    column (DBSCAN sorts each row by distance itself after setting the diagonal)."""
    r, c, d = r.astype(np.int64), c.astype(np.int64), d.astype(np.float64)
    diag = np.arange(n, dtype=np.int64)
    parts_r, parts_c, parts_d = [r, diag], [c, diag], [d, np.zeros(n)]
    if symmetric:
        parts_r.append(c)
        parts_c.append(r)
        parts_d.append(d)
    r, c, d = np.concatenate(parts_r), np.concatenate(parts_c), np.concatenate(parts_d)
    key = r * n + c
    _, first = np.unique(key, return_index=True)  # sorted by (row, col), duplicates dropped
    r, c, d = r[first], c[first], d[first]
    d[r == c] = 0.0
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(r, minlength=n), out=indptr[1:])
    # csr_matrix((data, indices, indptr)) keeps explicit zeros: they are neighbours at distance 0.
    return sparse.csr_matrix((d, c, indptr), shape=(n, n))


@dataclass
class GraphStats:
    """How the neighbour graph was built: ``mode`` exact|bounded, ``index`` flat|ivf, ``n`` points,
    ``n_distinct`` after collapsing duplicates, ``edges`` stored, ``saturated`` rows that hit
    ``max_neighbors`` (bounded mode), seconds for search and for DBSCAN."""

    mode: str
    index: str
    n: int
    n_distinct: int
    edges: int
    saturated: int
    search_seconds: float
    dbscan_seconds: float


class FaissDBSCAN:
    """DBSCAN on cosine distance with a FAISS radius-neighbour graph.

    Parameters (stored only; see the module docstring for the modes):
        eps: cosine distance radius in (0, 2); ``None`` picks it at the k-distance knee.
        min_samples: points (weights) within eps, the point included, that make a core point.
        exact: full neighbourhoods (``True``), bounded rows (``False``) or by size (``None``:
            exact up to :data:`EXACT_MAX_N` distinct points).
        max_neighbors: row bound in bounded mode (>= ``min_samples``).
        eps_bounds: clip range of the knee eps.
        flat_max_n: above this many distinct points, the IVF-style cell search (``nlist`` cells,
            at most ``nprobe`` scanned per cell; default nlist ~ sqrt(n)).
        batch_size: FAISS query batch.
        knee_sample: points whose k-distances make the knee curve (a random sample above this).

    Learned: ``labels_`` ``(n,)`` int (-1 noise), ``core_sample_indices_``, ``eps_``, ``knee_``
    (:class:`Knee` or ``None`` if eps was given), ``graph_stats_``.
    """

    def __init__(self, eps: float | None = None, min_samples: int = 4, *, exact: bool | None = None,
                 max_neighbors: int = 64, eps_bounds: tuple[float, float] = (0.05, 0.5),
                 flat_max_n: int = FLAT_MAX_N, nlist: int | None = None, nprobe: int = 8,
                 batch_size: int = 2048, knee_sample: int = 5000, seed: int = 0) -> None:
        self.eps = eps
        self.min_samples = min_samples
        self.exact = exact
        self.max_neighbors = max_neighbors
        self.eps_bounds = eps_bounds
        self.flat_max_n = flat_max_n
        self.nlist = nlist
        self.nprobe = nprobe
        self.batch_size = batch_size
        self.knee_sample = knee_sample
        self.seed = seed

    def _check(self) -> None:
        if self.eps is not None and not 0.0 < self.eps < 2.0:
            raise ValueError(f"eps must be a cosine distance in (0, 2); got {self.eps!r}")
        if int(self.min_samples) != self.min_samples or self.min_samples < 1:
            raise ValueError(f"min_samples must be a positive integer; got {self.min_samples!r}")
        if self.max_neighbors < self.min_samples:
            raise ValueError(f"max_neighbors ({self.max_neighbors}) must be >= min_samples ({self.min_samples})")

    def fit(self, vectors: np.ndarray) -> FaissDBSCAN:
        """Cluster ``vectors`` ``(n, dim)`` (normalised here); returns self."""
        import time

        self._check()
        x_all = normalise(vectors)
        n = len(x_all)
        self.knee_ = None
        if n == 0:
            self.labels_ = np.zeros(0, dtype=np.intp)
            self.core_sample_indices_ = np.zeros(0, dtype=np.intp)
            self.eps_ = float(self.eps) if self.eps is not None else float("nan")
            self.graph_stats_ = GraphStats("exact", "flat", 0, 0, 0, 0, 0.0, 0.0)
            return self
        t0 = time.perf_counter()
        x, inverse, weight = _collapse(x_all)
        m = len(x)
        exact = self.exact if self.exact is not None else m <= EXACT_MAX_N
        search = (_FlatSearch(x) if m <= self.flat_max_n
                  else _CellSearch(x, self.nlist, self.nprobe, self.seed))
        eps = self.eps
        if eps is None:
            # k-distances of (a sample of) the original points; duplicates count through weights
            rng = np.random.default_rng(self.seed)
            sample = inverse if n <= self.knee_sample else inverse[rng.choice(n, self.knee_sample, replace=False)]
            queries = np.unique(sample)
            dist, idx = search.knn(queries, min(m, self.min_samples), self.batch_size)
            kd_by_distinct = np.full(m, np.inf)
            kd_by_distinct[queries] = _weighted_kdist(dist, idx, weight, self.min_samples)
            kd = kd_by_distinct[sample]
            self.knee_ = knee_eps(kd[np.isfinite(kd)], self.min_samples, self.eps_bounds)
            eps = self.knee_.eps
        r, c, d, saturated = search.range(eps, self.batch_size, None if exact else self.max_neighbors)
        graph = _csr(m, r, c, d, symmetric=not exact)
        t1 = time.perf_counter()
        model = DBSCAN(eps=eps, min_samples=self.min_samples, metric="precomputed")
        model.fit(graph, sample_weight=weight if (weight > 1).any() else None)
        t2 = time.perf_counter()
        self.eps_ = float(eps)
        self.labels_ = model.labels_[inverse]
        core = np.zeros(m, dtype=bool)
        core[model.core_sample_indices_] = True
        self.core_sample_indices_ = np.flatnonzero(core[inverse])
        self.graph_stats_ = GraphStats(
            mode="exact" if exact else "bounded", index=search.kind, n=n,
            n_distinct=m, edges=int(graph.nnz), saturated=saturated, search_seconds=round(t1 - t0, 3),
            dbscan_seconds=round(t2 - t1, 3))
        return self

    def fit_predict(self, vectors: np.ndarray) -> np.ndarray:
        """``labels_`` after :meth:`fit`: ``(n,)`` int, -1 for noise."""
        return self.fit(vectors).labels_


def _collapse(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``x``, the inverse map ``(n,)`` and each distinct row's multiplicity."""
    keys = np.ascontiguousarray(x).view(np.dtype((np.void, x.dtype.itemsize * x.shape[1]))).ravel()
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)
    if len(first) == len(x):
        return x, np.arange(len(x)), np.ones(len(x), dtype=np.int64)
    order = np.argsort(first, kind="stable")  # distinct rows in order of first appearance
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return x[first[order]], rank[inverse.ravel()], counts[order].astype(np.int64)


def _weighted_kdist(dist: np.ndarray, idx: np.ndarray, weight: np.ndarray, k: int) -> np.ndarray:
    """Per query row, the smallest distance at which its neighbours' weights (itself included) reach
    ``k``: its k-distance counting duplicates; ``inf`` if the searched neighbours do not reach ``k``."""
    w = np.where(idx >= 0, weight[np.clip(idx, 0, None)], 0)
    reached = np.cumsum(w, axis=1) >= k
    pos = np.argmax(reached, axis=1)
    return np.where(reached.any(axis=1), dist[np.arange(len(dist)), pos], np.inf)


def dbscan_cosine(vectors: np.ndarray, eps: float | None = None, min_samples: int = 4, **kwargs) -> FaissDBSCAN:
    """Fit :class:`FaissDBSCAN` on ``vectors`` ``(n, dim)``; the fitted model (``labels_``, ``eps_``…)."""
    return FaissDBSCAN(eps=eps, min_samples=min_samples, **kwargs).fit(vectors)
