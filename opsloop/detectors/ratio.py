"""Ratio-invariant detector: downstream / upstream events against their usual ratio (soft failures).

E.g. ``job.finished`` per ``job.started``: every request succeeds, yet an expected downstream
event goes missing. Input: a ``pd.DataFrame`` with columns ``downstream`` and ``upstream`` (counts per
time bucket) on a UTC ``DatetimeIndex``. Score: ``-log10 P(X <= downstream)`` with
``X ~ Binomial(upstream, r0)`` and ``r0`` the trailing median of per-bucket ratios (clipped below 1); a bucket also
needs the ratio to fall by at least ``min_drop`` (relative) and ``min_missing`` events to be missing.
Method: exact binomial test of a conversion invariant against a sliding baseline.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.binomial import tail_score, trailing_median_proportion


class RatioConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline`` buckets (buckets with fewer than ``min_bucket_trials``
    upstream events are ignored, ``min_buckets`` usable ones needed); ``min_drop`` relative;
    ``min_missing`` events."""

    threshold: float = 8.0
    baseline: int = 288
    min_bucket_trials: float = 5.0
    min_buckets: int = 12
    min_drop: float = 0.15
    min_missing: int = 5


class RatioDetector(BaseDetector):
    """Binomial lower-tail test of ``downstream`` given ``upstream``; ``expected`` is ``r0·upstream``."""

    name = "ratio"
    config_cls = RatioConfig
    columns = ("downstream", "upstream")

    def _score(self, x: pd.DataFrame) -> pd.DataFrame:
        cfg: RatioConfig = self.config
        n = x["upstream"].to_numpy(dtype=float)
        k = np.minimum(x["downstream"].to_numpy(dtype=float), n)
        r0 = np.minimum(trailing_median_proportion(k, n, cfg.baseline, cfg.min_bucket_trials, cfg.min_buckets), 0.999)
        score = tail_score(k, n, r0, "lower")
        expected = r0 * n
        with np.errstate(all="ignore"):
            ratio = np.where(n > 0, k / n, np.nan)
        weak = ((expected - k) < cfg.min_missing) | (ratio > (1 - cfg.min_drop) * r0)
        score = np.where(weak & ~np.isnan(score), 0.0, score)
        return pd.DataFrame({"score": score, "expected": expected, "ratio": ratio, "baseline_ratio": r0}, index=x.index)
