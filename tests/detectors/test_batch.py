"""score_long: many series of a long frame, batched (2-D) or one by one, same scores as alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.batch import score_long
from opsloop.detectors.registry import REGISTRY, create

BATCHABLE = sorted(n for n, (cls, _) in REGISTRY.items() if cls.batchable)


def long_frame(m: int = 6, n: int = 400, freq: str = "1min", ragged: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ts = pd.date_range("2026-01-01", periods=n, freq=freq, tz="UTC")
    rows = []
    for i in range(m):
        v = np.abs(50 + rng.normal(0, 2, n))
        v[min(300 + i, n - 1)] += 30
        k = n - 7 * i if ragged else n
        rows.append(pd.DataFrame({"metric": f"m{i % 2}", "stage": f"s{i}", "ts": ts[:k], "value": v[:k]}))
    return pd.concat(rows, ignore_index=True).sample(frac=1.0, random_state=1)  # any row order


@pytest.mark.parametrize("name", BATCHABLE)
def test_batch_scores_equal_single_series_scores(name):
    df = long_frame()
    out = score_long(df, name, key_cols=("metric", "stage"))
    assert list(out.columns) == ["metric", "stage", "ts", "value", "score", "direction"]
    assert len(out) == len(df)
    for (metric, stage), grp in out.groupby(["metric", "stage"]):
        src = df[(df.metric == metric) & (df.stage == stage)].sort_values("ts")
        s = pd.Series(src["value"].to_numpy(), index=pd.DatetimeIndex(src["ts"]))
        det = create(name).fit(s)
        np.testing.assert_allclose(grp["score"].to_numpy(), det.score_samples(s).to_numpy(), rtol=1e-7,
                                   atol=1e-9, equal_nan=True)
        assert grp["ts"].is_monotonic_increasing


def test_ragged_series_fall_back_to_one_by_one_and_flag_the_spikes():
    df = long_frame(ragged=True)
    out = score_long(df, "ensemble", key_cols=("metric", "stage"))
    for i, (_, grp) in enumerate(out.groupby("stage", sort=True)):
        assert grp["score"].iloc[300 + i] > 0.9995


def test_non_batchable_detector_and_validation():
    df = long_frame(m=2, n=200)
    out = score_long(df, "stl_esd", key_cols=("metric", "stage"))
    assert out["score"].notna().sum() > 100
    with pytest.raises(ValueError, match="missing"):
        score_long(df.drop(columns="value"), "ensemble", key_cols=("metric", "stage"))
    with pytest.raises(ValueError, match="UTC"):
        score_long(df.assign(ts=df["ts"].dt.tz_localize(None)), "ensemble", key_cols=("metric", "stage"))
    with pytest.raises(KeyError):
        score_long(df, "no_such", key_cols=("metric", "stage"))
    assert score_long(df.iloc[:0], "ensemble", key_cols=("metric", "stage")).empty
