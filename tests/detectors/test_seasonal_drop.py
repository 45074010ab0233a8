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


def test_seasonal_dip_found_against_the_same_time_yesterday():
    s = daily()
    s.iloc[6 * 288 + 100 : 6 * 288 + 124] -= 0.03  # a 10% dip at one time of day
    det = SeasonalDropDetector().fit(s)
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
    """Noise without a season: once the daily candidate has had its chance (two days here) the
    trailing level stays the expectation, and a drop against it is found."""
    rng = np.random.default_rng(2)
    s = pd.Series(50 + rng.normal(0, 1, 1500), index=pd.date_range("2026-01-01", periods=1500, freq="5min", tz="UTC"))
    s.iloc[1400:1420] -= 10
    det = SeasonalDropDetector().fit(s)
    frame = det.score_frame(s)
    flags = det.predict(s)
    assert flags.iloc[1402:1420].all() and flags.iloc[:1400].sum() == 0
    assert frame["score"].iloc[3 * 288 + 10 :].notna().all()  # scored from three days on


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


def test_season_is_chosen_from_the_past_only():
    """The daily season is adopted once a day of its residuals beats the trailing level; a prefix
    scores exactly as it does within the longer series (the choice never looks ahead)."""
    s = daily(days=6, seed=3)
    det = SeasonalDropDetector(direction="both")
    frame = det.fit(s).score_frame(s)
    # after two days the expectation is yesterday's value (the median of the seasons seen), not a level
    t = 4 * 288 + 72  # the daily peak
    assert abs(frame["expected"].iloc[t] - s.iloc[t - 288]) < 0.02
    for k in (300, 700, 1300):
        part = det.fit(s.iloc[:k]).score_frame(s.iloc[:k])["score"].to_numpy()
        np.testing.assert_allclose(part, frame["score"].to_numpy()[:k], equal_nan=True)
