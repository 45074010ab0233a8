"""The NAB score (opsloop.evaluation.nab) against NAB's published formula and hand-made cases.

Expected numbers come from NAB's definitions (Lavin & Ahmad 2015; numenta/NAB ``nab/sweeper.py``):
scaled sigmoid ``2/(1+exp(5p)) - 1``, a window's first point at ``p = -1`` earning exactly ``A_TP``,
a window's last point at ``p = -1/W``, false positives at ``p = (i - R)/(W - 1)`` after a window.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from opsloop.evaluation import nab
from tests.conftest import shared_dataset

STD = nab.PROFILES["standard"]


def _sig(p: float) -> float:
    """NAB's scaled sigmoid, written out independently."""
    return -1.0 if p > 3.0 else 2.0 / (1.0 + math.exp(5.0 * p)) - 1.0


def _file(n: int = 1000, windows_at: tuple[tuple[int, int], ...] = ((600, 699),)):
    ts = pd.date_range("2024-01-01", periods=n, freq="5min", tz="UTC")
    windows = [(ts[a], ts[b]) for a, b in windows_at]
    return ts, windows


def _det(n: int, *idx: int) -> np.ndarray:
    d = np.zeros(n, dtype=bool)
    d[list(idx)] = True
    return d


def _results(ts, scores) -> dict[str, pd.DataFrame]:
    return {"cat/a.csv": pd.DataFrame({"timestamp": ts, "anomaly_score": scores})}


# -- the pieces ---------------------------------------------------------------------------------


def test_probation_length_matches_nab():
    # min(floor(0.15 n), 0.15 * 5000)
    assert nab.probation_length(1000) == 150
    assert nab.probation_length(10000) == 750
    assert nab.probation_length(4032) == 604
    assert nab.probation_length(5000) == 750
    assert nab.probation_length(10) == 1


def test_profiles_match_nab_config():
    assert nab.PROFILES["standard"] == {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0}
    assert nab.PROFILES["reward_low_FP_rate"] == {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0}
    assert nab.PROFILES["reward_low_FN_rate"] == {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0}


