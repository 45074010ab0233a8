"""Error-rate burst detector: binomial upper-tail test of error counts against a trailing baseline.

Hard failures such as a 403 spike on one endpoint. Input: a ``pd.DataFrame`` with columns ``errors``
and ``total`` (counts per time bucket, e.g. 5 minutes) on a UTC ``DatetimeIndex``. For each window
length ``w`` of ``spans`` (buckets), the errors and totals of the ``w`` buckets ending at a bucket
are tested against ``p0``, the pooled error rate of the ``baseline`` buckets before that window (see
:mod:`opsloop.detectors.binomial`): ``-log10 P(X >= errors)`` with ``X ~ Binomial(total, p0)``; a
window also needs ``min_errors`` errors and an error rate at least ``min_ratio`` times ``p0`` to
score above 0. The score is the largest over the windows and ``span`` the window length that gave
it (:mod:`opsloop.detectors.scan`: a few failed requests a minute for an hour add up where one
bucket cannot). Method: the classical exact binomial test (e.g. Agresti, *Categorical Data
Analysis*, 2013, §1.4) applied as a sliding-baseline control chart over scan windows (Kulldorff 2001).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import Field

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.binomial import tail_score, trailing_proportion
from opsloop.detectors.scan import baseline_ready, most_significant, window_sum


class ErrorRateConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline`` buckets; ``min_errors`` count; ``min_ratio`` times;
    ``spans``: the window lengths tested, in buckets (``(1,)``: each bucket alone)."""

    threshold: float = 8.0
    baseline: int = 288
    min_baseline_trials: float = 50.0
    min_errors: int = 5
    min_ratio: float = 3.0
    prior: float = 0.001
    prior_weight: float = 200.0
    spans: tuple[int, ...] = Field(default=(1,), min_length=1)


class ErrorRateDetector(BaseDetector):
    """Binomial tail test of ``errors`` out of ``total`` over scan windows; ``expected`` is
    ``p0·total`` of the window that scored, ``errors``/``total`` its sums, ``span`` its length."""

    name = "error_rate"
    config_cls = ErrorRateConfig
    columns = ("errors", "total")

    def _score(self, x: pd.DataFrame) -> pd.DataFrame:
        cfg: ErrorRateConfig = self.config
        k1 = x["errors"].to_numpy(dtype=float)
        n1 = x["total"].to_numpy(dtype=float)
        windows = []
        for w in cfg.spans:
            k, n = (k1, n1) if w == 1 else (window_sum(k1, w), window_sum(n1, w))
            p0 = trailing_proportion(k1, n1, cfg.baseline, cfg.min_baseline_trials, cfg.prior,
                                     cfg.prior_weight, lag=w)
            p0 = np.where(baseline_ready(k.size, w), p0, np.nan)
            score = tail_score(k, n, p0, "upper")
            with np.errstate(all="ignore"):
                rate = np.where(n > 0, k / n, 0.0)
            weak = (k < cfg.min_errors) | (rate < cfg.min_ratio * p0)
            score = np.where(weak & ~np.isnan(score), 0.0, score)
            windows.append({"score": score, "expected": p0 * n, "rate": rate, "baseline_rate": p0,
                            "errors": k, "total": n, "span": np.full(k.size, float(w))})
        return pd.DataFrame(most_significant(windows), index=x.index)
