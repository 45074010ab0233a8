"""Variance change: log ratio of the recent to the long-run robust scale of successive differences.

Source: the log ratio of two scale estimates as the statistic for a change in variance (M. Basseville
and I. V. Nikiforov, 1993, *Detection of Abrupt Changes: Theory and Application*, §2.4 on changes
in variance; the two-variance F-ratio in log form), with the noise scale measured on successive
differences ``d_t = x_t - x_{t-1}`` (J. von Neumann, 1941, "Distribution of the ratio of the mean
square successive difference to the variance", *Ann. Math. Statist.* 12(4):367-395): differences
cancel the level, a slow drift and a smooth daily cycle, so what is left is the point-to-point noise.
The recent scale is ``sqrt(pi/2)`` times the EW mean of ``|d|`` over span ``window`` points
(including the current point); the long-run scale is the robust (winsorised) EW scale of ``d`` over
span ``baseline`` (:func:`opsloop.detectors.causal.robust_scale`) as it stood ``window`` points
earlier, so the change itself does not leak into it. Score ``|ln(recent / long-run)|`` (ln 2: the
amplitude doubled or halved); direction +1 for a rise in variance, -1 for a fall. Both scales are
floored (:func:`opsloop.detectors.causal.scale_floor`) so a flat series does not divide by 0.

It sees what level-based members do not: noise that falls or grows inside the old range, without
a new record or a shift of the mean (a sensor or service that goes quiet or starts to flap, an
oscillation that dies out). Loop-free (``lfilter`` recursions) and causal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import (
    MEAN_ABS_TO_SD,
    alpha_of,
    count_seen,
    ew_mean,
    ffill,
    lag,
    nan0,
    robust_scale,
    scale_floor,
)


class ScaleChangeConfig(DetectorConfig):
    """``window``: EW span (points) of the recent scale; ``baseline``: EW span (points) of the
    long-run scale; ``min_periods`` points before a score (and at least ``2·window``);
    ``threshold`` in natural-log units of the scale ratio."""

    threshold: float = 1.0
    window: int = 60
    baseline: int = 300
    min_periods: int = 30


def scale_change_core(v: np.ndarray, cfg: ScaleChangeConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, previous value)`` of each row of ``v`` (shape ``(..., n)``)."""
    prev = lag(ffill(v))
    d = v - prev
    floor = scale_floor(prev, v)
    long_run = lag(robust_scale(d, alpha_of(cfg.baseline), floor=floor), cfg.window)
    recent = np.maximum(ew_mean(np.abs(d), alpha_of(cfg.window)) * MEAN_ABS_TO_SD, floor)
    with np.errstate(all="ignore"):
        z = np.log(recent / long_run)
    ready = (count_seen(v) > max(cfg.min_periods, 2 * cfg.window)) & ~np.isnan(z)
    z = np.where(ready, z, np.nan)
    return np.abs(z), nan0(np.sign(z)), prev


class ScaleChangeDetector(BaseDetector):
    """Log ratio of the recent to the long-run scale of successive differences of a float
    ``pd.Series`` (module doc); ``expected`` is the previous value (the differences' reference)."""

    name = "scale_change"
    config_cls = ScaleChangeConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, direction, prev = scale_change_core(v, self.config)
        return pd.DataFrame({"score": score, "expected": prev, "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, direction, _ = scale_change_core(values, self.config)
        return score, direction
