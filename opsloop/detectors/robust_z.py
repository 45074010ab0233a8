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
    """Median and MAD of the ``window`` points strictly before each position, along the last axis.

    ``values``: float array of shape (n,) or (m, n) (m series of one length). Returns two arrays of
    the same shape, NaN where fewer than ``min_periods`` non-NaN points precede. Exact (not an
    approximation); memory is bounded by processing about ``_CHUNK`` positions at a time.
    """
    v2 = np.atleast_2d(values)
    m, n = v2.shape
    med = np.full((m, n), np.nan)
    mad = np.full((m, n), np.nan)
    if n >= 2:
        padded = np.concatenate([np.full((m, window), np.nan), v2], axis=1)
        windows = sliding_window_view(padded, window, axis=1)[:, :n]  # [j, i] = v2[j, i-window : i]
        step = max(1, _CHUNK // m)
        for lo in range(0, n, step):
            w = windows[:, lo : lo + step]
            ok = np.sum(~np.isnan(w), axis=2) >= min_periods
            if not ok.any():
                continue
            sel = w[ok]
            with np.errstate(all="ignore"):
                mm = np.nanmedian(sel, axis=1)
                dd = np.nanmedian(np.abs(sel - mm[:, None]), axis=1)
            med[:, lo : lo + step][ok] = mm
            mad[:, lo : lo + step][ok] = dd
    if values.ndim == 1:
        return med[0], mad[0]
    return med, mad


def _rolling(a: np.ndarray, window: int, min_periods: int):
    """pandas rolling over the last axis of a (m, n) array (one column per series)."""
    return pd.DataFrame(a.T).rolling(window, min_periods=min_periods)


class RobustZDetector(BaseDetector):
    """Modified z-score against a trailing median/MAD; input a float ``pd.Series``.

    Where the MAD is zero (flat windows) the scale falls back to the trailing standard deviation and
    then to 1e-3 of the median's magnitude, so a flat series that jumps still scores high.
    ``expected`` is the trailing median; ``lower``/``upper`` are ``median ∓ threshold·MAD/0.6745``.
    """

    name = "robust_z"
    config_cls = RobustZConfig

    batchable = True

    def _parts(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Score, expected (trailing median), scale and direction of the rows of ``v`` (m, n)."""
        cfg: RobustZConfig = self.config
        med, mad = trailing_median_mad(v, cfg.window, cfg.min_periods)
        shifted = np.concatenate([np.full((v.shape[0], 1), np.nan), v[:, :-1]], axis=1)
        std = _rolling(shifted, cfg.window, cfg.min_periods).std().to_numpy().T
        scale = mad / 0.6745
        scale = np.where(scale > 0, scale, std)
        scale = np.where(scale > 0, scale, np.maximum(np.abs(med) * 1e-3, 1e-9))
        z = (v - med) / scale
        if cfg.smooth > 1:  # Stouffer: sum of the last `smooth` z over sqrt(their count)
            roll = _rolling(z, cfg.smooth, 1)
            z = (roll.sum().to_numpy().T / np.sqrt(roll.count().to_numpy().T))
            z[np.isnan(v)] = np.nan
        if cfg.direction == "up":
            score = np.maximum(z, 0.0)
        elif cfg.direction == "down":
            score = np.maximum(-z, 0.0)
        else:
            score = np.abs(z)
        score = np.where(np.isnan(z), np.nan, score)
        with np.errstate(invalid="ignore"):
            direction = np.nan_to_num(np.sign(v - med), nan=0.0)
        return score, med, scale, direction

    def _score(self, x: pd.Series) -> pd.DataFrame:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, med, scale, direction = (a[0] for a in self._parts(v[None, :]))
        band = self.config.threshold * scale
        return pd.DataFrame({"score": score, "expected": med, "lower": med - band, "upper": med + band,
                             "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        score, _, _, direction = self._parts(np.asarray(values, dtype=float))
        return score, direction
