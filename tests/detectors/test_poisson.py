"""Poisson tail test of counts: a burst is found, quiet noise and tiny counts are not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from opsloop.detectors.poisson import PoissonDetector


def idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC")


def test_count_burst():
    k = np.random.default_rng(0).poisson(20, 600).astype(float)
    k[500:505] += 60
    s = pd.Series(k, index=idx(600))
    det = PoissonDetector().fit(s)
    flags = det.predict(s)
    assert flags.iloc[500:505].all()
    assert flags.iloc[:500].sum() == 0
    frame = det.score_frame(s)
    assert frame["expected"].iloc[500] == pytest.approx(20, rel=0.1)
    assert frame["direction"].iloc[500] == 1


def test_score_is_the_exact_poisson_tail_without_overdispersion():
    k = np.full(100, 10.0)
    k[-1] = 25
    s = pd.Series(k, index=idx(100))
    det = PoissonDetector(overdispersion=False, prior_weight=0.0, min_ratio=1.0).fit(s)
    expected = -np.log10(stats.poisson.sf(24, 10.0))
    assert det.score_samples(s).iloc[-1] == pytest.approx(expected, rel=1e-6)


def test_overdispersed_noise_is_not_a_burst():
    rng = np.random.default_rng(1)
    k = rng.negative_binomial(5, 5 / (5 + 50), 2000).astype(float)  # mean 50, variance 550
    s = pd.Series(k, index=idx(2000))
    assert PoissonDetector().fit(s).predict(s).sum() <= 2
    assert PoissonDetector(overdispersion=False).fit(s).predict(s).sum() > 20


def test_tiny_counts_and_negative_counts():
    s = pd.Series([0.0] * 100 + [3.0], index=idx(101))
    assert not PoissonDetector().fit(s).predict(s).any()
    with pytest.raises(ValueError, match="non-negative"):
        PoissonDetector().fit(s).score_samples(pd.Series([1.0, -1.0], index=idx(2)))
