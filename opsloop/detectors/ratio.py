"""Ratio-invariant detector: downstream / upstream events against their usual ratio (soft failures).

E.g. ``job.finished`` per ``job.started``: every request succeeds, yet an expected downstream
event goes missing. Input: a ``pd.DataFrame`` with columns ``downstream`` and ``upstream`` (counts per
time bucket) on a UTC ``DatetimeIndex``. For each window length ``w`` of ``spans`` (buckets), the
counts of the ``w`` buckets ending at a bucket are tested: ``-log10 P(X <= downstream)`` with
``X ~ Binomial(upstream, r0)`` and ``r0`` the median of the ratios of such windows over the
``baseline`` buckets before this one (robust to an incident in the baseline), or the pooled ratio of
those buckets when lower (a baseline of a few windows that happened to lose nothing must not
make every later loss significant), clipped below 1; a window also needs the ratio to fall by at
least ``min_drop`` (relative) and ``min_missing`` events to be missing. The score is the largest
over the windows, ``span`` the length that gave it (:mod:`opsloop.detectors.scan`). Method: exact
binomial test of a conversion invariant against a sliding baseline, over scan windows (Kulldorff 2001).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.binomial import tail_score, trailing_median_proportion, trailing_proportion
from opsloop.detectors.scan import baseline_ready, most_significant, window_sum


class RatioConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline`` buckets (windows with fewer than ``min_bucket_trials``
    upstream events are ignored: the median of ``k/n`` over few trials is biased by up to ``1/n``
    toward 0 or 1, and 20 trials keep that under a third of ``min_drop``; ``min_buckets`` usable
    ones needed); ``min_drop`` relative;
    ``min_missing`` events; ``spans``: the window lengths tested, in buckets (``(1,)``: each bucket
    alone)."""

    threshold: float = 8.0
    baseline: int = 288
    min_bucket_trials: float = 20.0
    min_buckets: int = 12
    min_drop: float = 0.15
    min_missing: int = 5
    spans: tuple[int, ...] = Field(default=(1,), min_length=1)


class RatioDetector(BaseDetector):
    """Binomial lower-tail test of ``downstream`` given ``upstream`` over scan windows; ``expected``
    is ``r0·upstream`` of the window that scored, ``span`` its length."""

    name = "ratio"
    config_cls = RatioConfig
    columns = ("downstream", "upstream")

    def _score(self, x: pd.DataFrame) -> pd.DataFrame:
        cfg: RatioConfig = self.config
        n1 = x["upstream"].to_numpy(dtype=float)
        d1 = x["downstream"].to_numpy(dtype=float)
        windows = []
        for w in cfg.spans:
            n = n1 if w == 1 else window_sum(n1, w)
            k = np.minimum(d1 if w == 1 else window_sum(d1, w), n)
            median = trailing_median_proportion(k, n, cfg.baseline, cfg.min_bucket_trials, cfg.min_buckets,
                                                lag=w)
            pooled = trailing_proportion(d1, n1, cfg.baseline, 1.0, 0.0, 0.0, lag=w)
            r0 = np.minimum(np.minimum(median, pooled), 0.999)
            r0 = np.where(baseline_ready(k.size, w), r0, np.nan)
            score = tail_score(k, n, r0, "lower")
            expected = r0 * n
            with np.errstate(all="ignore"):
                ratio = np.where(n > 0, k / n, np.nan)
            weak = ((expected - k) < cfg.min_missing) | (ratio > (1 - cfg.min_drop) * r0)
            score = np.where(weak & ~np.isnan(score), 0.0, score)
            windows.append({"score": score, "expected": expected, "ratio": ratio, "baseline_ratio": r0,
                            "span": np.full(k.size, float(w))})
        return pd.DataFrame(most_significant(windows), index=x.index)
