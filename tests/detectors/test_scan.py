"""Scan-window helpers of the count detectors: window sums, baseline readiness, the failing stretch."""

from __future__ import annotations

import numpy as np

from opsloop.detectors.scan import (
    baseline_ready,
    bernoulli_llr,
    max_excess_segment,
    most_significant,
    window_sum,
)


def test_window_sum_is_the_trailing_sum():
    assert window_sum(np.array([1.0, 2.0, np.nan, 4.0]), 2).tolist() == [1.0, 3.0, 2.0, 4.0]


def test_a_window_waits_for_a_baseline_several_windows_long():
    ready = baseline_ready(30, 3)
    assert not ready[:14].any() and ready[14:].all()


def test_the_failing_stretch_is_where_the_rate_shifted():
    n = np.full(40, 4.0)
    k = np.zeros(40)
    k[[10, 12, 15, 19]] = 2  # the failure: 10..19 at half the calls
    k[35] = 1  # a lone error later does not stretch it
    llr = bernoulli_llr(k, n, 0.01, 0.2)
    assert max_excess_segment(llr) == (10, 19)
    assert max_excess_segment(np.array([-1.0, -0.5, -2.0])) == (1, 1)


def test_the_most_significant_window_wins_per_bucket():
    a = {"score": np.array([1.0, np.nan, 5.0]), "span": np.array([3.0, 3.0, 3.0])}
    b = {"score": np.array([2.0, 0.0, 4.0]), "span": np.array([12.0, 12.0, 12.0])}
    assert most_significant([a, b])["span"].tolist() == [12.0, 12.0, 3.0]
