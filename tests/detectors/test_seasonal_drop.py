"""Seasonal drop: a dip at a time of day is found against the same time on previous days."""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.seasonal_drop import SeasonalDropDetector


def daily(days: int = 8, seed: int = 0) -> pd.Series:
    n = days * 288
    t = np.arange(n)
    v = 0.3 + 0.1 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(seed).normal(0, 0.005, n)
    return pd.Series(v, index=pd.date_range("2026-01-01", periods=n, freq="5min", tz="UTC"))


def test_seasonal_dip_found_and_period_detected():
    s = daily()
    s.iloc[6 * 288 + 100 : 6 * 288 + 124] -= 0.03  # a 10% dip at one time of day
    det = SeasonalDropDetector().fit(s)
    assert det.period_ == 288
    flags = det.predict(s)
    assert flags.iloc[6 * 288 + 102 : 6 * 288 + 124].all()
    assert flags.iloc[: 6 * 288 + 100].sum() == 0
    frame = det.score_frame(s)
    assert frame["direction"].iloc[6 * 288 + 110] == -1
    assert abs(frame["expected"].iloc[6 * 288 + 110] - s.iloc[5 * 288 + 110]) < 0.02


def test_a_rise_is_not_a_drop_and_the_daily_cycle_is_not_flagged():
    s = daily(seed=1)
    s.iloc[6 * 288 + 100 : 6 * 288 + 124] += 0.05
    assert not SeasonalDropDetector().fit(s).predict(s).any()
    assert SeasonalDropDetector(direction="up").fit(s).predict(s).iloc[6 * 288 + 102 : 6 * 288 + 124].all()


def test_no_season_falls_back_to_the_trailing_median():
    rng = np.random.default_rng(2)
    s = pd.Series(50 + rng.normal(0, 1, 500), index=pd.date_range("2026-01-01", periods=500, freq="5min", tz="UTC"))
    s.iloc[400:420] -= 10
    det = SeasonalDropDetector().fit(s)
    assert det.period_ is None
    flags = det.predict(s)
    assert flags.iloc[402:420].all() and flags.iloc[:400].sum() == 0


def test_median_of_three_seasons_equals_nanmedian():
    """The sort-free median of three lags equals ``np.nanmedian`` (one, two or three values there)."""
    import warnings

    from opsloop.detectors.causal import lag
    from opsloop.detectors.seasonal_drop import seasonal_expectation

    rng = np.random.default_rng(5)
    v = rng.normal(size=(4, 400))
    v[rng.random(v.shape) < 0.3] = np.nan
    stack = np.stack([lag(v, 50 * j) for j in (1, 2, 3)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        med = np.nanmedian(stack, axis=0)
    for min_lags in (1, 2, 3):
        want = np.where(np.sum(~np.isnan(stack), axis=0) >= min_lags, med, np.nan)
        np.testing.assert_array_equal(seasonal_expectation(v, 50, 3, min_lags, 60), want)
