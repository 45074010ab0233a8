"""Log-template share detector: a template that outgrows its share of its service's lines is found,
the service's own traffic cycle is not, and the baseline is a causal time window."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from opsloop.detectors.log_template import LogTemplateConfig, LogTemplateDetector, share_surge


def frame(n: int = 24 * 6, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    total = rng.poisson(2000 * (1.5 + np.sin(2 * np.pi * t / 24))).astype(float)  # 500..5000 lines an hour
    count = rng.binomial(total.astype(int), 0.01).astype(float)
    return pd.DataFrame({"count": count, "total": total}, index=pd.date_range("2026-01-01", periods=n, freq="1h", tz="UTC"))


def test_share_burst_is_flagged_and_the_traffic_cycle_is_not():
    x = frame()
    x.iloc[100, 0] = x.iloc[100, 1] * 0.05  # five times its share for one hour
    det = LogTemplateDetector().fit(x)
    flags = det.predict(x)
    assert flags.iloc[100] and flags.sum() == 1
    out = det.score_frame(x)
    assert out["expected"].iloc[100] == pytest.approx(0.01 * x.iloc[100, 1], rel=0.15)
    assert out["direction"].iloc[100] == 1.0


def test_expected_is_the_share_of_the_hours_before():
    x = frame(30)
    out = LogTemplateDetector(baseline_hours=3).fit(x).score_frame(x)
    b, b_s = x["count"].iloc[7:10].sum(), x["total"].iloc[7:10].sum()
    assert out["expected"].iloc[10] == pytest.approx((b + 0.5) / (b_s + 1) * x["total"].iloc[10])
    assert out["expected"].iloc[0] == pytest.approx(0.5 * x["total"].iloc[0])  # nothing before: share 0.5 / 1


def test_gates_min_count_and_ratio():
    cfg = LogTemplateConfig()
    score, expected, tail = share_surge(np.array([4.0, 40.0, 40.0]), np.array([100.0, 100.0, 100.0]),
                                        np.array([0.0, 0.0, 3000.0]), np.array([10_000.0, 10_000.0, 10_000.0]), cfg)
    assert score[0] == 0.0 and tail[0] > cfg.threshold  # 4 lines of a never-seen template: too few
    assert score[1] == tail[1] > cfg.threshold
    assert score[2] == 0.0 and expected[2] == pytest.approx(30.0, rel=0.01)  # 40 against 30 expected


def test_negative_counts_raise():
    x = frame(10)
    x.iloc[3, 0] = -1
    with pytest.raises(ValueError, match="non-negative"):
        LogTemplateDetector().fit(x).score_frame(x)
