"""Seasonal decomposition + generalized ESD on the residuals, in a causal form (S-H-ESD).

Sources: R. B. Cleveland, W. S. Cleveland, J. E. McRae and I. Terpenning (1990), "STL: A
seasonal-trend decomposition procedure based on loess", *J. Official Statistics* 6(1):3-73 (via
``statsmodels.tsa.seasonal.STL``); B. Rosner (1983), "Percentage points for a generalized ESD
many-outlier procedure", *Technometrics* 25(2):165-172; J. Hochenbaum, O. Vallis and A. Kejariwal
(2017), "Automatic anomaly detection in the cloud via statistical learning", arXiv:1704.07706
(S-H-ESD: median and MAD in place of mean and sd on the STL residual).

Causal form: the series is cut into blocks of one period counted from its first point. The seasonal
profile applied to a block comes from a robust STL fitted on the ``history`` periods *before* the
block (its last period of the seasonal component, phase-aligned), so a block never sees itself. The
deseasonalised series is compared with the median of the previous ``window`` deseasonalised points
and scaled by their MAD (x1.4826): the score is S-H-ESD's test statistic ``|d - median| / MAD`` of the
point against the trailing window. The default threshold is Rosner's critical value ``λ_1`` for a
window of that size at level ``alpha``. Without a season (none given and none found in ``fit``) the
profile is zero, i.e. a trailing median/MAD test. Scores are NaN until ``min_history`` periods of
history exist (seasonal case) and ``min_periods`` points precede.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.robust_z import trailing_median_mad
from opsloop.detectors.seasonality import detect_period


class StlEsdConfig(DetectorConfig):
    """``threshold`` in robust z (None: Rosner's ESD critical value for ``window`` points at
    ``alpha``); ``period`` in points (None: found in ``fit``); ``history`` periods per STL fit, at
    least ``min_history`` before scoring; ``window`` trailing points of median and MAD (None: one
    period, at least 60); ``jump``: the loess smoothers are evaluated every ``jump`` points and
    interpolated (STL's speed-up; None: a tenth of the period)."""

    threshold: float | None = None
    alpha: float = 0.05
    period: int | None = None
    history: int = 4
    min_history: int = 2
    window: int | None = None
    min_periods: int = 30
    robust: bool = True
    jump: int | None = None


def esd_critical_value(n: int, alpha: float, i: int = 1) -> float:
    """Rosner's critical value ``λ_i`` for ``n`` points at significance ``alpha`` (two-sided)."""
    m = n - i + 1
    p = 1.0 - alpha / (2.0 * m)
    t = stats.t.ppf(p, m - 2)
    return float((m - 1) * t / np.sqrt((m - 2 + t * t) * m))


def causal_seasonal_profile(v: np.ndarray, period: int, history: int, min_history: int, robust: bool,
                            jump: int | None = None) -> np.ndarray:
    """Seasonal component for each point from an STL fit on the periods before its block (NaN where
    fewer than ``min_history`` periods precede the block or the history is all NaN)."""
    from statsmodels.tsa.seasonal import STL  # imported lazily: optional at import time

    n = v.shape[0]
    out = np.full(n, np.nan)
    j = jump or max(1, period // 10)
    for start in range(min_history * period, n, period):
        hist = pd.Series(v[max(0, start - history * period) : start])
        if hist.notna().sum() < min_history * period // 2:
            continue
        hist = hist.interpolate(limit_direction="both")
        stl = STL(hist.to_numpy(), period=period, robust=robust, seasonal_jump=j, trend_jump=j, low_pass_jump=j)
        seasonal = stl.fit().seasonal
        end = min(start + period, n)
        out[start:end] = seasonal[-period:][: end - start]
    return out


class StlEsdDetector(BaseDetector):
    """Causal S-H-ESD on a float ``pd.Series``; ``expected`` is seasonal profile + trailing median,
    ``lower``/``upper`` are ``expected ∓ threshold·MAD·1.4826``."""

    name = "stl_esd"
    config_cls = StlEsdConfig

    def _fit(self, x: pd.Series) -> None:
        cfg: StlEsdConfig = self.config
        period = cfg.period or detect_period(x)
        self.period_ = period if period and period >= 2 else None
        self.window_ = cfg.window or max(self.period_ or 0, 60)

    def _threshold(self) -> float:
        cfg: StlEsdConfig = self.config
        return cfg.threshold if cfg.threshold is not None else esd_critical_value(self.window_, cfg.alpha)

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: StlEsdConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        if self.period_:
            seasonal = causal_seasonal_profile(v, self.period_, cfg.history, cfg.min_history, cfg.robust, cfg.jump)
        else:
            seasonal = np.zeros_like(v)
        d = v - seasonal
        med, mad = trailing_median_mad(d, self.window_, min(cfg.min_periods, self.window_))
        scale = mad * 1.4826
        std = pd.Series(d).shift(1).rolling(self.window_, min_periods=2).std().to_numpy()
        scale = np.where(scale > 0, scale, std)
        scale = np.where(scale > 0, scale, np.maximum(np.abs(np.nan_to_num(med)) * 1e-3, 1e-9))
        with np.errstate(all="ignore"):
            z = (d - med) / scale
        score = np.abs(z)
        expected = seasonal + med
        band = self.threshold_ * scale if hasattr(self, "threshold_") else np.nan
        return pd.DataFrame({"score": score, "expected": expected, "lower": expected - band,
                             "upper": expected + band, "seasonal": seasonal,
                             "direction": np.nan_to_num(np.sign(z), nan=0.0)}, index=x.index)
