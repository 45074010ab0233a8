"""Variance change: noise that halves or doubles inside the old range alarms; noise and cycles do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.ensemble import DEFAULT_MEMBERS
from opsloop.detectors.registry import create


def series(v: np.ndarray) -> pd.Series:
    return pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq="5min", tz="UTC"))


def test_variance_drop_scores_on_its_own_and_in_the_ensemble():
    rng = np.random.default_rng(0)
    v = 50 + rng.normal(0, 4, 5000)
    v[4000:] = 50 + rng.normal(0, 0.5, 1000)  # the amplitude falls eightfold: no new record, no level shift
    s = series(v)
    frame = create("scale_change").fit(s).score_frame(s)
    assert frame["score"].iloc[4030:4100].max() > np.log(4)
    assert (frame["direction"].iloc[4030:4100] == -1).all()
    assert frame["score"].iloc[500:4000].max() < np.log(2)
    ens = create("ensemble").fit(s).score_frame(s).iloc[4000:4200]
    # above the operating point NAB's sweep chooses (about 0.9989), and raised by this member
    assert ens["score"].max() > 0.999
    assert ens["member"].loc[ens["score"].idxmax()] == "scale_change"
    members = tuple(m for m in DEFAULT_MEMBERS if m.name != "scale_change")
    without = create("ensemble", members=members).fit(s).score_frame(s).iloc[4000:4200]
    assert without["score"].max() < 0.99


def test_variance_rise_scores_up():
    rng = np.random.default_rng(1)
    v = 50 + rng.normal(0, 1, 3000)
    v[2000:2100] = 50 + rng.normal(0, 3, 100)
    s = series(v)
    frame = create("scale_change").fit(s).score_frame(s)
    at = frame["score"].iloc[2000:2100].idxmax()
    assert frame["score"].loc[at] > np.log(2)
    assert frame["direction"].loc[at] == 1


def test_pure_noise_and_a_daily_cycle_stay_below_the_floor():
    rng = np.random.default_rng(2)
    t = np.arange(4000)
    for amp in (0.0, 10.0, 30.0):  # successive differences cancel a smooth cycle (5-minute data)
        for _ in range(3):
            s = series(100 + amp * np.sin(2 * np.pi * t / 288) + rng.normal(0, 1, 4000))
            score = create("scale_change").fit(s).score_frame(s)["score"]
            assert score.iloc[300:].max() < np.log(2)


def test_batch_matches_single_series():
    rng = np.random.default_rng(3)
    v = rng.normal(0, 1, (3, 800))
    det = create("scale_change")
    score, _ = det._score_array(v, 300.0)
    single = det.fit(series(v[1])).score_frame(series(v[1]))["score"].to_numpy()
    np.testing.assert_allclose(score[1], single, equal_nan=True)
