"""Variance change: log ratio of the recent to the long-run robust scale of forecast residuals.

Source: the log ratio of two scale estimates as the statistic for a change in variance (M. Basseville
and I. V. Nikiforov, 1993, *Detection of Abrupt Changes: Theory and Application*, §2.4 on changes
in variance; the F-ratio test of two variances in log form). Residuals ``r = x - f`` are from the
causal robust exponential-smoothing forecast ``f`` (:func:`opsloop.detectors.forecast.robust_forecast`,
span ``baseline``). The recent scale is ``sqrt(pi/2)`` times the EW mean of ``|r|`` over span
``window`` points (including the current point); the long-run scale is the forecast's predicted sd
(:func:`opsloop.detectors.causal.robust_scale`, winsorised, span ``baseline``) as it stood ``window``
points earlier, so the change itself does not leak into it. Score ``|ln(recent / long-run)|`` (ln 2:
the amplitude doubled or halved), direction +1 for a rise in variance, -1 for a fall. Both scales
are floored (:func:`opsloop.detectors.causal.scale_floor`) so a flat series does not divide by 0.

It sees what level-based members do not: an amplitude that falls or grows inside the old range,
without a new record or a shift of the mean (a sensor or service that goes quiet, an oscillation
that dies out). With a strong daily cycle at 5-minute spacing the slow forecast's residual follows
the cycle and the score swings each day; within the ensemble a member is calibrated on its own
history, so a swing that recurs daily is no record.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import MEAN_ABS_TO_SD, alpha_of, count_seen, ew_mean, lag, nan0, scale_floor
from opsloop.detectors.forecast import robust_forecast


class ScaleChangeConfig(DetectorConfig):
    """``window``: EW span (points) of the recent scale; ``baseline``: EW span of the forecast and
    of the long-run scale; ``min_periods`` points before a score; ``threshold`` in natural-log
    units."""

    threshold: float = 1.0
    window: int = 60
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
