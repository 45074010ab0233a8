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
