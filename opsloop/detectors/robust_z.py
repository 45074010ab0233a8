"""Causal robust z-score: modified z of each point against the median and MAD of a trailing window.

Source: B. Iglewicz and D. Hoaglin (1993), *How to Detect and Handle Outliers*: the modified z-score
``M = 0.6745 (x - median) / MAD``, with ``|M| > 3.5`` the usual outlier rule.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from opsloop.detectors.base import BaseDetector, DetectorConfig

_CHUNK = 20_000


class RobustZConfig(DetectorConfig):
    """``window`` trailing points (excluding the current one) give median and MAD; ``min_periods``
    of them must be non-NaN; the signed z of the last ``smooth`` points are combined by Stouffer's
    method (sum over square root of their count, so a sustained small shift adds up while noise
    does not) before ``direction`` keeps upward, downward or both deviations. ``threshold`` is in
    modified-z units."""

    threshold: float = 4.0
    window: int = 240
    min_periods: int = 60
    smooth: int = 5
    direction: Literal["up", "down", "both"] = "both"


def trailing_median_mad(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """Median and MAD of the ``window`` points strictly before each position.

    ``values``: float array of shape (n,). Returns two arrays of shape (n,), NaN where fewer than
    ``min_periods`` non-NaN points precede. Exact (not an approximation); memory is bounded by
    processing ``_CHUNK`` positions at a time.
    """
    n = values.shape[0]
    med = np.full(n, np.nan)
    mad = np.full(n, np.nan)
    if n < 2:
        return med, mad
    padded = np.concatenate([np.full(window, np.nan), values])
    windows = sliding_window_view(padded, window)[:n]  # windows[i] = values[i-window : i]
    for lo in range(0, n, _CHUNK):
        w = windows[lo : lo + _CHUNK]
        count = np.sum(~np.isnan(w), axis=1)
        ok = count >= min_periods
        if not ok.any():
            continue
        with np.errstate(all="ignore"):
            m = np.nanmedian(w[ok], axis=1)
            d = np.nanmedian(np.abs(w[ok] - m[:, None]), axis=1)
        med[lo : lo + _CHUNK][ok] = m
        mad[lo : lo + _CHUNK][ok] = d
    return med, mad


class RobustZDetector(BaseDetector):
    """Modified z-score against a trailing median/MAD; input a float ``pd.Series``.

    Where the MAD is zero (flat windows) the scale falls back to the trailing standard deviation and
    then to 1e-3 of the median's magnitude, so a flat series that jumps still scores high.
    ``expected`` is the trailing median; ``lower``/``upper`` are ``median ∓ threshold·MAD/0.6745``.
    """

    name = "robust_z"
    config_cls = RobustZConfig

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: RobustZConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        med, mad = trailing_median_mad(v, cfg.window, cfg.min_periods)
        std = pd.Series(v).shift(1).rolling(cfg.window, min_periods=cfg.min_periods).std().to_numpy()
        scale = mad / 0.6745
        scale = np.where(scale > 0, scale, std)
        scale = np.where(scale > 0, scale, np.maximum(np.abs(med) * 1e-3, 1e-9))
        z = (v - med) / scale
        if cfg.smooth > 1:  # Stouffer: sum of the last `smooth` z over sqrt(their count)
            roll = pd.Series(z).rolling(cfg.smooth, min_periods=1)
            z = (roll.sum() / np.sqrt(roll.count())).to_numpy(copy=True)
            z[np.isnan(v)] = np.nan
        if cfg.direction == "up":
            score = np.maximum(z, 0.0)
        elif cfg.direction == "down":
            score = np.maximum(-z, 0.0)
        else:
            score = np.abs(z)
        score = np.where(np.isnan(z), np.nan, score)
        band = cfg.threshold * scale
        return pd.DataFrame(
            {"score": score, "expected": med, "lower": med - band, "upper": med + band}, index=x.index
        )
