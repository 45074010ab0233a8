"""FAISS-graph DBSCAN against scikit-learn's brute-force cosine DBSCAN, and the k-distance knee."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import adjusted_rand_score

from opsloop.clustering.dbscan import FaissDBSCAN, knee_eps, kneedle, normalise
from opsloop.clustering.embedders import TfidfEmbedder
from opsloop.clustering.tickets import cluster, split_bursts


def blobs(n_per: int = 60, k: int = 5, dim: int = 32, spread: float = 0.3, n_noise: int = 30, seed: int = 0):
    """``k`` clusters on the unit sphere (angular spread ~``spread``) plus uniform noise; labels -1 noise."""
    rng = np.random.default_rng(seed)
    centres = normalise(rng.standard_normal((k, dim)))
    x = np.repeat(centres, n_per, axis=0) + spread * rng.standard_normal((k * n_per, dim)) / np.sqrt(dim)
    noise = rng.standard_normal((n_noise, dim))
    y = np.concatenate([np.repeat(np.arange(k), n_per), -np.ones(n_noise, dtype=int)])
    order = rng.permutation(len(y))
    return normalise(np.vstack([x, noise]))[order], y[order]


@pytest.mark.parametrize("eps", [0.03, 0.05, 0.08, 0.2])
@pytest.mark.parametrize("min_samples", [3, 5])
def test_exact_graph_gives_sklearn_labels(eps, min_samples):
    x, _ = blobs()
    x = np.vstack([x, x[:7], x[:3]])  # exact duplicates: distance 0 must count as a neighbour
    expected = DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit_predict(x)
    model = FaissDBSCAN(eps=eps, min_samples=min_samples, exact=True).fit(x)
    assert np.array_equal(model.labels_, expected)
    assert np.array_equal(model.core_sample_indices_,
                          DBSCAN(eps=eps, min_samples=min_samples, metric="cosine").fit(x).core_sample_indices_)
    assert model.graph_stats_.mode == "exact" and model.graph_stats_.n_distinct == len(x) - 10


def test_bounded_graph_keeps_core_points_and_labels():
    x, _ = blobs(n_per=120)
    expected = DBSCAN(eps=0.08, min_samples=4, metric="cosine").fit_predict(x)
    for max_neighbors in (8, 16, 64):
        got = FaissDBSCAN(eps=0.08, min_samples=4, exact=False, max_neighbors=max_neighbors).fit_predict(x)
        assert np.array_equal(got >= 0, expected >= 0)  # noise is exactly DBSCAN's
        assert adjusted_rand_score(expected, got) > 0.99
    # the cell (IVF-style) search used for large n, forced on a small set
    model = FaissDBSCAN(eps=0.08, min_samples=4, exact=False, flat_max_n=0, nlist=8, nprobe=8).fit(x)
    assert model.graph_stats_.index == "ivf"
    assert adjusted_rand_score(expected, model.labels_) > 0.99


def test_identical_points_form_a_cluster():
    x = np.vstack([np.tile([1.0, 0.0, 0.0], (3, 1)), np.eye(3)[1:]])
    labels = FaissDBSCAN(eps=0.01, min_samples=3).fit_predict(x)
    assert labels.tolist() == [0, 0, 0, -1, -1]


def test_knee_eps_is_sensible_on_blobs():
    x, y = blobs(n_per=80, spread=0.25, n_noise=40, seed=3)
    model = FaissDBSCAN(min_samples=4).fit(x)
    assert model.knee_ is not None and model.eps_ == model.knee_.eps
    assert 0.01 < model.eps_ < 0.5
    assert model.eps_ < np.median(1 - x[y == 0] @ x[y == 1].T)  # well below the between-cluster distance
    keep = model.labels_ >= 0
    assert adjusted_rand_score(y[keep], model.labels_[keep]) > 0.95
    assert (model.labels_[y == -1] == -1).mean() > 0.9


def test_kneedle_on_a_hockey_stick():
    curve = np.concatenate([np.linspace(0.0, 0.1, 90), np.linspace(0.2, 1.0, 10)])
    assert 85 <= kneedle(curve) <= 91
    assert knee_eps(curve, 4, eps_bounds=(0.05, 0.5)).eps == pytest.approx(curve[kneedle(curve)])
    assert knee_eps(np.full(10, 0.9), 4, eps_bounds=(0.05, 0.5)).eps == 0.5  # clipped


def test_parameters_are_validated():
    x, _ = blobs()
    with pytest.raises(ValueError, match="eps"):
        FaissDBSCAN(eps=0.0).fit(x)
    with pytest.raises(ValueError, match="max_neighbors"):
        FaissDBSCAN(eps=0.1, min_samples=10, max_neighbors=5).fit(x)
    assert FaissDBSCAN(eps=0.1).fit_predict(np.zeros((0, 4))).shape == (0,)


def _tickets(texts: list[str], hours: list[float]) -> pd.DataFrame:
    t0 = pd.Timestamp("2026-11-03 00:00", tz="UTC")
    return pd.DataFrame({
        "id": [f"T-{i}" for i in range(len(texts))],
        "created_at": [t0 + pd.Timedelta(hours=h) for h in hours],
        "subject": [t[:30] for t in texts], "body": texts,
        "merchant_id": [f"m_00{i % 3}" for i in range(len(texts))], "stage": "headless",
    })


def test_cluster_result_reports_eps_and_labels():
    texts = ["webhook delivery failed for our orders"] * 5 + ["refund the customer order please"] * 5 + ["invoice copy"]
    tickets = _tickets(texts, list(range(len(texts))))
    res = cluster(tickets, TfidfEmbedder(), min_cluster_size=5)
    assert res.eps_source == "hdbscan" and 0 <= res.eps < 0.01  # identical texts: tight themes (distance 0)
    assert len(res.clusters) == 2 and res.noise == ["T-10"]
    assert res.labels.tolist() == [0] * 5 + [1] * 5 + [-1] or res.labels.tolist() == [1] * 5 + [0] * 5 + [-1]
    assert res.centroids.shape[0] == 2
    assert np.allclose(np.linalg.norm(res.centroids, axis=1), 1.0, atol=1e-5)
    for i, c in enumerate(res.clusters):
        assert set(c.ticket_ids) == set(tickets["id"][res.labels == i])
    given = cluster(tickets, TfidfEmbedder(), eps=0.3, min_samples=3)
    assert given.eps_source == "given" and given.eps == 0.3


def test_cluster_affected_lists_the_callers_labels_only():
    texts = ["webhook delivery failed for our orders"] * 5 + ["refund the customer order please"] * 5
    tickets = _tickets(texts, list(range(len(texts))))
    assert all(c.affected == {} for c in cluster(tickets, TfidfEmbedder(), min_cluster_size=5).clusters)
    res = cluster(tickets, TfidfEmbedder(), min_cluster_size=5, labels=["stage", "merchant_id", "region"])
    webhook = next(c for c in res.clusters if "T-0" in c.ticket_ids)
    assert webhook.affected == {"stage": ["headless"], "merchant_id": ["m_000", "m_001", "m_002"]}


def test_split_bursts_separates_days_and_keeps_scatter():
    hours = [10, 10.2, 10.4, 10.5, 10.9, 34, 34.1, 34.3, 34.5, 34.6, 50, 80]
    labels = np.zeros(len(hours), dtype=int)
    out = split_bursts(pd.Series(pd.Timestamp("2026-11-03", tz="UTC") + pd.to_timedelta(hours, unit="h")), labels)
    assert len(set(out[:5])) == 1 and len(set(out[5:10])) == 1 and out[0] != out[5]
    assert out[10] == out[11] == 0


def test_cluster_handles_empty_and_tiny_inputs():
    empty = _tickets([], [])
    res = cluster(empty, TfidfEmbedder())
    assert res.clusters == [] and res.noise == [] and res.labels.shape == (0,)
    two = cluster(_tickets(["webhook failed", "webhook failed"], [0, 1]), TfidfEmbedder())
    assert two.clusters == [] and two.noise == ["T-0", "T-1"] and two.eps_source == "hdbscan"
    given = cluster(_tickets(["webhook failed", "webhook failed"], [0, 1]), TfidfEmbedder(), eps=0.2, min_samples=4)
    assert given.clusters == [] and given.noise == ["T-0", "T-1"] and given.eps == 0.2
