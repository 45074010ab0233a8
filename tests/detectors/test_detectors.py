"""Hand-written series with expected labels, run through every detector (after ADTK's tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from opsloop.detectors.base import NotFittedError
from opsloop.detectors.error_rate import ErrorRateDetector
from opsloop.detectors.intervals import flag_runs
from opsloop.detectors.ratio import RatioDetector
from opsloop.detectors.registry import REGISTRY, create
from opsloop.detectors.robust_z import RobustZDetector


def idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")


def noisy(n: int, seed: int = 0, level: float = 100.0, sd: float = 1.0) -> np.ndarray:
    return level + np.random.default_rng(seed).normal(0, sd, n)


def test_robust_z_flags_a_spike_and_nothing_else():
    v = noisy(400)
    v[300] += 25
    s = pd.Series(v, index=idx(400))
    flags = RobustZDetector(window=120, min_periods=30, smooth=1).fit(s).predict(s)
    assert flags.iloc[300]
    assert flags.sum() <= 3


def test_robust_z_level_shift_and_direction():
    v = noisy(500)
    v[350:] -= 10
    s = pd.Series(v, index=idx(500))
    down = RobustZDetector(window=120, min_periods=30, smooth=5, direction="down").fit(s)
    up = RobustZDetector(window=120, min_periods=30, smooth=5, direction="up").fit(s)
    assert down.predict(s).iloc[352:360].all()
    assert not up.predict(s).iloc[340:400].any()
    frame = down.score_frame(s)
    assert frame["expected"].iloc[355] == pytest.approx(100, abs=1)
    assert frame["lower"].iloc[355] < frame["expected"].iloc[355] < frame["upper"].iloc[355]


def test_robust_z_seasonal_dip_is_found_below_a_slow_cycle():
    n = 1440
    t = np.arange(n)
    v = 100 + 20 * np.sin(2 * np.pi * t / 1440) + np.random.default_rng(1).normal(0, 1, n)
    v[900:930] -= 15
    s = pd.Series(v, index=idx(n))
    flags = RobustZDetector(window=60, min_periods=30, smooth=1, direction="down").fit(s).predict(s)
    assert flags.iloc[905:930].any()
    assert flags.iloc[:890].sum() <= 2  # the trailing median lags the cycle a little


def test_robust_z_is_causal_and_nan_in_gives_nan_out():
    v = noisy(300)
    v[100] = np.nan
    s = pd.Series(v, index=idx(300))
    det = RobustZDetector(window=60, min_periods=20).fit(s)
    full = det.score_samples(s)
    prefix = det.score_samples(s.iloc[:200])
    np.testing.assert_allclose(full.iloc[:200].to_numpy(), prefix.to_numpy(), equal_nan=True)
    assert np.isnan(full.iloc[100])
    assert full.iloc[:20].isna().all()  # warm-up


def test_robust_z_flat_series_that_jumps():
    v = np.full(200, 5.0)
    v[150] = 6.0
    s = pd.Series(v, index=idx(200))
    det = RobustZDetector(window=50, min_periods=10, smooth=1).fit(s)
    assert det.predict(s).iloc[150]
    assert det.predict(s).sum() == 1


def _errors(n: int, burst: slice, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    total = rng.poisson(100, n)
    errors = rng.binomial(total, 0.002)
    errors[burst] = rng.binomial(total[burst], 0.5)
    return pd.DataFrame({"errors": errors, "total": total}, index=idx(n))


def test_error_rate_count_burst():
    x = _errors(300, slice(200, 210))
    det = ErrorRateDetector().fit(x)
    flags = det.predict(x)
    assert flags.iloc[200]
    assert flags.iloc[:200].sum() == 0
    assert det.score_frame(x)["expected"].iloc[200] < 2


def test_error_rate_ignores_tiny_counts():
    x = pd.DataFrame({"errors": [0] * 100 + [2], "total": [100] * 101}, index=idx(101))
    assert not ErrorRateDetector().fit(x).predict(x).any()


def test_ratio_break():
    rng = np.random.default_rng(3)
    up = rng.poisson(50, 300)
    down = rng.binomial(up, 0.999)
    down[250:270] = rng.binomial(up[250:270], 0.55)
    x = pd.DataFrame({"downstream": down, "upstream": up}, index=idx(300))
    flags = RatioDetector().fit(x).predict(x)
    assert flags.iloc[250:270].all()
    assert flags.iloc[:250].sum() == 0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_every_detector_validates_input_and_is_causal(name):
    cls, _ = REGISTRY[name]
    n = 300
    if cls.columns == ("errors", "total"):
        x = _errors(n, slice(250, 255))
    elif cls.columns == ("count", "total"):
        rng = np.random.default_rng(0)
        total = rng.poisson(500, n)
        x = pd.DataFrame({"count": rng.binomial(total, 0.05), "total": total}, index=idx(n))
    elif cls.columns:
        rng = np.random.default_rng(0)
        up = rng.poisson(50, n)
        x = pd.DataFrame({"downstream": rng.binomial(up, 0.99), "upstream": up}, index=idx(n))
    else:
        x = pd.Series(noisy(n), index=idx(n))
    det = create(name)
    with pytest.raises(NotFittedError):
        det.score_samples(x)
    det.fit(x)
    scores = det.score_samples(x)
    assert scores.index.equals(x.index) and scores.dtype == float
    np.testing.assert_allclose(det.score_samples(x.iloc[:200]).to_numpy(), scores.iloc[:200].to_numpy(), equal_nan=True)
    with pytest.raises(ValueError, match="UTC"):
        det.score_samples(x.tz_localize(None))
    with pytest.raises(ValueError, match="sorted"):
        det.score_samples(x.iloc[::-1])
    with pytest.raises(ValidationError):
        create(name, no_such_param=1)


def test_flag_runs_merges_gaps_and_drops_short_runs():
    f = np.array([0, 1, 1, 0, 1, 0, 0, 0, 1, 0], dtype=bool)
    assert flag_runs(f) == [(1, 2), (4, 4), (8, 8)]
    assert flag_runs(f, max_gap=1) == [(1, 4), (8, 8)]
    assert flag_runs(f, max_gap=1, min_len=2) == [(1, 4)]


def _sparse_failure(spans: tuple[int, ...]) -> pd.Series:
    """Two calls a bucket for two days, no errors; then one call of five in a row fails per three
    buckets for 90 minutes (5 errors in all, never 5 in one window of 3 buckets)."""
    n = 600
    errors = np.zeros(n)
    errors[[580, 583, 586, 589, 592]] = 1
    x = pd.DataFrame({"errors": errors, "total": np.full(n, 2.0)}, index=idx(n))
    return ErrorRateDetector(spans=spans).fit(x).predict(x)


def test_error_rate_scan_windows_add_up_sustained_small_counts():
    assert not _sparse_failure((3,)).any()  # no 15-minute window holds 5 errors
    flags = _sparse_failure((3, 6, 12, 24, 48))
    assert flags.iloc[592:].any() and not flags.iloc[:580].any()


def test_ratio_scan_windows_see_a_slow_stage_lose_half_its_events():
    rng = np.random.default_rng(5)
    up = rng.poisson(1.0, 700).astype(float)  # one upstream event per bucket: too few for one window
    down = rng.binomial(up.astype(int), 0.95).astype(float)
    down[640:688] = rng.binomial(up[640:688].astype(int), 0.4)  # four hours at 40%
    x = pd.DataFrame({"downstream": down, "upstream": up}, index=idx(700))
    assert not RatioDetector(spans=(3,)).fit(x).predict(x).any()
    flags = RatioDetector(spans=(3, 6, 12, 24, 48)).fit(x).predict(x)
    assert flags.iloc[640:700].any() and not flags.iloc[:640].any()
