"""Forecast-residual detector: exponential smoothing (simple or Holt's linear trend), run causally.

Sources: R. G. Brown (1959), *Statistical Forecasting for Inventory Control* (simple exponential
smoothing); C. C. Holt (1957/2004), "Forecasting seasonals and trends by exponentially weighted
moving averages", *Int. J. Forecasting* 20(1):5-10 (the linear trend); R. Hyndman, A. Koehler,
K. Ord and R. Snyder (2008), *Forecasting with Exponential Smoothing*, ch. 6 (one-step prediction
intervals ``f ± z·σ``).

The one-step forecast ``f_t = l_{t-1} + b_{t-1}`` is a linear filter of the series, so it runs in
``scipy.signal.lfilter`` (no Python loop): with ``L`` the lag operator,
``f = α((1+β)L - L²) x / (1 - (2-α-αβ)L + (1-α)L²)`` (Holt) and ``f = αL x / (1 - (1-α)L)`` (simple),
started at the first value. Two passes make it robust: the second smooths the series winsorised at
``winsorize`` predicted sd around the first pass's forecast, so a spike barely moves the level. The
predicted sd is the causal robust scale of earlier residuals. Score: ``|x - f| / σ``. ``alpha`` and
``beta`` are fitted in ``fit`` (least absolute one-step error over a grid, on the first
``fit_points`` points only) when not given.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pandas as pd
from scipy.signal import lfilter

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import (
    SHARED_MEMO,
    alpha_of,
    array_key,
    count_seen,
    ffill,
    lag,
    nan0,
    robust_scale,
    scale_floor,
)


class ForecastConfig(DetectorConfig):
    """``alpha`` (level) and ``beta`` (trend, with ``trend``) smoothing factors, fitted when None;
    ``fit_points`` training points; ``baseline`` EW span of the residual scale; ``winsorize`` in sd
    (None: no second pass); ``min_periods`` points before a score; ``threshold`` in sd."""

    threshold: float = 4.0
    alpha: float | None = None
    beta: float | None = None
    trend: bool = False
    fit_points: int = 2000
    baseline: int = 288
    winsorize: float | None = 4.0
    min_periods: int = 30


_ALPHAS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
_BETAS = (0.01, 0.05, 0.1, 0.3)


def one_step_forecast(v: np.ndarray, alpha: float, beta: float | None) -> np.ndarray:
    """One-step forecasts of each row of ``v`` (shape ``(..., n)``; NaN carried forward)."""
    filled = ffill(v)
    first_idx = np.argmax(~np.isnan(filled), axis=-1)
    x0 = np.take_along_axis(filled, first_idx[..., None], axis=-1)
    x = nan0(filled - x0)  # before the first value: 0 (the filter rests)
    if beta is None:
        f = lfilter([0.0, alpha], [1.0, -(1.0 - alpha)], x, axis=-1)
    else:
        f = lfilter([0.0, alpha * (1 + beta), -alpha], [1.0, -(2 - alpha - alpha * beta), 1.0 - alpha], x, axis=-1)
    return np.where(np.isnan(lag(filled)), np.nan, f + x0)


@contextmanager
def shared_forecasts() -> Iterator[None]:
    """Within this block, :func:`robust_forecast` (and the running range of a series) is computed
    once per (series, parameters): members of an ensemble that share a baseline (forecast and
    CUSUM) do not recompute it."""
    token = SHARED_MEMO.set({})
    try:
        yield
    finally:
        SHARED_MEMO.reset(token)


def robust_forecast(v: np.ndarray, alpha: float, beta: float | None, baseline: int,
                    winsorize: float | None) -> tuple[np.ndarray, np.ndarray]:
    """One-step forecast and predicted sd of each row of ``v``, robust (two passes, see module doc)."""
    memo = SHARED_MEMO.get()
    key = None
    if memo is not None:
        key = ("forecast", *array_key(v), alpha, beta, baseline, winsorize)
        if key in memo:
            return memo[key]
    a_scale = alpha_of(baseline)
    f = one_step_forecast(v, alpha, beta)
    floor = scale_floor(f, v)
    sd = robust_scale(v - f, a_scale, floor=floor)
    if winsorize is not None:
        lim = np.where(np.isnan(sd), np.inf, winsorize * sd)
        with np.errstate(all="ignore"):
            xc = np.where(np.isnan(f) | np.isnan(v), v, np.clip(v, f - lim, f + lim))
        f = one_step_forecast(xc, alpha, beta)
        sd = robust_scale(v - f, a_scale, floor=floor)
    if memo is not None:
        memo[key] = (f, sd)
    return f, sd


def forecast_core(v: np.ndarray, alpha: float, beta: float | None, cfg: ForecastConfig):
    """``(score, signed z, forecast, sd)`` for rows of ``v``."""
    f, sd = robust_forecast(v, alpha, beta, cfg.baseline, cfg.winsorize)
    with np.errstate(all="ignore"):
        z = (v - f) / sd
    ready = (count_seen(v) > cfg.min_periods) & ~np.isnan(v)
    z = np.where(ready, z, np.nan)
    return np.abs(z), z, f, sd


class ForecastDetector(BaseDetector):
    """Exponential-smoothing forecast residual of a float ``pd.Series``; ``expected`` is the
    one-step forecast, ``lower``/``upper`` the ``threshold``-sd prediction interval."""

    name = "forecast"
    config_cls = ForecastConfig
    batchable = True

    def _fit(self, x: pd.Series) -> None:
        cfg: ForecastConfig = self.config
        self.alpha_, self.beta_ = cfg.alpha, (cfg.beta if cfg.trend else None)
        if (cfg.trend and self.beta_ is None) or self.alpha_ is None:
            v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)[: cfg.fit_points]
            alphas = _ALPHAS if cfg.alpha is None else (cfg.alpha,)
            betas: tuple[float | None, ...] = ((None,) if not cfg.trend else _BETAS if cfg.beta is None else (cfg.beta,))
            best = (np.inf, alphas[0], betas[0])
            for a in alphas:
                for b in betas:
                    err = np.nanmean(np.abs(v - one_step_forecast(v, a, b))) if len(v) > 2 else 0.0
                    if np.isfinite(err) and err < best[0]:
                        best = (err, a, b)
            self.alpha_, self.beta_ = best[1], best[2]

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: ForecastConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score, z, f, sd = forecast_core(v, self.alpha_, self.beta_, cfg)
        band = cfg.threshold * sd
        direction = np.nan_to_num(np.sign(z), nan=0.0)
        return pd.DataFrame({"score": score, "expected": f, "lower": f - band, "upper": f + band,
                             "direction": direction}, index=x.index)

    def can_batch(self) -> bool:
        cfg: ForecastConfig = self.config
        return cfg.alpha is not None and (cfg.beta is not None or not cfg.trend)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        cfg: ForecastConfig = self.config
        score, z, _, _ = forecast_core(values, cfg.alpha, cfg.beta if cfg.trend else None, cfg)
        return score, np.nan_to_num(np.sign(z), nan=0.0)
