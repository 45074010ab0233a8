"""The detector contract for every registered detector: causal (full-series scores equal the scores
of random prefixes and of a point-by-point loop), NaN in gives NaN out, input validation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from opsloop.detectors.base import NotFittedError
from opsloop.detectors.registry import REGISTRY, create

#: Parameters that let each detector warm up on a short series (period 24 where it has one).
SHORT = {
    "robust_z": {"window": 30, "min_periods": 10},
    "cusum": {"baseline": 30, "min_periods": 10},
    "poisson": {"baseline": 30, "min_periods": 5},
    "seasonal_drop": {"period": 24, "lags": 2, "min_periods": 10, "min_drop": 0.0},
    "stl_esd": {"period": 24, "min_periods": 10},
    "forecast": {"min_periods": 10},
    "ensemble": {"min_periods": 10},
    "error_rate": {"baseline": 30, "min_baseline_trials": 10},
    "ratio": {"baseline": 30, "min_buckets": 5},
}


def idx(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC")


def make_input(name: str, n: int, seed: int = 0) -> pd.Series | pd.DataFrame:
    """A noisy daily-seasonal series (counts for count detectors) with a few anomalies."""
    rng = np.random.default_rng(seed)
    cls, _ = REGISTRY[name]
    t = np.arange(n)
    if cls.columns == ("errors", "total"):
        total = rng.poisson(100, n)
        errors = rng.binomial(total, 0.01)
        errors[n // 2 : n // 2 + 3] = rng.binomial(total[n // 2 : n // 2 + 3], 0.4)
        return pd.DataFrame({"errors": errors, "total": total}, index=idx(n))
    if cls.columns == ("count", "total"):  # one log template's lines out of its service's lines
        total = rng.poisson(1000 + 300 * np.sin(2 * np.pi * t / 24)).astype(float)
        count = rng.binomial(total.astype(int), 0.02).astype(float)
        count[n // 2 : n // 2 + 3] = rng.binomial(total[n // 2 : n // 2 + 3].astype(int), 0.2)
        count[int(n * 0.3)] = np.nan
        total[int(n * 0.4)] = np.nan
        return pd.DataFrame({"count": count, "total": total}, index=idx(n))
    if cls.columns == ("downstream", "upstream"):
        up = rng.poisson(50, n)
        down = rng.binomial(up, 0.99)
        down[n // 2 : n // 2 + 3] = rng.binomial(up[n // 2 : n // 2 + 3], 0.5)
        return pd.DataFrame({"downstream": down, "upstream": up}, index=idx(n))
    lam = 30 + 10 * np.sin(2 * np.pi * t / 24)
    v = rng.poisson(lam).astype(float)
    v[int(n * 0.6)] += 60
    v[int(n * 0.8) :] -= 12
    v = np.maximum(v, 0)
    v[int(n * 0.3)] = np.nan
    return pd.Series(v, index=idx(n))


def _fitted(name: str, x):
    return create(name, **SHORT.get(name, {})).fit(x)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_full_series_equals_random_prefixes(name):
    x = make_input(name, 600)
    det = _fitted(name, x)
    full = det.score_samples(x).to_numpy()
    assert np.isfinite(full).sum() > 300, "the detector never scores"
    for end in np.random.default_rng(1).integers(50, 600, 5):
        part = det.score_samples(x.iloc[:end]).to_numpy()
        np.testing.assert_allclose(part, full[:end], rtol=1e-7, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_full_series_equals_point_by_point_loop(name):
    x = make_input(name, 90, seed=2)
    det = _fitted(name, x)
    full = det.score_samples(x).to_numpy()
    loop = np.array([det.score_samples(x.iloc[: t + 1]).iloc[-1] for t in range(len(x))])
    np.testing.assert_allclose(loop, full, rtol=1e-7, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_nan_in_gives_nan_out_and_frame_columns(name):
    x = make_input(name, 300)
    det = _fitted(name, x)
    frame = det.score_frame(x)
    assert {"score", "expected", "direction"} <= set(frame.columns)
    assert frame.index.equals(x.index) and frame["score"].dtype == float
    assert set(np.unique(frame["direction"].to_numpy())) <= {-1.0, 0.0, 1.0}
    missing = x.isna() if isinstance(x, pd.Series) else x.isna().any(axis=1)
    if isinstance(x, pd.Series) or name == "log_template":
        assert missing.any(), "the input should hold NaN"
    assert frame["score"][missing.to_numpy()].isna().all()


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_validation_errors(name):
    x = make_input(name, 120)
    det = create(name, **SHORT.get(name, {}))
    with pytest.raises(NotFittedError):
        det.score_samples(x)
    with pytest.raises(NotFittedError):
        det.predict(x)
    with pytest.raises(ValueError, match="UTC"):
        det.fit(x.tz_localize(None))
    det.fit(x)
    with pytest.raises(ValueError, match="sorted"):
        det.score_samples(x.iloc[::-1])
    with pytest.raises(ValueError, match="DatetimeIndex"):
        det.score_samples(x.reset_index(drop=True))
    with pytest.raises(ValueError):
        det.score_samples([1.0, 2.0])
    with pytest.raises(ValidationError):
        create(name, no_such_param=1)
    cfg = det.config
    with pytest.raises(ValidationError):
        cfg.threshold = 1.0  # frozen
    assert det.predict(x).dtype == bool


def test_grouped_runs_never_cross_series_and_match_flag_runs_per_series():
    from opsloop.detectors.intervals import flag_runs, grouped_runs

    codes = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    flags = np.array([0, 1, 1, 1, 1, 1, 0, 1], dtype=bool)  # one run would span the boundary
    assert grouped_runs(codes, flags) == [(1, 3), (4, 5), (7, 7)]
    assert grouped_runs(codes, flags, max_gap=1) == [(1, 3), (4, 7)]
    assert flag_runs(flags[4:], max_gap=1) == [(0, 3)]
    assert flag_runs(flags, min_len=2) == [(1, 5)]
