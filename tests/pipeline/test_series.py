"""Series snapshots: a cycle stores, per anomaly, the series its detector scored with an expected band
that holds the baseline and that the spike leaves; a NAB file through the generic pack gives a KPI
series; snapshots are replaced when a later cycle updates the incident (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from opsloop.config import Settings
from opsloop.detectors.robust_z import trailing_median_mad
from opsloop.domain import Anomaly, Incident, Kind, Severity, Window
from opsloop.evidence import EnsembleEvidence
from opsloop.packs import load_pack
from opsloop.packs.checkout.simulator import simulate, write_scenario
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.detect import DetectionSettings
from opsloop.pipeline.observe import Signals, observe
from opsloop.pipeline.series import MAX_POINTS, SeriesSource, anomaly_series, trailing_median
from opsloop.store import repository as repo
from opsloop.store.series import SeriesPoint, list_series, save_series
from opsloop.store.session import open_store

from ..conftest import shared_dataset

SCORED = ("robust_z", "ensemble", "error_rate", "ratio", "kpi_funnel")  # detectors that score a numeric series


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """One cycle on the checkout demo scenario (seed 7, 7 days; TF-IDF, no model download):
    (result, store)."""
    root = tmp_path_factory.mktemp("series-demo")
    paths = write_scenario(simulate(seed=7, days=7), root / "scenario")
    signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
    store = open_store(f"sqlite:///{root / 'db.sqlite'}")
    return run_cycle(signals, store, Settings(home=root, pack="checkout", embedder="tfidf")), store


def _frame(points: list[SeriesPoint]) -> pd.DataFrame:
    return pd.DataFrame([p.model_dump() for p in points]).set_index("ts")


def test_cycle_stores_each_anomalys_series_around_its_window(demo):
    result, store = demo
    assert len(result.incidents) >= 5
    with store() as s:
        for inc in result.incidents:
            series = {x.anomaly_key: x for x in list_series(s, inc.id)}
            scored = [a for a in inc.anomalies if a.detector in SCORED]
            assert scored and {a.key() for a in scored} == set(series), inc.title
            for a in scored:
                x = series[a.key()]
                ts = [p.ts for p in x.points]
                assert (x.metric, x.labels, x.detector) == (a.evidence.metric, a.evidence.labels, a.detector)
                assert ts == sorted(ts) and len(ts) <= MAX_POINTS
                assert ts[0] <= a.start - timedelta(hours=6) + timedelta(minutes=15), (inc.title, x.metric)
                assert ts[-1] >= a.end, (inc.title, x.metric)
                assert x.direction in ("up", "down", "both")
                inside = [p for p in x.points if a.start <= p.ts <= a.end and p.observed is not None]
                assert inside, "no observation inside the anomaly's window"


def test_band_holds_the_baseline_and_the_spike_leaves_it(demo):
    """Before the anomaly at least 90% of points lie in the band; an error spike's peak lies above it;
    a drop found by summing buckets (event ratios, funnels) has its mean inside the anomaly below the
    expected value and most peaks below the band."""
    result, store = demo
    spikes, outside, drops = 0, 0, 0
    with store() as s:
        for inc in result.incidents:
            for x in list_series(s, inc.id):
                if x.detector not in ("error_rate", "ratio", "kpi_funnel"):
                    continue
                f = _frame(x.points)
                pre = f[f.index < x.start].dropna()
                assert len(pre) >= 20, x.metric
                held = ((pre["observed"] >= pre["lower"]) & (pre["observed"] <= pre["upper"])).mean()
                assert held >= 0.9, (x.metric, x.labels, held)
                peak = f.loc[pd.Timestamp(x.peak)]
                assert peak["expected"] == pytest.approx(next(
                    a.evidence.expected for a in inc.anomalies if a.key() == x.anomaly_key))
                if x.detector == "error_rate":
                    assert x.direction == "up" and peak["observed"] > peak["upper"], (x.labels, peak.to_dict())
                    spikes += 1
                    continue
                span = f[(f.index >= x.start) & (f.index < x.end)].dropna()
                assert x.direction == "down" and span["observed"].mean() < span["expected"].mean(), x.labels
                drops += 1
                outside += bool(peak["observed"] < peak["lower"])
    assert spikes >= 3 and drops >= 5 and outside >= 2 * drops / 3, (spikes, drops, outside)


def test_nab_file_through_the_generic_pack_gives_a_kpi_series(tmp_path):
    nab = shared_dataset("nab")
    name = "machine_temperature_system_failure"
    store = open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")
    result = run_cycle(observe(kpis=[nab / "data" / "realKnownCause" / f"{name}.csv"]), store,
                       Settings(home=tmp_path, embedder="tfidf"))
    assert result.incidents
    with store() as s:
        series = [x for inc in result.incidents for x in list_series(s, inc.id)]
    assert series and all(x.metric == name and x.detector == "ensemble" for x in series)
    for x in series:
        f = _frame(x.points)
        assert 0 < len(f) <= MAX_POINTS and f.index.min() <= x.start <= x.end <= f.index.max()
        assert f["observed"].notna().all() and f["expected"].notna().mean() > 0.9
    peaks = [min(x.points, key=lambda p, x=x: abs(p.ts - x.peak)) for x in series]
    outside = [p for p in peaks if p.observed > p.upper or p.observed < p.lower]
    assert outside, "no anomaly's peak lies outside its band"


def test_long_anomaly_is_downsampled_keeping_the_spike():
    """A 2-day anomaly on a per-minute KPI: the 8-day lookback (4 × its duration) is cut to at most MAX_POINTS points,
    and the spike (the point farthest from expected) is among them, outside the band."""
    rng = np.random.default_rng(3)
    ts = pd.date_range("2026-11-01", periods=12 * 24 * 60, freq="1min", tz="UTC")
    values = 100 + rng.normal(0, 2, len(ts))
    spike = len(ts) - 2 * 24 * 60 + 600
    values[spike] = 180.0
    kpis = pd.DataFrame({"ts": ts, "metric": "queue_depth", "value": values})
    start, end = ts[len(ts) - 2 * 24 * 60], ts[-60]
    anomaly = Anomaly(kind=Kind.business, start=start, end=end, peak=ts[spike], severity=Severity.high,
                      evidence=EnsembleEvidence(metric="queue_depth", score=9.0, observed=180.0, expected=100.0))
    signals = Signals(window=Window(start=ts[0], end=ts[-1] + pd.Timedelta("1min")), kpis=kpis)
    x = anomaly_series(anomaly, SeriesSource(signals), load_pack("generic"),
                       DetectionSettings(kpi_threshold=4.0, count_threshold=8.0))
    assert x is not None and len(x.points) <= MAX_POINTS
    lookback = start - 4 * (end - start)  # 4 × the duration before the start, one down-sampled bin's slack
    assert lookback <= x.points[0].ts <= lookback + timedelta(hours=1) and x.points[-1].ts >= end
    peak = next(p for p in x.points if p.ts == ts[spike])
    assert peak.observed == pytest.approx(180.0) and peak.expected == pytest.approx(100.0)
    assert peak.observed > peak.upper
    pre = [p for p in x.points if p.ts < start and p.lower is not None]
    assert np.mean([p.lower <= p.observed <= p.upper for p in pre]) >= 0.9


def test_fast_trailing_median_is_the_detectors():
    rng = np.random.default_rng(1)
    for window in (240, 49):
        v = rng.normal(size=700)
        for fast, exact in zip(trailing_median(v, window, window // 4), trailing_median_mad(v, window, window // 4)):
            np.testing.assert_allclose(fast, exact, equal_nan=True)


def test_snapshots_are_replaced_per_anomaly_and_absent_before(store_url, demo):
    result, demo_store = demo
    with demo_store() as s:
        inc = result.incidents[0]
        series = list_series(s, inc.id)
    store = open_store(store_url)
    t0 = series[0].start
    with store.begin() as s:
        stored, _ = repo.upsert_incident(s, Incident(
            id="cand", fingerprint="fp-series", kind=Kind.hard, first_seen=t0, last_seen=t0 + timedelta(hours=1),
            severity=Severity.high, title="an incident from before snapshots"), timedelta(hours=6))
    with store() as s:
        assert list_series(s, stored.id) == []  # stored before snapshots existed
        with pytest.raises(repo.NotFound):
            list_series(s, "inc-nope")
    with store.begin() as s:
        save_series(s, stored.id, series)
    with store() as s:
        assert list_series(s, stored.id) == sorted(series, key=lambda x: (x.start, x.anomaly_key))
    first = series[0]
    later = first.model_copy(update={"points": first.points[-3:], "end": first.end + timedelta(minutes=5)})
    with store.begin() as s:
        save_series(s, stored.id, [later])
    with store() as s:
        again = {x.anomaly_key: x for x in list_series(s, stored.id)}
    assert len(again) == len(series) and again[first.anomaly_key] == later
