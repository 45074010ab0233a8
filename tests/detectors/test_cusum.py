"""CUSUM: a small sustained shift adds up; noise and a lone spike do not; the vectorised form
equals Page's recursion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.cusum import CusumConfig, CusumDetector, cusum_core


def idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")


def test_small_level_shift_is_found_and_direction_is_down():
    v = 100 + np.random.default_rng(0).normal(0, 1, 800)
    v[600:] -= 2.0  # two sd: robust z at one point would not flag it
    s = pd.Series(v, index=idx(800))
    det = CusumDetector(baseline=200, h=8).fit(s)
    flags = det.predict(s)
    frame = det.score_frame(s)
    first = int(np.flatnonzero(flags.to_numpy()[600:])[0]) + 600
    assert first < 620
    assert flags.iloc[100:600].sum() == 0
    assert frame["direction"].iloc[first] == -1
    assert frame["expected"].iloc[first] == pytest.approx(100, abs=1)


def test_lone_spike_is_clipped():
    v = 100 + np.random.default_rng(1).normal(0, 1, 400)
    v[300] += 50
    s = pd.Series(v, index=idx(400))
    score = CusumDetector(baseline=100, clip=6).fit(s).score_samples(s)
    assert score.iloc[300] <= (6 - 0.5) / 5 + 1e-9 + score.iloc[299]


def test_vectorised_form_equals_page_recursion():
    rng = np.random.default_rng(2)
    v = np.cumsum(rng.normal(0, 1, 500)) * 0.1 + rng.normal(0, 1, 500)
    cfg = CusumConfig(baseline=50, min_periods=10)
    score, _, level, scale = cusum_core(v, cfg)
    z = np.clip((v - level) / scale, -cfg.clip, cfg.clip)
    sp = sn = 0.0
    for t in range(len(v)):
        if t < cfg.min_periods:
            assert np.isnan(score[t])
            continue
        sp, sn = max(0.0, sp + z[t] - cfg.k), max(0.0, sn - z[t] - cfg.k)
        assert score[t] == pytest.approx(max(sp, sn) / cfg.h, abs=1e-9)


def test_rows_of_a_2d_batch_equal_single_series():
    rng = np.random.default_rng(3)
    m = rng.normal(0, 1, (3, 300))
    cfg = CusumConfig(baseline=50)
    batch, _, _, _ = cusum_core(m, cfg)
    for i in range(3):
        np.testing.assert_allclose(batch[i], cusum_core(m[i], cfg)[0], equal_nan=True)


def test_self_starting_mean_level_keeps_a_lasting_departure():
    """``level="mean"`` (self-starting, long memory) keeps accumulating a lasting moderate shift that
    the short-memory forecast baseline adopts and drains."""
    rng = np.random.default_rng(4)
    v = 100 + rng.normal(0, 1, 4500)
    v[4000:] += 1.5
    short = CusumConfig(baseline=300, k=1.0, min_periods=0)
    long_ = CusumConfig(baseline=5000, k=1.0, min_periods=0, level="mean")
    s_short = cusum_core(v, short)[0]
    s_long, direction, level, _ = cusum_core(v, long_)
    assert s_long[4499] > 10 * max(s_short[4499], 0.1)
    assert s_long[4499] > s_long[4300] > s_long[4100]
    assert direction[4499] == 1
    assert level[3999] == pytest.approx(100, abs=0.1)  # the running mean of the in-control points


def test_mean_level_is_causal_and_batches_row_by_row():
    rng = np.random.default_rng(5)
    v = np.cumsum(rng.normal(0, 1, 600)) * 0.05 + rng.normal(0, 1, 600)
    v[200] = np.nan
    cfg = CusumConfig(baseline=1000, min_periods=10, level="mean")
    full = cusum_core(v, cfg)[0]
    for n in (50, 201, 333, 599):
        np.testing.assert_allclose(cusum_core(v[:n], cfg)[0], full[:n], equal_nan=True)
    assert np.all(np.isnan(full[:10])) and not np.isnan(full[10])
    m = np.vstack([v, v[::-1], rng.normal(0, 1, 600)])
    batch = cusum_core(m, cfg)[0]
    for i in range(3):
        np.testing.assert_allclose(batch[i], cusum_core(m[i], cfg)[0], equal_nan=True)
