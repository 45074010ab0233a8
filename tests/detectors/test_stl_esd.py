"""Causal S-H-ESD: seasonal profile from history only, ESD critical value as the threshold."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.stl_esd import StlEsdDetector, causal_seasonal_profile, esd_critical_value


def daily(days: int = 6, seed: int = 0, freq: str = "1h") -> pd.Series:
    per = {"1h": 24, "5min": 288}[freq]
    n = days * per
    t = np.arange(n)
    v = 50 + 20 * np.sin(2 * np.pi * t / per) + np.random.default_rng(seed).normal(0, 1, n)
    return pd.Series(v, index=pd.date_range("2026-01-01", periods=n, freq=freq, tz="UTC"))


def test_spike_and_seasonal_dip_found_daily_cycle_not_flagged():
    s = daily(days=8)
    s.iloc[24 * 6 + 5] += 12  # spike
    s.iloc[24 * 7 + 10 : 24 * 7 + 13] -= 10  # dip at a time of day
    det = StlEsdDetector().fit(s)
    assert det.period_ == 24
    flags = det.predict(s)
    assert flags.iloc[24 * 6 + 5]
    assert flags.iloc[24 * 7 + 10 : 24 * 7 + 13].all()
    assert flags.sum() <= 6
    frame = det.score_frame(s)
    assert frame["direction"].iloc[24 * 7 + 11] == -1
    assert frame["score"].iloc[: 2 * 24].isna().all()  # no profile before two periods of history


def test_threshold_is_rosner_critical_value():
    # lambda_1 is Grubbs' two-sided critical value: 3.128 for n=50 at alpha=0.05 (Grubbs tables)
    assert esd_critical_value(50, 0.05) == pytest.approx(3.128, abs=0.002)
    assert esd_critical_value(50, 0.05, i=2) < esd_critical_value(50, 0.05)
    det = StlEsdDetector(window=50).fit(daily())
    assert det.threshold_ == pytest.approx(esd_critical_value(50, 0.05))
    assert StlEsdDetector(threshold=5.0).fit(daily()).threshold_ == 5.0


def test_profile_uses_only_earlier_blocks():
    s = daily(days=5).to_numpy()
    prof = causal_seasonal_profile(s, 24, history=4, min_history=2, robust=False)
    changed = s.copy()
    changed[24 * 3 :] += 100  # the future of block 3 must not change its profile
    prof2 = causal_seasonal_profile(changed, 24, history=4, min_history=2, robust=False)
    np.testing.assert_allclose(prof[: 24 * 4], prof2[: 24 * 4], equal_nan=True)
    assert np.isnan(prof[: 48]).all() and np.isfinite(prof[48:]).all()


def test_no_season_falls_back_to_trailing_median():
    rng = np.random.default_rng(3)
    s = pd.Series(10 + rng.normal(0, 1, 300), index=pd.date_range("2026-01-01", periods=300, freq="1min", tz="UTC"))
    s.iloc[250] = 25
    det = StlEsdDetector().fit(s)
    assert det.period_ is None
    assert det.predict(s).iloc[250] and det.predict(s).sum() <= 3
