"""The calibrated ensemble: hand-written anomalies, calibration, suppression, configuration."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from opsloop.detectors.ensemble import (
    EVIDENCE_EDGES,
    RANK_EDGES,
    SUPPRESS_SECONDS,
    TAIL_PRIOR_RECORDS,
    EnsembleConfig,
    EnsembleDetector,
    Member,
    calibrate,
    causal_tail_probability,
    discount_repeats,
    points_within,
    record_tail_index,
)
from opsloop.detectors.registry import create


def series(v: np.ndarray, freq: str = "5min") -> pd.Series:
    return pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq=freq, tz="UTC"))


def noise(n: int, seed: int = 0) -> np.ndarray:
    return 100 + np.random.default_rng(seed).normal(0, 1, n)


def test_spike_is_the_only_alarm():
    v = noise(3000)
    v[2500] += 15
    s = series(v)
    det = create("ensemble").fit(s)
    frame = det.score_frame(s)
    flags = det.predict(s)
    assert flags.iloc[2500]
    # range novelty: new extremes of pure noise are rare but not impossible (about ln(t) records)
    assert flags.iloc[500:].sum() <= 3
    assert frame["score"].between(0, 1).all() or frame["score"].isna().any()
    assert frame["direction"].iloc[2500] == 1
    assert frame["member"].iloc[2500] in {"forecast", "novelty", "seasonal_drop", "cusum", "scale_change"}


def test_level_shift_alarms_once_at_its_start():
    v = noise(3000, seed=1)
    v[2000:] -= 4
    s = series(v)
    flags = create("ensemble").fit(s).predict(s).to_numpy()
    first = int(np.flatnonzero(flags[2000:])[0])
    assert first < 10
    # suppression: not every point of the new level (later new minima of the noise may still alarm)
    assert flags[2000:].sum() <= 5
    assert flags[1000:2000].sum() <= 1


def test_seasonal_dip_and_flat_series_that_jumps():
    n = 288 * 10
    t = np.arange(n)
    v = 100 + 30 * np.sin(2 * np.pi * t / 288) + np.random.default_rng(2).normal(0, 1, n)
    v[288 * 8 + 60 : 288 * 8 + 90] -= 12  # a dip that stays inside the daily range
    s = series(v)
    flags = create("ensemble").fit(s).predict(s)
    assert flags.iloc[288 * 8 + 60 : 288 * 8 + 90].any()
    assert flags.iloc[288 * 3 : 288 * 8 + 60].sum() <= 2
    flat = np.full(1000, 5.0)
    flat[800] = 6.0
    fs = series(flat)
    fflags = create("ensemble").fit(fs).predict(fs)
    assert fflags.iloc[800] and fflags.sum() == 1


@pytest.mark.parametrize("floor", [0.0, 1.5])
def test_rank_calibration_equals_brute_force(floor):
    rng = np.random.default_rng(3)
    x = np.abs(rng.standard_t(3, (2, 300)))
    x[0, 7] = np.nan
    p = causal_tail_probability(x, floor=floor)
    b = np.searchsorted(RANK_EDGES, np.nan_to_num(x), side="right") - 1
    tail = b >= np.searchsorted(RANK_EDGES, floor, side="right") - 1  # the floor's grid cell counts
    for r in range(2):
        for t in range(300):
            if np.isnan(x[r, t]):
                assert np.isnan(p[r, t])
                continue
            if x[r, t] < floor:
                assert p[r, t] == 1.0
                continue
            prev = b[r, :t][~np.isnan(x[r, :t]) & (x[r, :t] >= floor)]
            seen = np.sum(~np.isnan(x[r, :t]))
            assert p[r, t] == pytest.approx((1 + np.sum(prev >= b[r, t])) / (1 + seen))
    assert tail.any()


@pytest.mark.parametrize("same_nan_pattern", [True, False])
def test_rank_calibration_many_rows_relative_floor(same_nan_pattern):
    """Several rows (one without any tail point), a relative floor and a shared or per-row NaN
    pattern: equal to the direct count (the block decomposition spans rows and blocks)."""
    rng = np.random.default_rng(4)
    x = np.abs(rng.standard_t(2, (6, 157)))
    x[3] = 0.001  # below the floor everywhere
    if same_nan_pattern:
        x[:, :5] = np.nan
    else:
        x[rng.random(x.shape) < 0.1] = np.nan
    floor, rel = 0.5, 0.25
    p = causal_tail_probability(x, floor=floor, relative_floor=rel)
    b = np.searchsorted(RANK_EDGES, np.nan_to_num(x), side="right") - 1
    for r in range(x.shape[0]):
        prev_max, tail_cells, seen = -np.inf, [], 0
        for t in range(x.shape[1]):
            if np.isnan(x[r, t]):
                assert np.isnan(p[r, t])
                continue
            if x[r, t] < floor or x[r, t] < rel * prev_max:
                assert p[r, t] == 1.0
            else:  # ranked among the earlier tail points (grid cells), out of all earlier scores
                count = sum(c >= b[r, t] for c in tail_cells)
                assert p[r, t] == pytest.approx((1 + count) / (1 + seen))
                tail_cells.append(b[r, t])
            prev_max, seen = max(prev_max, x[r, t]), seen + 1


def test_pareto_and_tail_extrapolation():
    m = Member(name="novelty", calibration="pareto", pareto_scale=1e-6, record_boost=None)
    np.testing.assert_allclose(calibrate(np.array([0.0, 0.01, 1.0, np.nan]), m), [0, 4, 6, np.nan])
    capped = calibrate(np.array([0.0, 0.01, 1.0]), m.model_copy(update={"record_boost": 3.0}))  # cap binds
    np.testing.assert_allclose(capped, [0, np.log10(1.5) + 3 - 2, np.log10(2) + 3])
    r = Member(name="forecast", tail_index=2.0)
    x = calibrate(np.array([1.0, 2.0, 8.0]), r)
    # third point: empirical p = 1/3 floor, then (2/8)^k beyond the previous maximum, k the index
    # estimated from the one earlier record (2 over 1) with 5 pseudo-records of index 2
    k = min(2.0, (1 + TAIL_PRIOR_RECORDS) / (np.log(2.0) + TAIL_PRIOR_RECORDS / 2.0))
    assert x[2] == pytest.approx(np.log10(3) + k * np.log10(4))


def test_record_tail_index_learns_heavy_tails_only():
    n = 40
    top = np.ones((2, n))
    record = np.zeros((2, n), dtype=bool)
    record[:, ::2] = True  # 20 records per row
    s2 = np.where(record, np.array([[np.e**0.5], [np.e**0.01]]), 1.0)  # ln ratio 0.5 (index 2) / 0.01
    k = record_tail_index(s2, top, record, 4.0)
    assert k[0, 0] == pytest.approx(4.0) and k[1, 0] == pytest.approx(4.0)  # no earlier record: the prior
    assert np.all(np.diff(k[0]) <= 1e-12)  # big jumps keep lowering the index ...
    assert 2.0 < k[0, -1] < 2.5  # ... towards the true index 2 (20 records, 5 pseudo-records)
    np.testing.assert_allclose(k[1], 4.0)  # small steps: never above the default
    # causal: a prefix gives the prefix of the estimate
    np.testing.assert_allclose(record_tail_index(s2[:, :25], top[:, :25], record[:, :25], 4.0), k[:, :25])


def test_config_is_validated():
    with pytest.raises(ValidationError):
        EnsembleDetector(members=({"name": "forecast", "typo": 1},))
    with pytest.raises(ValidationError):
        create("ensemble", suppress=-1.5)
    with pytest.raises(KeyError):
        create("ensemble", members=({"name": "no_such_detector"},)).fit(series(noise(100)))
    with pytest.raises(ValidationError):
        create("ensemble", members=({"name": "forecast", "params": {"no_such": 1}},)).fit(series(noise(100)))
    with pytest.raises(ValueError, match="member"):
        create("ensemble", members=()).fit(series(noise(100)))
    with pytest.raises(ValidationError):
        create("ensemble", repeat_discount=-0.5)


def test_repeat_discount_equals_brute_force():
    """Each reported point loses gamma*log10(1 + N), N the earlier reported points of its row at
    least as strong (grid cells of 0.05); unreported (0) and NaN points are unchanged; several rows."""
    rng = np.random.default_rng(5)
    x = np.where(rng.random((3, 200)) < 0.2, rng.uniform(0.1, 8, (3, 200)), 0.0)
    x[1, 17] = np.nan
    x[2] = 0.0  # a row without any alarm
    x[0, 50:53] = 25.0  # beyond the grid: the last cell
    out = discount_repeats(x, 0.5)
    cell = np.minimum(np.searchsorted(EVIDENCE_EDGES, np.nan_to_num(x), side="right") - 1, len(EVIDENCE_EDGES) - 1)
    for r in range(3):
        for t in range(200):
            if not x[r, t] > 0:
                assert out[r, t] == x[r, t] or (np.isnan(out[r, t]) and np.isnan(x[r, t]))
                continue
            n = np.sum((np.nan_to_num(x[r, :t]) > 0) & (cell[r, :t] >= cell[r, t]))
            assert out[r, t] == pytest.approx(max(x[r, t] - 0.5 * np.log10(1 + n), 0.0))
    np.testing.assert_array_equal(discount_repeats(x, 0.0), x)


def test_repeated_alarms_are_discounted_first_one_is_not():
    """Identical bursts every 400 points: the first keeps its evidence, later ones lose evidence
    step by step (a series that keeps alarming alike), and a prefix scores as the full series."""
    v = noise(4000, seed=6)
    for start in range(1500, 4000, 400):
        v[start] += 12
    s = series(v)
    on = create("ensemble").fit(s).score_frame(s)["evidence"].to_numpy()
    off = create("ensemble", repeat_discount=0.0).fit(s).score_frame(s)["evidence"].to_numpy()
    assert on[1500] == pytest.approx(off[1500]) and on[1500] > 3.3
    later = np.array([on[t] - off[t] for t in range(1900, 4000, 400)])
    assert (later < 0).all() and later[-1] < later[0]
    part = create("ensemble").fit(s).score_frame(s.iloc[:2700])["evidence"].to_numpy()
    np.testing.assert_allclose(part, on[:2700], equal_nan=True)


def test_daily_spike_on_hourly_data_is_reported_every_day():
    """Suppression is bounded in time: on hourly data the spike of the next day reports again (60
    points of suppression would be 2.5 days), while at 5-minute spacing the window stays 60 points."""
    n = 24 * 40
    v = 100 + 5 * np.sin(2 * np.pi * np.arange(n) / 24) + np.random.default_rng(3).normal(0, 1, n)
    spikes = [24 * d + 13 for d in (25, 26)]
    v[spikes] += 12
    s = series(v, freq="h")
    x = create("ensemble").fit(s).score_frame(s)["evidence"].to_numpy()
    assert (x[spikes] > 2.0).all(), x[spikes]  # p below 1e-2 at each spike: both are real alarms
    counted = create("ensemble", suppress_seconds=None).fit(s).score_frame(s)["evidence"].to_numpy()
    assert counted[spikes[1]] == 0.0  # in points only, the second day's spike was silenced
    assert points_within(60, SUPPRESS_SECONDS, 300.0) == 60
    assert points_within(60, SUPPRESS_SECONDS, 3600.0) == 23
    assert points_within(60, None, 3600.0) == 60


def test_long_memory_is_in_time():
    """The long-run CUSUM remembers 5,000 points at 5-minute spacing but the same 17 days, not 208,
    on hourly data; a member without ``baseline_seconds`` keeps its point count."""
    long_run = next(m for m in EnsembleConfig().members if m.baseline_seconds)
    assert long_run.params_at(300.0)["baseline"] == 5000
    assert long_run.params_at(3600.0)["baseline"] == 417
    assert long_run.params_at(float("nan"))["baseline"] == 5000
    short = Member(name="cusum", params={"baseline": 300})
    assert short.params_at(3600.0) == {"baseline": 300}
