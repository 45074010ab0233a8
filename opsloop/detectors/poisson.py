"""Count-burst detector: Poisson upper-tail test of event counts against a trailing baseline rate.

Input: a ``pd.Series`` of non-negative counts per time bucket. The baseline rate ``λ`` is the pooled
mean of the previous ``baseline`` buckets (the current bucket excluded, so the test is causal),
shrunk toward ``prior`` with weight ``prior_weight`` buckets so an empty baseline still gives a
usable rate. Score: ``-log10 P(X >= k)`` with ``X ~ Poisson(λ)``
(:func:`opsloop.detectors.tails.poisson_upper`, capped at 300). Real counts are
often over-dispersed; with ``overdispersion`` the trailing variance-to-mean ratio ``φ >= 1`` scales
counts and rate (the quasi-Poisson approximation, McCullagh and Nelder, *Generalized Linear Models*,
1989, §6.2) before the exact Poisson tail. A bucket also needs ``min_count`` events and a count of at
least ``min_ratio`` times ``λ`` to score above 0. Method: the exact Poisson test (e.g. Agresti,
*Categorical Data Analysis*, 2013, §1.4) as a sliding-baseline control chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import lag, rolling_sum
from opsloop.detectors.tails import poisson_upper


class PoissonConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline`` buckets (``min_periods`` of them non-NaN needed);
    ``prior`` rate per bucket with weight ``prior_weight`` buckets; ``min_count`` events;
    ``min_ratio`` times the baseline; ``overdispersion`` scales by the trailing variance/mean."""

    threshold: float = 8.0
    baseline: int = 288
    min_periods: int = 12
    prior: float = 0.1
    prior_weight: float = 1.0
    min_count: int = 5
    min_ratio: float = 2.0
    overdispersion: bool = True


def poisson_core(k: np.ndarray, cfg: PoissonConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, lam, phi)`` for counts ``k`` of shape ``(..., n)``."""
    ok = ~np.isnan(k)
    k0 = np.where(ok, k, 0.0)
    n_prev = lag(rolling_sum(ok.astype(float), cfg.baseline), 1, 0.0)
    s_prev = lag(rolling_sum(k0, cfg.baseline), 1, 0.0)
    with np.errstate(all="ignore"):
        lam = (s_prev + cfg.prior * cfg.prior_weight) / (n_prev + cfg.prior_weight)
        if cfg.overdispersion:
            # variance of counts winsorised at their own baseline (a burst must not inflate φ)
            kw = np.minimum(k0, np.maximum(3 * lam, lam + 10 * np.sqrt(lam)))
            sw_prev = lag(rolling_sum(kw, cfg.baseline), 1, 0.0)
            qw_prev = lag(rolling_sum(kw * kw, cfg.baseline), 1, 0.0)
            mean = sw_prev / n_prev
            var = np.maximum(qw_prev / n_prev - mean * mean, 0.0) * n_prev / np.maximum(n_prev - 1, 1)
            phi = np.where(n_prev >= 2, np.maximum(var / np.maximum(lam, 1e-9), 1.0), 1.0)
        else:
            phi = np.ones_like(lam)
    score = poisson_upper(k0 / phi, lam / phi)
    weak = (np.nan_to_num(k) < cfg.min_count) | (np.nan_to_num(k) < cfg.min_ratio * lam)
    score = np.where(weak, 0.0, score)
    score = np.where(ok & (n_prev >= cfg.min_periods), score, np.nan)
    return score, lam, phi


class PoissonDetector(BaseDetector):
    """Poisson tail test of a count series; ``expected`` is ``λ``, ``upper`` the count at
    which the score would pass the threshold."""

    name = "poisson"
    config_cls = PoissonConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: PoissonConfig = self.config
        k = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        if np.any(k[~np.isnan(k)] < 0):
            raise ValueError("poisson: counts must be non-negative")
        score, lam, phi = poisson_core(k, cfg)
        with np.errstate(all="ignore"):
            upper = stats.poisson.isf(10.0 ** -cfg.threshold, lam / phi) * phi
        direction = np.where(np.nan_to_num(score) > 0, 1.0, 0.0)
        return pd.DataFrame({"score": score, "expected": lam, "upper": upper, "dispersion": phi,
                             "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, _, _ = poisson_core(values, self.config)
        return score, np.where(np.nan_to_num(score) > 0, 1.0, 0.0)
