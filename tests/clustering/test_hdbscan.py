"""HDBSCAN on the FAISS k-NN graph: separate themes, the giant-cluster guard and the noise vote."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from opsloop.clustering.dbscan import normalise
from opsloop.clustering.hdbscan import FaissHDBSCAN, vote_noise

DIM = 32


def _blob(rng, centre, n, spread=0.12):
    return centre + spread * rng.standard_normal((n, DIM)) / np.sqrt(DIM)


def _overlapping(seed=0, sep=0.12):
    """Four overlapping sub-themes of 100 around one centre (which plain HDBSCAN merges) and a far
    theme of 30."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal(DIM)
    subs = [base + sep * rng.standard_normal(DIM) / np.sqrt(DIM) for _ in range(4)]
    x = normalise(np.vstack([_blob(rng, s, 100) for s in subs] + [_blob(rng, rng.standard_normal(DIM), 30)]))
    return x, np.repeat(np.arange(5), [100, 100, 100, 100, 30])


def _largest_share(labels):
    return np.bincount(labels[labels >= 0]).max() / len(labels)


def test_separate_themes_are_found_with_their_sizes():
    rng = np.random.default_rng(1)
    x = normalise(np.vstack([_blob(rng, rng.standard_normal(DIM), n) for n in (60, 40, 25)]))
    y = np.repeat([0, 1, 2], [60, 40, 25])
    model = FaissHDBSCAN().fit(x)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    assert sorted(np.bincount(model.labels_).tolist()) == [25, 40, 60]
    assert model.stats_.split == 0 and model.stats_.index == "flat"


def test_guard_splits_a_giant_cluster():
    x, y = _overlapping()
    unguarded = FaissHDBSCAN(max_share=None).fit_predict(x)
    assert _largest_share(unguarded) > 0.8  # the four sub-themes chain into one
    model = FaissHDBSCAN().fit(x)
    assert model.stats_.split >= 1
    assert _largest_share(model.labels_) <= 0.25
    assert adjusted_rand_score(y, model.labels_) > adjusted_rand_score(y, unguarded) + 0.3
    # the far theme is untouched
    far = model.labels_[y == 4]
    assert (far == far[0]).all() and far[0] >= 0 and not (model.labels_[y != 4] == far[0]).any()


def test_guard_keeps_one_dominant_theme_whole():
    rng = np.random.default_rng(2)
    x = normalise(np.vstack([_blob(rng, rng.standard_normal(DIM), n) for n in (300, 20, 20)]))
    labels = FaissHDBSCAN().fit_predict(x)
    assert (labels[:300] == labels[0]).all() and labels[0] >= 0  # 88% of the points, one theme


def test_vote_attaches_only_points_within_a_core_radius():
    # points 0-3 are a cluster (core radius 0.1); 4 is 0.05 from them, 5 is 0.9 away
    labels = np.array([0, 0, 0, 0, -1, -1])
    idx = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2], [0, 1, 2], [0, 1, 2]])
    dist = np.array([[0.1] * 3] * 4 + [[0.05] * 3, [0.9] * 3])
    core = np.array([0.1, 0.1, 0.1, 0.1, 0.05, 0.9])
    out, attached = vote_noise(labels, dist, idx, core)
    assert out.tolist() == [0, 0, 0, 0, 0, -1] and attached == 1
    assert vote_noise(np.full(3, -1), dist[:3], idx[:3, :2] % 3, core[:3])[1] == 0  # no cluster, no vote


def test_tiny_inputs_and_bad_parameters():
    assert FaissHDBSCAN().fit_predict(np.zeros((0, 4))).shape == (0,)
    assert FaissHDBSCAN().fit_predict(normalise(np.eye(3))).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="min_samples"):
        FaissHDBSCAN(min_samples=20, n_neighbors=10).fit(normalise(np.eye(30)))
    with pytest.raises(ValueError, match="2-D"):
        FaissHDBSCAN().fit(np.zeros(5))
