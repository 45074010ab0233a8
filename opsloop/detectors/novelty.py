"""Range novelty: how far a value falls outside every value seen before it.

Source: the "spatial anomaly" rule of Numenta's detector in the Numenta Anomaly Benchmark
(A. Lavin and S. Ahmad, 2015, arXiv:1510.03336; S. Ahmad et al., 2017, "Unsupervised real-time
anomaly detection for streaming data", *Neurocomputing* 262:134-147): a value beyond the range of the
history is anomalous whatever a model predicts. Score: the excess over the running maximum (or under
the running minimum) of the previous points — all of them, or the last ``window`` — as a fraction of
that range; 0 inside the range. Scale-free and naturally sparse. Running extremes are cumulative
(``np.fmax.accumulate``), so the score is causal and loop-free.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import count_seen, lag, nan0, rolling_max, running_extremes


class NoveltyConfig(DetectorConfig):
    """``window`` previous points define the range (0: all of them); ``min_periods`` points must
    precede a score; ``threshold`` as a fraction of the range."""

    threshold: float = 0.05
    window: int = 0
    min_periods: int = 30


def novelty_core(v: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, low, high)`` for rows of ``v`` (shape ``(..., n)``)."""
    if window:
        hi = lag(rolling_max(v, window))
        lo = -lag(rolling_max(-v, window))
    else:
        hi, lo = running_extremes(v)
        hi, lo = np.where(np.isinf(hi), np.nan, hi), np.where(np.isinf(lo), np.nan, lo)
    span = hi - lo
    unit = np.maximum(span, np.maximum(np.abs(nan0(hi)), np.abs(nan0(lo))) * 1e-9 + 1e-12)
    with np.errstate(all="ignore"):
        up, down = (v - hi) / unit, (lo - v) / unit
        score = np.maximum(np.maximum(up, down), 0.0)
    direction = np.where(up > 0, 1.0, np.where(down > 0, -1.0, 0.0))
    ready = (count_seen(v) > min_periods) & ~np.isnan(v) & ~np.isnan(span)
    return np.where(ready, score, np.nan), direction, lo, hi


class NoveltyDetector(BaseDetector):
    """Excess of a float ``pd.Series`` over its past range; ``expected`` is the nearest range end
    (``lower``/``upper`` the range)."""

    name = "novelty"
    config_cls = NoveltyConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: NoveltyConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, direction, lo, hi = novelty_core(v, cfg.window, cfg.min_periods)
        with np.errstate(all="ignore"):
            expected = np.clip(v, lo, hi)
        return pd.DataFrame({"score": score, "expected": expected, "lower": lo, "upper": hi,
                             "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, direction, _, _ = novelty_core(values, self.config.window, self.config.min_periods)
        return score, direction
