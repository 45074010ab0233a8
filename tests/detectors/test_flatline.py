"""Flat line: a series stuck at one value longer than ever before alarms once; ordinary repeats do not."""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.ensemble import DEFAULT_MEMBERS
from opsloop.detectors.flatline import run_lengths
from opsloop.detectors.registry import create


def series(v: np.ndarray) -> pd.Series:
    return pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq="5min", tz="UTC"))


def stuck_at_zero(seed: int = 0, stuck_from: int = 3000, stuck_for: int = 400) -> np.ndarray:
    """Disk writes: bursts of activity between idle stretches of exact zeros (at most 100 points),
    then the counter sticks at 0 for ``stuck_for`` points."""
    rng = np.random.default_rng(seed)
    v = np.zeros(4000)
    i = 0
    while i < len(v):
        idle = int(rng.integers(20, 101))
        busy = int(rng.integers(5, 30))
        v[i + idle : i + idle + busy] = rng.lognormal(10, 1, max(0, min(busy, len(v) - i - idle)))
        i += idle + busy
    v[stuck_from : stuck_from + stuck_for] = 0.0
    return v


def test_run_lengths_count_repeats_and_the_earlier_record():
    length, longest = run_lengths(np.array([1.0, 1, 1, 2, 2, np.nan, 3, 3, 3, 3]))
    assert length.tolist() == [0, 1, 2, 0, 1, 0, 0, 1, 2, 3]
    assert longest.tolist() == [0, 0, 0, 2, 2, 2, 2, 2, 2, 2]


def test_a_stuck_counter_alarms_once_inside_its_stuck_stretch():
    v = stuck_at_zero()
    s = series(v)
    score = create("flatline").fit(s).score_frame(s)["score"]
    hits = np.flatnonzero(score.to_numpy() > 0)
    assert len(hits) == 1
    assert 3000 + 100 <= hits[0] <= 3000 + 1.2 * 100 + 1  # past 1.2x the longest earlier idle run
    assert score.iloc[hits[0]] > 1.2
    ens = create("ensemble").fit(s).score_frame(s)
    # above the operating point NAB's sweep chooses (about 0.9989), and raised by this member
    assert ens["score"].iloc[3000:3400].max() > 0.999
    assert ens["member"].iloc[hits[0]] == "flatline"
    without = create("ensemble", members=tuple(m for m in DEFAULT_MEMBERS if m.name != "flatline"))
    assert without.fit(s).score_frame(s)["score"].iloc[3000:3400].max() < 0.99


def test_noise_quantised_values_and_a_constant_series_never_alarm():
    rng = np.random.default_rng(1)
    cases = [
        rng.normal(0, 1, 4000),  # continuous: no repeats at all
        np.round(rng.normal(5, 1, 4000)),  # integer readings: short repeats, never a long record
        np.full(4000, 7.0),  # constant from the start: no earlier run to outlast
        stuck_at_zero(seed=2, stuck_for=0),  # idle stretches as long as usual
    ]
    for v in cases:
        s = series(v)
        assert np.nanmax(create("flatline").fit(s).score_frame(s)["score"].to_numpy()) == 0.0


def test_prefix_causal_and_batch_matches_single_series():
    v = np.vstack([stuck_at_zero(seed) for seed in range(3)])
    det = create("flatline")
    score, _ = det._score_array(v, 300.0)
    single = det.fit(series(v[1])).score_frame(series(v[1]))["score"].to_numpy()
    np.testing.assert_allclose(score[1], single, equal_nan=True)
    prefix = det.fit(series(v[1][:3050])).score_frame(series(v[1][:3050]))["score"].to_numpy()
    np.testing.assert_allclose(prefix, single[:3050], equal_nan=True)
