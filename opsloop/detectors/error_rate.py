"""Error-rate burst detector: binomial upper-tail test of error counts against a trailing baseline.

Hard failures such as a 403 spike on one endpoint. Input: a ``pd.DataFrame`` with columns ``errors``
and ``total`` (counts per time bucket, e.g. 5 minutes) on a UTC ``DatetimeIndex``. Score:
``-log10 P(X >= errors)`` with ``X ~ Binomial(total, p0)`` and ``p0`` the trailing pooled error rate
(see :mod:`opsloop.detectors.binomial`); a bucket also needs ``min_errors`` errors and an error rate
at least ``min_ratio`` times ``p0`` to score above 0. Method: the classical exact binomial test
(e.g. Agresti, *Categorical Data Analysis*, 2013, §1.4) applied as a sliding-baseline control chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.binomial import tail_score, trailing_proportion


class ErrorRateConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline`` buckets; ``min_errors`` count; ``min_ratio`` times."""

    threshold: float = 8.0
    baseline: int = 288
    min_baseline_trials: float = 50.0
    min_errors: int = 5
    min_ratio: float = 3.0
    prior: float = 0.001
    prior_weight: float = 200.0


class ErrorRateDetector(BaseDetector):
    """Binomial tail test of ``errors`` out of ``total`` per bucket; ``expected`` is ``p0·total``."""

    name = "error_rate"
    config_cls = ErrorRateConfig
    columns = ("errors", "total")

    def _score(self, x: pd.DataFrame) -> pd.DataFrame:
        cfg: ErrorRateConfig = self.config
        k = x["errors"].to_numpy(dtype=float)
        n = x["total"].to_numpy(dtype=float)
        p0 = trailing_proportion(k, n, cfg.baseline, cfg.min_baseline_trials, cfg.prior, cfg.prior_weight)
        score = tail_score(k, n, p0, "upper")
        with np.errstate(all="ignore"):
            rate = np.where(n > 0, k / n, 0.0)
        weak = (k < cfg.min_errors) | (rate < cfg.min_ratio * p0)
        score = np.where(weak & ~np.isnan(score), 0.0, score)
        return pd.DataFrame({"score": score, "expected": p0 * n, "rate": rate, "baseline_rate": p0}, index=x.index)