def test_scaled_sigmoid_values_from_nab_docstring():
    assert nab.scaled_sigmoid(-1.0) == pytest.approx(0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(-0.5) == pytest.approx(0.84828, abs=1e-5)
    assert nab.scaled_sigmoid(0.0) == pytest.approx(0.0, abs=1e-12)
    assert nab.scaled_sigmoid(1.0) == pytest.approx(-0.98661, abs=1e-5)
    assert nab.scaled_sigmoid(3.5) == -1.0


# -- one file -----------------------------------------------------------------------------------


def test_null_detector_costs_one_fn_per_window():
    ts, w = _file(windows_at=((300, 349), (600, 699)))
    raw, counts = nab.score_detections(ts, np.zeros(len(ts), bool), w, "standard")
    assert raw == -2.0
    assert counts == {"tp": 0, "fp": 0, "fn": 150, "tn": 1000 - 150 - 150}
    assert nab.score_detections(ts, np.zeros(len(ts), bool), w, "reward_low_FN_rate")[0] == -4.0


def test_detection_at_window_start_earns_a_tp_exactly_and_at_end_the_sigmoid():
    ts, w = _file()  # window [600, 699], W = 100
    start, _ = nab.score_detections(ts, _det(1000, 600), w)
    end, _ = nab.score_detections(ts, _det(1000, 699), w)
    mid, _ = nab.score_detections(ts, _det(1000, 650), w)
    assert start == pytest.approx(1.0, abs=1e-12)
    assert end == pytest.approx(_sig(-1 / 100) / _sig(-1.0))  # ~0.0253
    assert end == pytest.approx(0.02532, abs=1e-4)
    assert mid == pytest.approx(_sig(-(699 - 650 + 1) / 100) / _sig(-1.0))  # p = -0.5
    assert mid == pytest.approx(0.84828 / 0.98661, abs=1e-5)
    assert start > mid > end > 0


def test_fp_far_after_window_costs_about_a_fp():
    ts, w = _file()
    raw, counts = nab.score_detections(ts, _det(1000, 600, 990), w)
    # 990 is (990 - 699) / 99 = 2.94 window-widths past the end: sigma ~ -1
    assert raw == pytest.approx(1.0 + 0.11 * _sig(291 / 99))
    assert raw == pytest.approx(1.0 - 0.11, abs=1e-6)
    assert counts["fp"] == 1 and counts["tp"] == 1


def test_fp_just_after_window_costs_little_and_before_first_window_costs_a_fp():
    ts, w = _file()
    near, _ = nab.score_detections(ts, _det(1000, 600, 700), w)
    assert near == pytest.approx(1.0 + 0.11 * _sig(1 / 99))
    before, _ = nab.score_detections(ts, _det(1000, 600, 400), w)
    assert before == pytest.approx(1.0 - 0.11)


def test_tp_at_right_edge_plus_fp_just_after_is_about_minus_one():
    # NAB's unit test: the sigmoid crosses zero between a window's last point and the next.
    ts, w = _file()
    tp_edge, _ = nab.score_detections(ts, _det(1000, 699), w, {"tpWeight": 1, "fpWeight": 1, "fnWeight": 1})
    fp_next, _ = nab.score_detections(ts, _det(1000, 700), w, {"tpWeight": 1, "fpWeight": 1, "fnWeight": 1})
    assert tp_edge + fp_next + 1 == pytest.approx(0.0, abs=1e-3)


def test_only_the_first_detection_in_a_window_counts():
    ts, w = _file()
    one, c1 = nab.score_detections(ts, _det(1000, 620), w)
    many, c2 = nab.score_detections(ts, _det(1000, 620, 640, 660, 699), w)
    assert one == many
    assert (c1["tp"], c2["tp"]) == (1, 4)


def test_detections_in_probation_are_ignored():
    ts, w = _file()
    base, _ = nab.score_detections(ts, _det(1000, 600), w)
    with_probation, counts = nab.score_detections(ts, _det(1000, 600, 0, 10, 149), w)
    assert with_probation == base
    assert counts["fp"] == 0
    fp_after_probation, _ = nab.score_detections(ts, _det(1000, 600, 150), w)
    assert fp_after_probation == pytest.approx(base - 0.11)


def test_score_detections_agrees_with_a_loop_over_points():
    """Random detections against a direct, per-point restatement of NAB's rules."""
    rng = np.random.default_rng(7)
    n = 400
    ts, w = _file(n, ((80, 99), (150, 151), (250, 289), (330, 330)))
    bounds = [(80, 99), (150, 151), (250, 289), (330, 330)]
    for _ in range(30):
        det = rng.random(n) < 0.04
        for name, cm in nab.PROFILES.items():
            a_tp, a_fp, a_fn = cm["tpWeight"], cm["fpWeight"], cm["fnWeight"]
            expect = 0.0
            for lo, hi in bounds:
                hits = [i for i in range(lo, hi + 1) if det[i] and i >= 60]
                width = hi - lo + 1
                expect += a_tp * _sig(-(hi - hits[0] + 1) / width) / _sig(-1.0) if hits else -a_fn
            for i in range(60, n):
                if det[i] and not any(lo <= i <= hi for lo, hi in bounds):
                    prev = [b for b in bounds if b[1] < i]
                    if not prev or prev[-1][1] == prev[-1][0]:
                        expect -= a_fp
                    else:
                        lo, hi = prev[-1]
                        expect += a_fp * _sig((i - hi) / (hi - lo))
            got, _ = nab.score_detections(ts, det, w, name)
            assert got == pytest.approx(expect, abs=1e-12), name


# -- the sweep ----------------------------------------------------------------------------------


def _brute_force(results, windows, profile):
    """Every threshold NAB evaluates, scored file by file with ``score >= t``."""
    allscores = []
    for key, frame in results.items():
        s = frame["anomaly_score"].to_numpy(dtype=float)
        allscores.append(s[nab.probation_length(len(s)):])
    thresholds = [1.1] + sorted(set(np.concatenate(allscores).tolist()), reverse=True)
    out = []
    for t in thresholds:
        total = 0.0
        for key, frame in results.items():
            s = frame["anomaly_score"].to_numpy(dtype=float)
            total += nab.score_detections(frame["timestamp"], s >= t, windows[key], profile)[0]
        out.append(total)
    return np.array(thresholds), np.array(out)


def test_sweep_matches_brute_force_over_every_threshold():
    rng = np.random.default_rng(11)
    results, windows = {}, {}
    for k, (n, wins) in enumerate([(300, ((100, 129), (200, 219))), (250, ((60, 99),)), (200, ())]):
        ts, w = _file(n, wins)
        s = np.round(rng.random(n) ** 3, 2)  # many ties, like real detectors
        for lo, hi in wins:
            s[lo + 5 : lo + 8] += 0.5  # something to find
        s = np.minimum(s, 1.0)  # NAB's scores live in [0, 1]
        results[f"cat/f{k}.csv"] = pd.DataFrame({"timestamp": ts, "anomaly_score": s})
        windows[f"cat/f{k}.csv"] = w
    for profile in nab.PROFILES:
        thr, curve = nab.threshold_curve(results, windows, profile)
        bthr, bcurve = _brute_force(results, windows, profile)
        np.testing.assert_allclose(thr, bthr)
        np.testing.assert_allclose(curve, bcurve, atol=1e-9)
        best_t, raw, norm = nab.sweep(results, windows, profile)
        i = int(np.argmax(bcurve))
        assert best_t == bthr[i] and raw == pytest.approx(bcurve[i])
        a_tp, a_fn = nab.PROFILES[profile]["tpWeight"], nab.PROFILES[profile]["fnWeight"]
        null, perfect = -a_fn * 3, a_tp * 3
        assert norm == pytest.approx(100 * (raw - null) / (perfect - null))


def test_perfect_detector_scores_100_and_null_scores_0():
    ts, w = _file(1000, ((300, 349), (600, 699)))
    perfect = np.zeros(1000)
    perfect[[300, 600]] = 1.0
    null = np.zeros(1000)
    for profile in nab.PROFILES:
        assert nab.sweep(_results(ts, perfect), {"cat/a.csv": w}, profile)[2] == pytest.approx(100.0)
        assert nab.sweep(_results(ts, null), {"cat/a.csv": w}, profile)[2] == pytest.approx(0.0)
    scores = nab.nab_scores(_results(ts, perfect), {"cat/a.csv": w})
    assert scores["standard"] == pytest.approx(100.0)
    assert set(scores["thresholds"]) == set(nab.PROFILES)


def test_nan_scores_never_fire():
    ts, w = _file()
    s = np.full(1000, np.nan)
    s[600] = 0.9
    t, raw, norm = nab.sweep(_results(ts, s), {"cat/a.csv": w})
    assert (t, raw, norm) == (0.9, 1.0, 100.0)


def test_results_dir_round_trip(tmp_path):
    ts, w = _file(300, ((100, 119),))
    frame = pd.DataFrame({"timestamp": ts, "value": np.arange(300.0), "anomaly_score": np.linspace(0, 1, 300)})
    paths = nab.write_results_dir(tmp_path, "det", {"cat/a.csv": frame}, {"cat/a.csv": w})
    assert paths == [tmp_path / "det" / "cat" / "det_a.csv"]
    text = paths[0].read_text().splitlines()
    assert text[0] == "timestamp,value,anomaly_score,label"
    assert text[1].startswith("2024-01-01 00:00:00,")
    back = nab.read_results_dir(tmp_path, "det")
    assert list(back) == ["cat/a.csv"]
    got = back["cat/a.csv"]
    assert got["label"].sum() == 20 and got["label"].iloc[100] == 1 and got["label"].iloc[120] == 0
    np.testing.assert_array_equal(got["anomaly_score"].to_numpy(), frame["anomaly_score"].to_numpy())
    assert nab.sweep(back, {"cat/a.csv": w}) == nab.sweep({"cat/a.csv": frame}, {"cat/a.csv": w})


# -- the real corpus (skipped without ../shared/datasets/nab) -------------------------------------


def test_real_windows_load_and_labels_score_high():
    root = shared_dataset("nab")
    windows = nab.load_windows(root / "labels" / "combined_windows.json")
    assert len(windows) == 58
    assert sum(len(v) for v in windows.values()) == 116
    results = {}
    for key in sorted(windows):
        if not key.startswith(("realKnownCause/", "artificialWithAnomaly/")):
            continue
        raw = pd.read_csv(root / "data" / key)
        ts = pd.to_datetime(raw["timestamp"], utc=True)
        labels = nab.labels_for(ts, windows[key])
        results[key] = pd.DataFrame({"timestamp": ts, "anomaly_score": labels.astype(float)})
    scores = nab.nab_scores(results, windows)
    # Labels as detections: every window found at its first point, plus every later in-window point
    # as a (free) extra TP -- a perfect score.
    for profile in nab.PROFILES:
        assert scores[profile] == pytest.approx(100.0)


def test_real_file_matches_nab_published_per_file_score():
    """NAB's published windowedGaussian results (numenta/NAB, commit de8e91a): on
    realAdExchange/exchange-4_cpc_results.csv at threshold 1.0 the detections are these nine rows,
    and NAB's scores CSVs give standard 0.292288463428 (TP 3, TN 1228, FP 4, FN 162) and
    reward_low_FP_rate -0.147680769569."""
    root = shared_dataset("nab")
    key = "realAdExchange/exchange-4_cpc_results.csv"
    windows = nab.load_windows(root / "labels" / "combined_windows.json")
    raw = pd.read_csv(root / "data" / key)
    hits = ["2011-07-01 01:15:01", "2011-07-05 06:15:01", "2011-07-16 09:15:01", "2011-07-16 14:15:01",
            "2011-07-22 12:15:01", "2011-07-22 16:15:01", "2011-08-23 08:15:01", "2011-08-28 13:15:01",
            "2011-09-04 09:15:01"]
    det = raw["timestamp"].isin(hits).to_numpy()
    assert det.sum() == 9
    score, counts = nab.score_detections(raw["timestamp"], det, windows[key], "standard")
    assert score == pytest.approx(0.292288463428, abs=1e-11)
    assert counts == {"tp": 3, "tn": 1228, "fp": 4, "fn": 162}
    score_fp, _ = nab.score_detections(raw["timestamp"], det, windows[key], "reward_low_FP_rate")
    assert score_fp == pytest.approx(-0.147680769569, abs=1e-11)


def test_real_corpus_reproduces_nab_published_random_detector():
    """NAB's 'random' baseline is deterministic (random.seed(42) per file, uniform(0, 1) per row).
    Scored at the thresholds NAB used (config/thresholds.json), the whole corpus gives NAB's
    published results/final_results.json values: 16.8318 / 5.7637 / 25.8764."""
    import random

    root = shared_dataset("nab")
    windows = nab.load_windows(root / "labels" / "combined_windows.json")
    results = {}
    for key in sorted(windows):
        ts = pd.to_datetime(pd.read_csv(root / "data" / key)["timestamp"], utc=True)
        random.seed(42)
        scores = np.array([random.uniform(0, 1) for _ in range(len(ts))])
        results[key] = pd.DataFrame({"timestamp": ts, "anomaly_score": scores})
    published = {"standard": (0.9984497070312507, 16.831768350517237),
                 "reward_low_FP_rate": (0.9995117187500009, 5.763682319827586),
                 "reward_low_FN_rate": (0.9984497070312507, 25.876351314080456)}
    for profile, (threshold, expected) in published.items():
        a = nab.PROFILES[profile]
        raw = nab.score_files(results, windows, threshold, profile)["Score"].sum()
        norm = 100 * (raw + 116 * a["fnWeight"]) / (116 * a["tpWeight"] + 116 * a["fnWeight"])
        assert norm == pytest.approx(expected, abs=1e-6), profile
    # NAB's exhaustive sweep can only do as well or better than the thresholds NAB used then.
    best = nab.nab_scores(results, windows)
    for profile, (_, expected) in published.items():
        assert best[profile] >= expected - 1e-9
