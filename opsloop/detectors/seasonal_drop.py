"""One-sided KPI drop against a seasonal expectation (business KPIs: conversion, success rate).

The expectation at ``t`` is the median of the same time in the previous ``lags`` seasons
(``x[t-P], x[t-2P], …``): the "same hour last days" baseline of seasonal-naive forecasting
(R. Hyndman and G. Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.2), made
robust by the median so one bad day in the history does not become the norm. The residual is scaled
by a causal robust scale of earlier residuals, the signed z of the last ``smooth`` points are
combined by Stouffer's method, and only drops score (``direction="down"``; ``"up"`` for KPIs where a
rise is bad, ``"both"`` for any deviation). A drop must also be at least ``min_drop`` of the expectation. Without a season, the
expectation is the trailing robust level: the exponential smoothing forecast with span ``window`` of
the earlier points winsorised at 4 sd (:func:`opsloop.detectors.forecast.robust_forecast`). Unless a
``period`` is given, the season (none, one day, one week) is chosen at each point from the earlier
points only — the candidate with the smallest trailing residual scale — so the detector is causal:
nothing is learned in ``fit``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Literal

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import (
    alpha_of,
    count_seen,
    ew_mean,
    lag,
    robust_scale,
    rolling_sum,
    scale_floor,
)
from opsloop.detectors.forecast import robust_forecast
from opsloop.detectors.seasonality import calendar_periods, step_seconds


class SeasonalDropConfig(DetectorConfig):
    """``period`` in points (None: chosen point by point among no season, one day and one week, see
    :func:`seasonal_drop_core`); ``lags``
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


def _smoothed_z(v: np.ndarray, expected: np.ndarray, cfg: SeasonalDropConfig):
    """``(residual, scale, z)``: the residual from ``expected``, its causal robust scale from
    earlier residuals and the Stouffer combination of the last ``smooth`` standardised residuals."""
    resid = v - expected
    alpha = alpha_of(cfg.baseline)
    floor = scale_floor(expected, v)
    scale = robust_scale(resid, alpha, floor=floor)
    with np.errstate(all="ignore"):
        z = resid / scale
    if cfg.smooth > 1:
        ok = ~np.isnan(z)
        cnt = rolling_sum(ok.astype(float), cfg.smooth)
        with np.errstate(all="ignore"):
            z = np.where(ok, rolling_sum(z, cfg.smooth) / np.sqrt(np.maximum(cnt, 1)), np.nan)
    return resid, scale, z


def _rms_error(resid: np.ndarray, cfg: SeasonalDropConfig) -> np.ndarray:
    """Root of the EW mean squared residual of the points before each one (span ``baseline``)."""
    return np.sqrt(lag(ew_mean(resid * resid, alpha_of(cfg.baseline))))


def seasonal_drop_core(v: np.ndarray, cfg: SeasonalDropConfig, periods: Sequence[int | None]
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(score, direction, expected, scale)`` for rows of ``v`` (shape ``(..., n)``).

    ``periods``: candidate season lengths in points, the first one used from the start (``None``:
    the non-seasonal trailing level). A later candidate of period ``P`` becomes eligible once it has
    ``P`` residuals behind it (a full season), and from then on each point uses the eligible
    candidate with the smallest root mean squared one-step error over earlier points (EW, span
    ``baseline``): the season is chosen point by point from the past only (model selection by out-of-sample error, R. Hyndman and G. Athanasopoulos,
    *Forecasting: Principles and Practice*, 3rd ed., §5.8), so a prefix scores as it does within
    the whole series. With later candidates, nothing is scored until the second one (period ``P``)
    has ``min(P, baseline)`` residuals behind it, so the member's early scores (its calibration
    history) come from the model that will be compared, not from a fallback it is about to replace.
    A candidate that cannot become eligible within the ``n`` points given is not computed (exact: it
    changes no score); a series shorter than ``P·min_lags + min(P, baseline)`` gets no score.
    """
    best, eligible_from = None, None
    n = v.shape[-1]
    for period in periods:
        if best is not None:  # skip a candidate that cannot become eligible within these n points
            start = period * cfg.min_lags  # its first residual
            first = eligible_from is None
            if n <= start + period and not (first and n > start + min(period, cfg.baseline)):
                if first:
                    eligible_from = np.zeros(v.shape, dtype=bool)
                continue
        expected = seasonal_expectation(v, period, cfg.lags, cfg.min_lags, cfg.window)
        cand = _smoothed_z(v, expected, cfg)
        if best is None:
            best = [expected, *cand, None]  # the error of the first is computed when compared
            continue
        if best[4] is None:
            best[4] = _rms_error(best[1], cfg)
        seen = lag(np.cumsum(~np.isnan(cand[0]), axis=-1).astype(float), 1, 0.0)
        eligible = seen >= period
        if eligible_from is None:
            eligible_from = seen >= min(period, cfg.baseline)
        err = _rms_error(cand[0], cfg)
        better = eligible & (err < np.where(np.isnan(best[4]), np.inf, best[4]))
        for i, arr in enumerate((expected, *cand, err)):
            best[i] = np.where(better, arr, best[i])
    expected, resid, scale, z, _ = best
    with np.errstate(all="ignore"):
        signed = {"down": -z, "up": z, "both": np.abs(z)}[cfg.direction]
        score = np.maximum(signed, 0.0)
        dev = {"down": -resid, "up": resid, "both": np.abs(resid)}[cfg.direction]
        big = dev >= cfg.min_drop * np.abs(expected)
    score = np.where(big | np.isnan(score), score, 0.0)
    ready = (count_seen(v) > cfg.min_periods) & ~np.isnan(v) & ~np.isnan(expected)
    if eligible_from is not None:
        ready &= eligible_from
    direction = np.where(np.nan_to_num(score) > 0, np.sign(np.nan_to_num(resid)), 0.0)
    return np.where(ready, score, np.nan), direction, expected, scale


def candidate_periods(cfg: SeasonalDropConfig, step: float) -> list[int | None]:
    """The configured ``period`` alone, or the trailing level (None) then one day and one week in
    points of ``step`` seconds (:func:`~opsloop.detectors.seasonality.calendar_periods`)."""
    if cfg.period:
        return [cfg.period]
    return [None, *calendar_periods(step)]


class SeasonalDropDetector(BaseDetector):
    """One-sided drop (or rise) of a float ``pd.Series`` against the median of past seasons;
    ``expected`` is that median, ``lower``/``upper`` are ``expected ∓ threshold·scale``."""

    name = "seasonal_drop"
    config_cls = SeasonalDropConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: SeasonalDropConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        periods = candidate_periods(cfg, step_seconds(x.index))
        score, direction, expected, scale = seasonal_drop_core(v, cfg, periods)
        band = cfg.threshold * scale
        return pd.DataFrame({"score": score, "expected": expected, "lower": expected - band,
                             "upper": expected + band, "direction": direction}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        cfg: SeasonalDropConfig = self.config
        score, direction, _, _ = seasonal_drop_core(values, cfg, candidate_periods(cfg, step))
        return score, direction
