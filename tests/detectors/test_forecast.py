"""Exponential-smoothing forecast residuals: lfilter form equals the textbook recursions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.forecast import ForecastDetector, one_step_forecast


def idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")


@pytest.mark.parametrize("beta", [None, 0.2])
def test_filter_equals_holt_recursion(beta):
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(0, 1, 150)) + rng.normal(0, 1, 150)
    a = 0.3
    level, trend, f = x[0], 0.0, [np.nan]
    for t in range(1, 150):
        f.append(level + trend)
        new = a * x[t] + (1 - a) * (level + trend)
        trend = (beta * (new - level) + (1 - beta) * trend) if beta is not None else 0.0
        level = new
    np.testing.assert_allclose(one_step_forecast(x, a, beta), f, atol=1e-9, equal_nan=True)


def test_spike_found_on_a_trend_and_interval():
    n = 500
    v = 0.05 * np.arange(n) + np.random.default_rng(1).normal(0, 1, n)
    v[400] += 10
    s = pd.Series(v, index=idx(n))
    det = ForecastDetector(trend=True).fit(s)
    assert det.alpha_ in (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9) and det.beta_ is not None
    flags = det.predict(s)
    assert flags.iloc[400] and flags.sum() <= 4
    frame = det.score_frame(s)
    assert frame["lower"].iloc[450] < frame["expected"].iloc[450] < frame["upper"].iloc[450]
    assert frame["expected"].iloc[450] == pytest.approx(0.05 * 450, abs=2)
    assert frame["direction"].iloc[400] == 1


def test_level_shift_alarms_at_its_start_and_fixed_alpha_needs_no_fit_search():
    v = 10 + np.random.default_rng(2).normal(0, 0.5, 400)
    v[300:] -= 5
    s = pd.Series(v, index=idx(400))
    det = ForecastDetector(alpha=0.05).fit(s)
    assert det.alpha_ == 0.05 and det.can_batch()
    flags = det.predict(s)
    assert flags.iloc[300:305].all() and flags.iloc[:300].sum() <= 1
    assert not ForecastDetector().can_batch()


def test_shared_memo_tells_arrays_apart():
    """Within one shared memo, arrays created and dropped one after the other (whose buffers could
    be reused) and equal arrays in different buffers get their own (or the equal) results."""
    from opsloop.detectors.causal import count_seen, running_range
    from opsloop.detectors.forecast import robust_forecast, shared_forecasts

    rng = np.random.default_rng(6)
    with shared_forecasts():
        for _ in range(20):
            x = rng.normal(size=(3, 200))
            x[0, 5] = np.nan
            want = np.nanmax(x[:, :10], axis=1) - np.nanmin(x[:, :10], axis=1)
            np.testing.assert_allclose(running_range(x)[:, 10], want)
            np.testing.assert_array_equal(count_seen(x), np.cumsum(~np.isnan(x), axis=-1))
            f, _ = robust_forecast(x, 0.1, None, 50, 4.0)
            g, _ = robust_forecast(x.copy(), 0.1, None, 50, 4.0)  # equal content, other buffer
            np.testing.assert_array_equal(f, g)
            del x, f, g
