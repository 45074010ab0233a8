"""Prefix causality: a prefix scores as it does within the whole series (no look-ahead)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.batch import score_long
from opsloop.detectors.registry import create
from opsloop.evaluation.causality import prefix_causality
from tests.conftest import shared_dataset

#: A sample of real files: the one whose season the old ``fit`` chose from the whole series, hourly,
#: 30-minute and 5-minute NAB files, and SMAP/MSL channels.
SAMPLE = (
    ("nab", "realKnownCause/ambient_temperature_system_failure.csv"),
    ("nab", "realKnownCause/nyc_taxi.csv"),
    ("nab", "realAWSCloudwatch/ec2_cpu_utilization_5f5533.csv"),
    ("nab", "artificialWithAnomaly/art_daily_jumpsup.csv"),
    ("smap_msl", "SMAP/A-1.csv"),
    ("smap_msl", "MSL/C-1.csv"),
)


def _read(corpus: str, key: str) -> pd.Series:
    path = shared_dataset(corpus, "data", key)
    raw = pd.read_csv(path)
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    s = pd.Series(pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float), index=pd.DatetimeIndex(ts))
    return s[~s.index.duplicated()].sort_index()


@pytest.mark.parametrize(("corpus", "key"), SAMPLE)
def test_default_ensemble_is_prefix_causal_on_real_files(corpus, key):
    check = prefix_causality(lambda: create("ensemble"), _read(corpus, key))
    assert check.ok, f"{key}: prefixes {check.failed_at} differ by up to {check.worst}"


def test_batch_path_is_prefix_causal_too():
    """``score_long`` (the pipeline's path) gives a prefix the scores it gives within the whole."""
    s = _read("nab", "realKnownCause/ambient_temperature_system_failure.csv")
    s = s.asfreq("1h")  # one equally spaced grid (a few hours are missing: NaN)
    frame = pd.DataFrame({"ts": s.index, "metric": "m", "value": s.to_numpy()})
    full = score_long(frame, "ensemble")["score"].to_numpy()
    k = int(0.6 * len(frame))
    part = score_long(frame.iloc[:k], "ensemble")["score"].to_numpy()
    np.testing.assert_allclose(part, full[:k], rtol=1e-9, atol=1e-12, equal_nan=True)


class _Peeking(BaseDetector):
    """Scores each point by its distance from the mean of the *whole* series (look-ahead)."""

    name = "peeking"
    config_cls = DetectorConfig

    def _score(self, x: pd.Series) -> pd.DataFrame:
        v = x.to_numpy(dtype=float)
        return pd.DataFrame({"score": np.abs(v - v.mean()), "expected": v.mean()}, index=x.index)


def test_a_detector_that_looks_ahead_fails_the_check():
    rng = np.random.default_rng(0)
    v = np.r_[rng.normal(0, 1, 600), rng.normal(5, 1, 400)]
    s = pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq="5min", tz="UTC"))
    check = prefix_causality(lambda: _Peeking(threshold=1.0), s)
    assert not check.ok and check.worst > 0.5 and len(check.failed_at) == 3
    assert prefix_causality(lambda: create("robust_z"), s).ok


def test_fractions_must_lie_strictly_between_zero_and_one():
    s = pd.Series(np.arange(100.0), index=pd.date_range("2026-01-01", periods=100, freq="5min", tz="UTC"))
    with pytest.raises(ValueError, match="fractions"):
        prefix_causality(lambda: create("robust_z"), s, fractions=(1.0,))
