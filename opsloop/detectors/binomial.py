"""Binomial tail tests of a proportion against its trailing baseline (shared by count detectors).

For each bucket with ``n`` trials and ``k`` successes, the baseline proportion ``p0`` comes from the
previous ``baseline`` buckets only (the current bucket excluded, so the test is causal): either the
pooled proportion shrunk toward a prior (rare events such as errors: an empty or spotless baseline
still yields a usable, non-zero rate) or the median of per-bucket proportions (invariant ratios near
1, where an incident must not drag its own baseline down). The score is ``-log10`` of the tail probability, capped at 300.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from scipy import stats

MAX_SCORE = 300.0


def trailing_proportion(
    k: np.ndarray, n: np.ndarray, baseline: int, min_trials: float, prior: float, prior_weight: float,
    lag: int = 1,
) -> np.ndarray:
    """Pooled proportion ``sum(k)/sum(n)`` over the ``baseline`` buckets ending ``lag`` buckets
    before each bucket (``lag`` 1: the buckets just before it; a test window of ``w`` buckets uses
    ``lag`` ``w``), shrunk toward ``prior``.

    ``k``, ``n``: float arrays of shape (m,). Returns shape (m,), NaN where the baseline holds fewer
    than ``min_trials`` trials.
    """
    ks = pd.Series(k).shift(lag).rolling(baseline, min_periods=1).sum().to_numpy()
    ns = pd.Series(n).shift(lag).rolling(baseline, min_periods=1).sum().to_numpy()
    with np.errstate(all="ignore"):
        p0 = (ks + prior * prior_weight) / (ns + prior_weight)
    return np.where(ns >= min_trials, p0, np.nan)


def trailing_median_proportion(k: np.ndarray, n: np.ndarray, baseline: int, min_bucket_trials: float,
                               min_buckets: int, lag: int = 1) -> np.ndarray:
    """Median of the per-bucket proportions ``k/n`` over the ``baseline`` buckets ending ``lag``
    buckets before each bucket (``k``, ``n`` may be window sums: then ``lag`` is the window length,
    so the baseline ends where the window begins).

    Buckets with fewer than ``min_bucket_trials`` trials are ignored. Robust to contamination: the
    baseline holds until half its buckets are anomalous. Shape (m,), NaN with fewer than
    ``min_buckets`` usable buckets.
    """
    with np.errstate(all="ignore"):
        r = np.where(n >= min_bucket_trials, k / n, np.nan)
    return pd.Series(r).shift(lag).rolling(baseline, min_periods=min_buckets).median().to_numpy()


def tail_score(k: np.ndarray, n: np.ndarray, p0: np.ndarray, tail: Literal["upper", "lower"]) -> np.ndarray:
    """``-log10 P(X >= k)`` (upper) or ``-log10 P(X <= k)`` (lower) for ``X ~ Binomial(n, p0)``.

    Arrays of shape (m,); NaN where ``p0`` is NaN; 0 where ``n`` is 0.
    """
    k = np.minimum(k, n)
    p = np.clip(p0, 1e-9, 1 - 1e-9)
    with np.errstate(all="ignore"):
        if tail == "upper":
            logp = stats.binom.logsf(k - 1, n, p)
        else:
            logp = stats.binom.logcdf(k, n, p)
    score = np.clip(-logp / np.log(10.0), 0.0, MAX_SCORE)
    score = np.where(n > 0, score, 0.0)
    return np.where(np.isnan(p0), np.nan, score)
