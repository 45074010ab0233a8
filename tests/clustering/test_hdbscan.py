"""HDBSCAN on the FAISS k-NN graph: separate themes, the giant-cluster guard and the noise vote."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from opsloop.clustering.dbscan import normalise
from opsloop.clustering.hdbscan import FaissHDBSCAN, attach_to_centroids

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


def test_noise_joins_a_cluster_only_as_close_as_its_members():
    rng = np.random.default_rng(3)
    a, b = normalise(rng.standard_normal((2, DIM)))
    x = normalise(np.vstack([_blob(rng, a, 30), _blob(rng, b, 30)]))
    labels = np.repeat([0, 1], 30)
    near = normalise((a + 0.05 * rng.standard_normal(DIM) / np.sqrt(DIM))[None])[0]  # inside cluster 0's spread
    far = normalise((a + b + 3 * rng.standard_normal(DIM))[None])[0]  # like neither
    out, attached = attach_to_centroids(np.vstack([x, near[None], far[None]]), np.concatenate([labels, [-1, -1]]))
    assert out[-2] == 0 and out[-1] == -1 and attached == 1
    assert out[:60].tolist() == labels.tolist()  # members keep their clusters
    assert attach_to_centroids(x, np.full(60, -1))[1] == 0  # no cluster: nothing to join
    model = FaissHDBSCAN(attach=False).fit(np.vstack([x, far[None]]))
    assert model.stats_.attached == 0


def test_tiny_inputs_and_bad_parameters():
    assert FaissHDBSCAN().fit_predict(np.zeros((0, 4))).shape == (0,)
    assert FaissHDBSCAN().fit_predict(normalise(np.eye(3))).tolist() == [-1, -1, -1]
    with pytest.raises(ValueError, match="min_samples"):
        FaissHDBSCAN(min_samples=20, n_neighbors=10).fit(normalise(np.eye(30)))
    with pytest.raises(ValueError, match="2-D"):
        FaissHDBSCAN().fit(np.zeros(5))


def test_attachment_never_takes_a_cluster_past_the_share():
    rng = np.random.default_rng(4)
    a, b = normalise(rng.standard_normal((2, DIM)))
    # a theme of 20, 60 unclustered tickets right next to it, and a far theme of 40
    x = normalise(np.vstack([_blob(rng, a, 80, spread=0.05), _blob(rng, b, 40, spread=0.05)]))
    labels = np.concatenate([np.zeros(20, int), np.full(60, -1), np.ones(40, int)])
    model = FaissHDBSCAN(max_share=None)
    dist, idx, _ = model._neighbours(x)
    free, n_free = model._attach(x, labels, dist, idx)
    assert n_free == 60 and (free[:80] == 0).all()  # without a share limit all 60 join the theme
    model.max_share = 0.25
    capped, n_capped = model._attach(x, labels, dist, idx)
    assert n_capped == 0 and capped.tolist() == labels.tolist()  # 80 of 120 would be past 25%
