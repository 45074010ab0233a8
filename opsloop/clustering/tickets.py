"""Ticket clustering: DBSCAN (Ester et al. 1996) on cosine distance between sentence embeddings.

Noise tickets (DBSCAN label -1) stay unclustered. Each cluster gets top terms by class-based TF-IDF
(Grootendorst 2022, BERTopic's c-TF-IDF), a label, the tickets closest to its centroid as examples,
its time span and the merchants and stages it touches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.feature_extraction.text import CountVectorizer

from opsloop.clustering.embedders import Embedder
from opsloop.domain import TicketCluster, stable_hash


def ticket_texts(tickets: pd.DataFrame) -> list[str]:
    """``subject. body`` per ticket row."""
    return (tickets["subject"].fillna("").astype(str) + ". " + tickets["body"].fillna("").astype(str)).tolist()


def class_tfidf_terms(texts: list[str], labels: np.ndarray, top_n: int = 5) -> dict[int, list[str]]:
    """Top ``top_n`` terms per cluster label (labels >= 0) by c-TF-IDF.

    Each cluster's texts are one document; weight = tf(term, cluster) · log(1 + A / f(term)), with A
    the mean number of words per cluster and f the term's frequency over all clusters.
    """
    clusters = sorted(int(c) for c in set(labels.tolist()) if c >= 0)
    if not clusters:
        return {}
    docs = [" ".join(t for t, lab in zip(texts, labels) if lab == c) for c in clusters]
    vec = CountVectorizer(stop_words="english", token_pattern=r"(?u)\b[a-zA-Z][a-zA-Z0-9_.]{2,}\b")
    tf = vec.fit_transform(docs).toarray().astype(float)
    words = np.asarray(vec.get_feature_names_out())
    tf_norm = tf / np.maximum(tf.sum(axis=1, keepdims=True), 1.0)
    avg_words = tf.sum() / len(clusters)
    idf = np.log1p(avg_words / np.maximum(tf.sum(axis=0), 1.0))
    weights = tf_norm * idf
    order = np.argsort(-weights, axis=1)[:, :top_n]
    return {c: words[order[i]].tolist() for i, c in enumerate(clusters)}


def _affected(rows: pd.DataFrame) -> dict[str, list[str]]:
    out = {}
    for col in ("merchant_id", "stage"):
        if col in rows:
            vals = sorted({str(v) for v in rows[col].dropna().tolist()})
            if vals:
                out[col] = vals
    return out


def cluster_tickets(
    tickets: pd.DataFrame, embedder: Embedder, eps: float = 0.35, min_samples: int = 4, n_examples: int = 3
) -> list[TicketCluster]:
    """Cluster ``tickets`` (a tickets-contract DataFrame) and describe each cluster.

    ``eps`` is a cosine distance (1 - cosine similarity). Returns clusters sorted by size, largest
    first; the cluster id hashes its sorted ticket ids.
    """
    if len(tickets) < min_samples:
        return []
    tickets = tickets.reset_index(drop=True)
    texts = ticket_texts(tickets)
    vecs = embedder.embed(texts)
    labels = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(vecs)
    terms = class_tfidf_terms(texts, labels)
    clusters = []
    for c, top in terms.items():
        members = np.flatnonzero(labels == c)
        rows = tickets.iloc[members]
        centroid = vecs[members].mean(axis=0)
        closest = members[np.argsort(-(vecs[members] @ centroid))[:n_examples]]
        examples = [
            {"id": str(tickets.at[i, "id"]), "subject": str(tickets.at[i, "subject"]),
             "created_at": tickets.at[i, "created_at"].isoformat()}
            for i in closest
        ]
        ids = sorted(rows["id"].astype(str).tolist())
        clusters.append(
            TicketCluster(
                id="cl-" + stable_hash(ids, 10),
                size=len(members),
                top_terms=top,
                examples=examples,
                label=examples[0]["subject"],
                first_seen=rows["created_at"].min().to_pydatetime(),
                last_seen=rows["created_at"].max().to_pydatetime(),
                affected=_affected(rows),
                ticket_ids=ids,
            )
        )
    return sorted(clusters, key=lambda cl: -cl.size)
