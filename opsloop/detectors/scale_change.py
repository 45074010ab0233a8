"""Variance change: log ratio of the recent to the long-run robust scale of forecast residuals.

Source: the log ratio of two scale estimates as a test of a change in variance (M. Basseville and
I. V. Nikiforov, 1993, *Detection of Abrupt Changes*, §2.4 on changes in variance; the robust
scale is an EW mean absolute residual, :func:`opsloop.detectors.causal.robust_scale`). Residuals
are from the causal robust exponential-smoothing forecast
(:func:`opsloop.detectors.forecast.robust_forecast`); the recent scale is the EW mean absolute
residual over span ``window`` (points, including the current one), the long-run scale the robust
scale over span ``baseline`` from points before the recent window. Score ``|ln(recent / long-run)|``
(direction +1 for a rise in variance, -1 for a fall).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import MEAN_ABS_TO_SD, alpha_of, count_seen, ew_mean, lag, nan0, robust_scale, scale_floor
from opsloop.detectors.forecast import robust_forecast


class ScaleChangeConfig(DetectorConfig):
    """``window``: EW span (points) of the recent scale; ``baseline``: EW span of the forecast and
    of the long-run scale; ``min_periods`` points before a score; ``threshold`` in natural-log
    units."""

    threshold: float = 1.0
    window: int = 24
    baseline: int = 300
    min_periods: int = 30


def scale_change_core(v: np.ndarray, cfg: ScaleChangeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, forecast)`` of each row of ``v`` (shape ``(..., n)``)."""
    f, sd = robust_forecast(v, alpha_of(cfg.baseline), None, cfg.baseline, 4.0)
    r = v - f
    floor = scale_floor(f, v)
    recent = np.maximum(ew_mean(np.abs(r), alpha_of(cfg.window)) * MEAN_ABS_TO_SD, floor)
    long_run = lag(sd, cfg.window)
    with np.errstate(all="ignore"):
        z = np.log(recent / long_run)
    ready = (count_seen(v) > max(cfg.min_periods, 2 * cfg.window)) & ~np.isnan(v)
    z = np.where(ready, z, np.nan)
    return np.abs(z), nan0(np.sign(z)), f


class ScaleChangeDetector(BaseDetector):
    """Log ratio of recent to long-run residual scale of a float ``pd.Series`` (module doc);
    ``expected`` is the robust forecast the residuals are taken from."""

    name = "scale_change"
    config_cls = ScaleChangeConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, direction, f = scale_change_core(v, self.config)
        return pd.DataFrame({"score": score, "expected": f, "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, direction, _ = scale_change_core(values, self.config)
        return score, direction
