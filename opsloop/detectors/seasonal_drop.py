"""One-sided KPI drop against a seasonal expectation (business KPIs: conversion, success rate).

The expectation at ``t`` is the median of the same time in the previous ``lags`` seasons
(``x[t-P], x[t-2P], …``): the "same hour last days" baseline of seasonal-naive forecasting
(R. Hyndman and G. Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.2), made
robust by the median so one bad day in the history does not become the norm. The residual is scaled
by a causal robust scale of earlier residuals, the signed z of the last ``smooth`` points are
combined by Stouffer's method, and only drops score (``direction="down"``; ``"up"`` for KPIs where a
rise is bad, ``"both"`` for any deviation). A drop must also be at least ``min_drop`` of the expectation. Without a season (none
given and none found in ``fit``), the expectation is the trailing robust level: the exponential
smoothing forecast with span ``window`` of the earlier points winsorised at 4 sd
(:func:`opsloop.detectors.forecast.robust_forecast`).
"""

from __future__ import annotations

import warnings
from typing import Literal

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import alpha_of, count_seen, lag, robust_scale, rolling_sum, scale_floor
from opsloop.detectors.forecast import robust_forecast
from opsloop.detectors.seasonality import calendar_periods, detect_period


class SeasonalDropConfig(DetectorConfig):
    """``period`` in points (None: found in ``fit`` from timestamps and autocorrelation); ``lags``
    seasons in the median; ``baseline`` EW span (points) of the residual scale; ``smooth`` points;
    ``min_drop`` relative; ``window`` EW span of the non-seasonal fallback; ``threshold`` in z units."""

    threshold: float = 4.0
    period: int | None = None
    lags: int = 4
    min_lags: int = 2
    baseline: int = 288
    smooth: int = 3
    min_drop: float = 0.05
    window: int = 60
    min_periods: int = 30
    direction: Literal["down", "up", "both"] = "down"


def _sum2(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Sum of the non-NaN values among ``a``, ``b``, ``c`` (where exactly two are there)."""
    return np.where(np.isnan(a), b + c, np.where(np.isnan(b), a + c, a + b))


def seasonal_expectation(v: np.ndarray, period: int | None, lags: int, min_lags: int, window: int) -> np.ndarray:
    """Median of ``v`` at the previous ``lags`` seasons; without a period, the causal robust
    (winsorised) exponential-smoothing forecast with span ``window``."""
    if period and lags == 3:  # the median of three without a sort (exact), NaN skipped as nanmedian
        a, b, c = (lag(v, period * j) for j in (1, 2, 3))
        cnt = (~np.isnan(a)).astype(np.int8) + ~np.isnan(b) + ~np.isnan(c)
        with np.errstate(all="ignore"):
            mid = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))  # NaN if any is NaN
            one = np.fmax(np.fmax(a, b), c)  # the value when only one is there
            two = _sum2(a, b, c) / 2.0
        med = np.where(cnt == 3, mid, np.where(cnt == 2, two, one))
        return np.where(cnt >= min_lags, med, np.nan)
    if period:
        stack = np.stack([lag(v, period * j) for j in range(1, lags + 1)])
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(stack, axis=0) if lags > 2 else np.nanmean(stack, axis=0)
        return np.where(np.sum(~np.isnan(stack), axis=0) >= min_lags, med, np.nan)
    return robust_forecast(v, alpha_of(window), None, window, 4.0)[0]


def seasonal_drop_core(v: np.ndarray, cfg: SeasonalDropConfig, period: int | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, expected, scale)`` for rows of ``v`` (shape ``(..., n)``)."""
    expected = seasonal_expectation(v, period, cfg.lags, cfg.min_lags, cfg.window)
    resid = v - expected
    floor = scale_floor(expected, v)
    scale = robust_scale(resid, alpha_of(cfg.baseline), floor=floor)
    with np.errstate(all="ignore"):
        z = resid / scale
    if cfg.smooth > 1:
        ok = ~np.isnan(z)
        cnt = rolling_sum(ok.astype(float), cfg.smooth)
        with np.errstate(all="ignore"):
            z = np.where(ok, rolling_sum(z, cfg.smooth) / np.sqrt(np.maximum(cnt, 1)), np.nan)
    with np.errstate(all="ignore"):
        signed = {"down": -z, "up": z, "both": np.abs(z)}[cfg.direction]
        score = np.maximum(signed, 0.0)
        dev = {"down": -resid, "up": resid, "both": np.abs(resid)}[cfg.direction]
        big = dev >= cfg.min_drop * np.abs(expected)
    score = np.where(big | np.isnan(score), score, 0.0)
    ready = (count_seen(v) > cfg.min_periods) & ~np.isnan(v) & ~np.isnan(expected)
    direction = np.where(np.nan_to_num(score) > 0, np.sign(np.nan_to_num(resid)), 0.0)
    return np.where(ready, score, np.nan), direction, expected, scale


class SeasonalDropDetector(BaseDetector):
    """One-sided drop (or rise) of a float ``pd.Series`` against the median of past seasons;
    ``expected`` is that median, ``lower``/``upper`` are ``expected ∓ threshold·scale``."""

    name = "seasonal_drop"
    config_cls = SeasonalDropConfig
    batchable = True

    def _fit(self, x: pd.Series) -> None:
        self.period_ = self.config.period or detect_period(x)

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: SeasonalDropConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, direction, expected, scale = seasonal_drop_core(v, cfg, self.period_)
        band = cfg.threshold * scale
        return pd.DataFrame({"score": score, "expected": expected, "lower": expected - band,
                             "upper": expected + band, "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        cfg: SeasonalDropConfig = self.config
        periods = [p for p in calendar_periods(step) if values.shape[-1] >= 3 * p]  # as detect_period
        period = cfg.period or (periods[0] if periods else None)
        score, direction, _, _ = seasonal_drop_core(values, cfg, period)
        return score, direction
