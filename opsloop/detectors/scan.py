"""Multi-resolution scan windows for count tests: sustained small counts add up where one bucket cannot.

A failure that hits a few requests a minute for two hours never fills one 5-minute bucket with
enough errors to be significant, yet summed over the hour it is overwhelming. The count detectors
(:mod:`opsloop.detectors.error_rate`, :mod:`opsloop.detectors.ratio`) therefore test, at every
bucket, the trailing windows of several lengths (``spans``, in buckets) -- each against the
baseline *before* that window, so the window's own events never dilute its baseline -- and keep
the most significant one. This is the prospective space-time scan statistic restricted to time,
with windows ending now (Kulldorff, "Prospective time periodic geographical disease surveillance
using a scan statistic", *J. R. Stat. Soc. A* 164, 2001), with a handful of fixed window lengths
instead of all of them. :func:`max_excess_segment` then locates the failure inside the flagged
stretch: the contiguous buckets whose summed :func:`bernoulli_llr` -- the increments of a Bernoulli
CUSUM (Reynolds & Stoumbos, "A CUSUM chart for monitoring a proportion when inspecting continuously",
*J. Quality Technology* 31, 1999), negative on average at the baseline rate, positive at the
failing one -- is largest (the maximum subarray: the maximum-likelihood start and end of a shift of
the rate and back).
"""

from __future__ import annotations

import numpy as np

#: A window of ``w`` buckets is tested only once its baseline holds ``BASELINE_WINDOWS * w`` buckets
#: of data: a rate estimated from less than a few windows' worth is no firmer than the window's own.
BASELINE_WINDOWS = 4


def baseline_ready(m: int, w: int) -> np.ndarray:
    """Whether each of ``m`` buckets has ``BASELINE_WINDOWS * w`` buckets before its window of ``w``
    (bool, shape (m,))."""
    return np.arange(m) - w + 1 >= BASELINE_WINDOWS * w


def window_sum(x: np.ndarray, w: int) -> np.ndarray:
    """Sum of the ``w`` buckets ending at each bucket (fewer at the start). ``x``: shape (m,),
    NaN counted as 0. Causal; shape (m,)."""
    c = np.concatenate([[0.0], np.cumsum(np.nan_to_num(np.asarray(x, dtype=float)))])
    hi = np.arange(1, c.size)
    return c[hi] - c[np.maximum(hi - w, 0)]


def bernoulli_llr(k: np.ndarray, n: np.ndarray, p0: float, p1: float) -> np.ndarray:
    """Log-likelihood ratio per bucket of ``k`` successes out of ``n`` (shape (m,)) under rate
    ``p1`` against ``p0`` (both clipped into (0, 1)): ``k log(p1/p0) + (n-k) log((1-p1)/(1-p0))``."""
    p0, p1 = (float(np.clip(p, 1e-9, 1 - 1e-9)) for p in (p0, p1))
    k = np.minimum(np.nan_to_num(np.asarray(k, dtype=float)), np.nan_to_num(np.asarray(n, dtype=float)))
    n = np.nan_to_num(np.asarray(n, dtype=float))
    return k * np.log(p1 / p0) + (n - k) * np.log((1 - p1) / (1 - p0))


def max_excess_segment(excess: np.ndarray) -> tuple[int, int]:
    """``(i, j)``, inclusive, of the contiguous stretch of ``excess`` (shape (m,), m >= 1, e.g.
    errors minus their expected count per bucket) with the largest sum; ``(k, k)`` at the largest
    value when every value is <= 0. Vectorised: cumulative sums and their running minimum."""
    x = np.nan_to_num(np.asarray(excess, dtype=float))
    c = np.concatenate([[0.0], np.cumsum(x)])
    low = np.minimum.accumulate(c[:-1])  # the smallest prefix sum before each end
    j = int(np.argmax(c[1:] - low))
    if c[j + 1] - low[j] <= 0:
        return j, j
    i = int(np.argmin(c[: j + 1]))
    return i, j


def most_significant(windows: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Per bucket, the columns of the window whose ``score`` is highest (NaN lowest; ties to the
    first). ``windows``: one dict of equal-shape (m,) arrays per window length, same keys."""
    best = windows[0]
    for cur in windows[1:]:
        better = np.nan_to_num(cur["score"], nan=-1.0) > np.nan_to_num(best["score"], nan=-1.0)
        best = {c: np.where(better, cur[c], best[c]) for c in best}
    return best
