"""Two-sided CUSUM of standardised residuals against a trailing robust baseline.

Source: E. S. Page (1954), "Continuous inspection schemes", *Biometrika* 41(1/2):100-115 — the
cumulative sum ``S_t = max(0, S_{t-1} + z_t - k)`` alarms when ``S_t > h``; D. C. Montgomery,
*Introduction to Statistical Quality Control*, ch. 9, for the tabular two-sided form and the usual
``k = 0.5``, ``h = 4..5`` (in sd units).

Vectorised without a loop: with ``C_t = sum_{s<=t} (z_s - k)`` and ``C_0 = 0``, Page's recursion is
``S_t = C_t - min(0, min_{s<=t} C_s)`` (a running minimum, ``np.minimum.accumulate``). ``z`` is the
residual of each point against the causal robust baseline — the winsorised exponential-smoothing
forecast with span ``baseline`` and its predicted sd from earlier points only
(:func:`opsloop.detectors.forecast.robust_forecast`) — clipped at ``±clip`` so one spike cannot
dominate. There is no
reset after an alarm (a reset would make the statistic depend on the threshold); the baseline
follows a lasting shift, after which the residuals return to zero and ``S`` drains at rate ``k``.

With ``level="mean"`` the baseline is instead the robust exponentially weighted *mean* of the earlier
points (:func:`opsloop.detectors.causal.robust_level`; weights normalised, so while fewer than about
``baseline`` points have been seen it is the plain mean of all of them) and the robust scale of the
residuals from it: a self-starting CUSUM, which standardises each point by the running estimates
of the in-control mean and sd from all earlier data (D. M. Hawkins, 1987, "Self-starting cusum
charts for location and scale", *The Statistician* 36(4):299-316). With a long ``baseline`` it keeps
accumulating a lasting departure from the long-run level (a slow drift, a sustained dip) that a
short-memory baseline adopts within a few hundred points.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import alpha_of, count_seen, memoized, robust_level, scale_floor
from opsloop.detectors.forecast import robust_forecast


class CusumConfig(DetectorConfig):
    """``k`` drift and ``h`` decision interval in sd units; ``threshold`` in units of ``h`` (score =
    ``max(S+, S-)/h``); ``baseline`` is the EW span (points) of the level and scale; ``level``: the
    baseline is the robust exponential-smoothing ``"forecast"`` or the robust EW ``"mean"`` of the
    earlier points (self-starting, see the module doc); ``min_periods`` points must precede a score;
    ``clip`` bounds each standardised residual."""

    threshold: float = 1.0
    k: float = 0.5
    h: float = 5.0
    baseline: int = 240
    min_periods: int = 30
    clip: float = 6.0
    level: Literal["forecast", "mean"] = "forecast"


def cusum_core(v: np.ndarray, cfg: CusumConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, level, scale)`` of each row of ``v`` (shape ``(..., n)``)."""
    if cfg.level == "mean":
        level, scale = robust_level(v, alpha_of(cfg.baseline))
        scale = np.maximum(scale, scale_floor(level, v))  # NaN stays NaN (before two values)
    else:
        level, scale = robust_forecast(v, alpha_of(cfg.baseline), None, cfg.baseline, 4.0)

    def standardise():  # shared by CUSUMs of one baseline (different k) within an ensemble
        with np.errstate(all="ignore"):
            z = np.clip((v - level) / scale, -cfg.clip, cfg.clip)
        ready = (count_seen(v) > cfg.min_periods) & ~np.isnan(z)
        return ready, np.where(ready, z, 0.0)

    ready, z0 = memoized(("cusum_z", cfg.level, cfg.baseline, cfg.clip, cfg.min_periods), v,
                         standardise)
    up = np.cumsum(np.where(ready, z0 - cfg.k, 0.0), axis=-1)
    dn = np.cumsum(np.where(ready, -z0 - cfg.k, 0.0), axis=-1)
    s_up = up - np.minimum(np.minimum.accumulate(up, axis=-1), 0.0)
    s_dn = dn - np.minimum(np.minimum.accumulate(dn, axis=-1), 0.0)
    score = np.where(ready, np.maximum(s_up, s_dn) / cfg.h, np.nan)
    direction = np.where(s_up > s_dn, 1.0, np.where(s_dn > s_up, -1.0, 0.0))
    return score, direction, level, scale


class CusumDetector(BaseDetector):
    """Two-sided CUSUM on a float ``pd.Series``; ``expected`` is the trailing robust level and
    ``lower``/``upper`` are ``level ∓ h·scale``."""

    name = "cusum"
    config_cls = CusumConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: CusumConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, direction, level, scale = cusum_core(v, cfg)
        return pd.DataFrame({"score": score, "expected": level, "lower": level - cfg.h * scale,
                             "upper": level + cfg.h * scale, "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, direction, _, _ = cusum_core(values, self.config)
        return score, direction
