"""Ticket clustering: HDBSCAN (Campello et al. 2013) on cosine distance between sentence embeddings.

Texts are ``subject. body`` with e-mail boilerplate (greetings, signatures, quoted replies) stripped
first (:mod:`opsloop.clustering.boilerplate`), for the embedding and for the top terms alike. By
default the clusters come from :class:`~opsloop.clustering.hdbscan.FaissHDBSCAN` over the embeddings
with the texts' own LSA vectors appended (:func:`~opsloop.clustering.embedders.hybrid_vectors`:
helpdesk tickets are keyword text, where shared words say much a sentence model blurs) (a FAISS k-NN
graph, scikit-learn's HDBSCAN, a guard that re-clusters any cluster holding more than a quarter of
the tickets, and an attachment step that gives a noise ticket the nearest cluster it is as close to
as that cluster's own members): real
tickets have no single density, so a DBSCAN radius either chains them into one cluster or leaves
most as noise. Given an ``eps``, DBSCAN with that radius is used instead
(:class:`~opsloop.clustering.dbscan.FaissDBSCAN`). Noise tickets (label -1) stay unclustered.

Each cluster gets top terms by class-based TF-IDF (Grootendorst 2022, BERTopic's c-TF-IDF) drawn
only from words its own tickets use, a readable label (the most common subject near its centroid,
else its top terms, never empty), the tickets closest to its centroid as examples, its time span and
the values of the blast-radius labels it touches (the label columns a domain pack names, e.g. a
customer or a region). Given the themes known from earlier cycles
(:mod:`opsloop.clustering.themes`), clusters keep their theme's id.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import CountVectorizer

from opsloop.clustering.boilerplate import strip_boilerplate
from opsloop.clustering.dbscan import FaissDBSCAN
from opsloop.clustering.embedders import LEXICAL_WEIGHT, Embedder, hybrid_vectors
from opsloop.clustering.hdbscan import MIN_CLUSTER_SIZE, MIN_SAMPLES, FaissHDBSCAN
from opsloop.clustering.themes import KnownTheme, assign_ids, update_themes
from opsloop.data.contracts import affected
from opsloop.domain import TicketCluster, stable_hash

#: DBSCAN's ``min_samples`` when an ``eps`` is given and no ``min_samples``.
DBSCAN_MIN_SAMPLES = 4


def ticket_texts(tickets: pd.DataFrame) -> list[str]:
    """``subject. body`` per ticket row, boilerplate stripped from the body (a body that is nothing
    but boilerplate is kept as it is); no subject: the body alone."""
    body = tickets["body"].fillna("").astype(str)
    stripped = pd.Series(strip_boilerplate(body), index=body.index)
    body = stripped.where(stripped.str.len() > 0, body)
    subject = tickets["subject"].fillna("").astype(str).str.strip()
    return subject.where(subject.str.len() == 0, subject + ". ").str.cat(body).str.strip().tolist()


def class_tfidf_terms(texts: list[str], labels: np.ndarray, top_n: int = 5) -> dict[int, list[str]]:
    """Top terms per cluster label (labels >= 0) by c-TF-IDF: ``{label: [term, ...]}``, at most
    ``top_n`` each, every term one that occurs in that cluster's own texts.

    Each cluster's texts are one document; weight = tf(term, cluster) · log(1 + A / f(term)), with A
    the mean number of words per cluster and f the term's frequency over all clusters (Grootendorst
    2022). Words are English non-stop-words of 3+ characters starting with a letter; a cluster with
    none of those gets its most common tokens of 2+ characters; a cluster with no token at all, ``[]``.
    """
    clusters = sorted(int(c) for c in set(labels.tolist()) if c >= 0)
    if not clusters:
        return {}
    groups: dict[int, list[str]] = {}
    for t, lab in zip(texts, labels.tolist()):
        if lab >= 0:
            groups.setdefault(int(lab), []).append(t)
    docs = [" ".join(groups[c]) for c in clusters]
    out: dict[int, list[str]] = {c: [] for c in clusters}
    for pattern, stop in ((r"(?u)\b[a-zA-Z][a-zA-Z0-9_.]{2,}\b", "english"), (r"(?u)\b\w\w+\b", None)):
        todo = [i for i, c in enumerate(clusters) if not out[c]]
        if not todo:
            break
        vec = CountVectorizer(stop_words=stop, token_pattern=pattern)
        try:
            tf = vec.fit_transform(docs).toarray().astype(float)
        except ValueError:  # no token in any cluster
            continue
        words = np.asarray(vec.get_feature_names_out())
        tf_norm = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1.0)
        idf = np.log1p((tf.sum() / len(clusters)) / np.maximum(tf.sum(axis=0), 1.0))
        weights = np.where(tf > 0, tf_norm * idf, -1.0)  # words absent from a cluster never rank
        order = np.argsort(-weights, axis=1, kind="stable")[:, :top_n]
        for i in todo:
            out[clusters[i]] = words[order[i]][weights[i, order[i]] > 0].tolist()
    return out


def cluster_label(subjects: list[str], top_terms: list[str], texts: list[str], size: int) -> str:
    """A cluster's label, never empty: the most common non-empty one of ``subjects`` (ordered by
    closeness to the centroid; ties: the closest), else its ``top_terms`` joined by " / ", else the
    first eight words of the closest of ``texts``, else ``"<size> similar tickets"``."""
    named = [s.strip() for s in subjects if s and s.strip()]
    if named:
        return _label(named)
    if top_terms:
        return " / ".join(top_terms[:3])
    words = next((t.split() for t in texts if t.strip()), [])
    return " ".join(words[:8]) if words else f"{size} similar tickets"



@dataclass
class ClusteringResult:
    """What :func:`cluster` found.

    * ``clusters`` -- sorted by size, largest first; ``centroids`` ``(n_clusters, dim)`` unit vectors,
      row ``i`` is ``clusters[i]``'s (for theme matching and storage).
    * ``labels`` ``(n_tickets,)`` -- index into ``clusters`` per input row (in input order), -1 noise.
    * ``noise`` -- ids of the tickets left unclustered.
    * ``eps`` / ``eps_source`` -- ``given``: the DBSCAN radius asked for; ``hdbscan`` (the default):
      HDBSCAN has no single radius, ``eps`` is the median core distance (cosine distance, between
      the hybrid vectors clustered, to the ``min_samples``-th neighbour) of the clustered tickets, a figure of how tight the themes are
      (0 if none was clustered).
    * ``themes`` -- the known themes updated with this run's clusters (persist them for next cycle).
    * ``stats`` -- seconds (``embed_s``, ``cluster_s`` with the LSA vectors, ``describe_s``) and the neighbour-graph figures.
    """

    clusters: list[TicketCluster]
    centroids: np.ndarray
    labels: np.ndarray
    noise: list[str]
    eps: float
    eps_source: str
    min_samples: int
    themes: list[KnownTheme] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def _label(subjects: list[str]) -> str:
    """The most common of ``subjects`` (ordered by closeness to the centroid; ties: the closest)."""
    counts = Counter(subjects)
    best = max(counts.values())
    return next(s for s in subjects if counts[s] == best)


def cluster(
    tickets: pd.DataFrame, embedder: Embedder, eps: float | None = None, min_samples: int | None = None,
    n_examples: int = 3, known_themes: list[KnownTheme] | None = None, min_theme_similarity: float = 0.8,
    vectors: np.ndarray | None = None, labels: Sequence[str] = (), min_cluster_size: int = MIN_CLUSTER_SIZE,
    lexical_weight: float = LEXICAL_WEIGHT, **params: Any,
) -> ClusteringResult:
    """Cluster ``tickets`` (a tickets-contract DataFrame) and describe each cluster.

    Args:
        eps: ``None`` (the default): HDBSCAN (:class:`~opsloop.clustering.hdbscan.FaissHDBSCAN`);
            a cosine distance radius (1 - cosine similarity): DBSCAN with it.
        min_samples: HDBSCAN: the neighbours that define a ticket's core distance (``None``:
            :data:`~opsloop.clustering.hdbscan.MIN_SAMPLES`); DBSCAN: tickets within ``eps`` (itself
            included) that make a core ticket (``None``: 4).
        min_cluster_size: HDBSCAN's smallest cluster.
        lexical_weight: weight of the texts' LSA vectors appended to the embeddings for the
            HDBSCAN clustering (:func:`~opsloop.clustering.embedders.hybrid_vectors`; 0: embeddings
            only; DBSCAN's ``eps`` stays a radius between embeddings).
            Centroids, examples and theme matching use the embeddings alone.
        n_examples: representative tickets per cluster (closest to the centroid).
        known_themes: themes from earlier cycles; a cluster whose centroid matches one (cosine
            >= ``min_theme_similarity``) takes its id, otherwise its id hashes its sorted ticket ids.
        vectors: precomputed embeddings ``(n, dim)`` in row order (skips ``embedder``).
        labels: the blast-radius label columns (the domain pack's ``labels``); each cluster's
            ``affected`` lists the values of those found in its tickets (none: ``affected`` is empty).
        params: passed to :class:`~opsloop.clustering.hdbscan.FaissHDBSCAN` (or to
            :class:`~opsloop.clustering.dbscan.FaissDBSCAN` when ``eps`` is given).

    Returns:
        A :class:`ClusteringResult`.
    """
    tickets = tickets.reset_index(drop=True)
    n = len(tickets)
    t0 = time.perf_counter()
    texts = ticket_texts(tickets)
    vecs = np.asarray(embedder.embed(texts) if vectors is None else vectors, dtype=np.float32)
    t1 = time.perf_counter()
    source = "given" if eps is not None else "hdbscan"
    if min_samples is None:
        min_samples = DBSCAN_MIN_SAMPLES if source == "given" else MIN_SAMPLES
    if source == "given":
        model: FaissDBSCAN | FaissHDBSCAN = FaissDBSCAN(eps=eps, min_samples=min_samples, **params)
        raw = model.fit_predict(vecs) if n >= min_samples else np.full(n, -1)
        used_eps = float(eps)
    else:
        model = FaissHDBSCAN(min_cluster_size=min_cluster_size, min_samples=min_samples, **params)
        raw = model.fit_predict(hybrid_vectors(vecs, texts, lexical_weight) if n else vecs)
        core = model.core_distance_[(raw >= 0) & np.isfinite(model.core_distance_)]
        used_eps = float(np.median(core)) if len(core) else 0.0
    t2 = time.perf_counter()

    terms = class_tfidf_terms(texts, raw)
    norms = np.linalg.norm(vecs, axis=1, keepdims=True)
    unit = vecs / np.where(norms > 0, norms, 1.0)
    drafts = []
    for c, top in terms.items():
        members = np.flatnonzero(raw == c)
        rows = tickets.iloc[members]
        centroid = unit[members].mean(axis=0)
        centroid /= max(float(np.linalg.norm(centroid)), 1e-12)
        order = members[np.argsort(-(unit[members] @ centroid), kind="stable")]
        examples = [
            {"id": str(tickets.at[i, "id"]), "subject": str(tickets.at[i, "subject"]),
             "created_at": tickets.at[i, "created_at"].isoformat()}
            for i in order[:n_examples]
        ]
        ids = sorted(rows["id"].astype(str).tolist())
        drafts.append((c, centroid, TicketCluster(
            id="cl-" + stable_hash(ids, 10),
            size=len(members),
            top_terms=top,
            examples=examples,
            label=cluster_label([str(tickets.at[i, "subject"]) for i in order[:10]], top,
                                [texts[i] for i in order[:1]], len(members)),
            first_seen=rows["created_at"].min().to_pydatetime(),
            last_seen=rows["created_at"].max().to_pydatetime(),
            affected=affected(rows, labels),
            ticket_ids=ids,
        )))
    drafts.sort(key=lambda d: (-d[2].size, d[2].first_seen, d[2].id))
    dim = vecs.shape[1] if vecs.ndim == 2 else 0
    centroids = np.stack([d[1] for d in drafts]).astype(np.float32) if drafts else np.zeros((0, dim), np.float32)
    clusters = [d[2] for d in drafts]
    known = list(known_themes or [])
    if clusters:
        ids = assign_ids(known, [c.id for c in clusters], centroids, min_theme_similarity)
        clusters = [c.model_copy(update={"id": i}) for c, i in zip(clusters, ids)]
    last = max((c.last_seen for c in clusters), default=None)
    themes = update_themes(known, [c.id for c in clusters], centroids, [c.size for c in clusters],
                           [c.label for c in clusters], seen=last)
    relabel = np.full(int(raw.max()) + 2 if len(raw) else 1, -1)
    for i, d in enumerate(drafts):
        relabel[d[0]] = i
    labels = relabel[raw] if len(raw) else np.zeros(0, dtype=int)
    stats = {"embed_s": round(t1 - t0, 3), "cluster_s": round(t2 - t1, 3),
             "describe_s": round(time.perf_counter() - t2, 3)}
    if source == "hdbscan":
        stats["graph"] = vars(model.stats_)
    elif n >= min_samples:
        stats["graph"] = vars(model.graph_stats_)
    return ClusteringResult(
        clusters=clusters, centroids=centroids, labels=labels,
        noise=tickets.loc[labels < 0, "id"].astype(str).tolist(), eps=used_eps, eps_source=source,
        min_samples=min_samples, themes=themes, stats=stats,
    )


def cluster_tickets(
    tickets: pd.DataFrame, embedder: Embedder, eps: float | None = None, min_samples: int | None = None,
    n_examples: int = 3,
    labels: Sequence[str] = (),
) -> list[TicketCluster]:
    """Clusters of ``tickets`` (see :func:`cluster`), sorted by size, largest first; the cluster id
    hashes its sorted ticket ids. ``eps`` is a DBSCAN cosine radius; ``None``: HDBSCAN;
    ``labels`` the blast-radius label columns."""
    return cluster(tickets, embedder, eps=eps, min_samples=min_samples, n_examples=n_examples, labels=labels).clusters


def split_bursts(times: pd.Series | np.ndarray, labels: np.ndarray, max_gap: str | pd.Timedelta = "1h",
                 min_size: int = 5) -> np.ndarray:
    """Labels with each cluster's time bursts split off as clusters of their own.

    A burst is a maximal run of a cluster's tickets (in time order) with gaps of at most ``max_gap``
    and at least ``min_size`` tickets. When a cluster has a burst and anything else (another burst or
    scattered tickets), each burst gets a new label and the rest keeps the old one. Semantically
    alike complaints from different incidents ("login failing" for an auth failure on Tuesday and
    for a slowdown on Wednesday) fall into one theme; this separates them. Noise (-1) stays noise.
    """
    labels = np.asarray(labels)
    out = labels.copy()
    t = pd.to_datetime(pd.Series(np.asarray(times)), utc=True).dt.tz_localize(None).to_numpy()
    gap = pd.Timedelta(max_gap).to_timedelta64()
    nxt = int(labels.max()) + 1 if len(labels) else 0
    for c in np.unique(labels[labels >= 0]):
        idx = np.flatnonzero(labels == c)
        idx = idx[np.argsort(t[idx], kind="stable")]
        run = np.concatenate([[0], np.cumsum(np.diff(t[idx]) > gap)])
        sizes = np.bincount(run)
        bursts = np.flatnonzero(sizes >= min_size)
        if len(bursts) == 0 or (len(bursts) == 1 and sizes[bursts[0]] == len(idx)):
            continue
        for b in bursts:
            out[idx[run == b]] = nxt
            nxt += 1
    return out
