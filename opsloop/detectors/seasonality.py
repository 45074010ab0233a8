"""Season length from timestamps and autocorrelation (used in ``fit``, never while scoring).

Candidates are calendar periods — one day and one week — expressed in points of the series' median
spacing; a candidate is kept when the series covers at least ``min_cycles`` of it and the
autocorrelation at that lag of the series, detrended by a centred moving average one period long,
reaches ``min_acf`` (after e.g. R. Hyndman and G. Athanasopoulos, *Forecasting: Principles and
Practice*, 3rd ed., §2.8 on autocorrelation and seasonality).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DAY = 86_400.0


def step_seconds(index: pd.DatetimeIndex) -> float:
    """Median spacing of ``index`` in seconds (NaN with fewer than two points)."""
    if len(index) < 2:
        return float("nan")
    d = np.diff(index.as_unit("ns").asi8) / 1e9
    return float(np.median(d))


def calendar_periods(step: float, max_period: int = 20_000) -> list[int]:
    """One day and one week in points of ``step`` seconds, where that is a whole number ≥ 4."""
    out = []
    if not np.isfinite(step) or step <= 0:
        return out
    for span in (DAY, 7 * DAY):
        p = span / step
        if abs(p - round(p)) < 1e-6 and 4 <= round(p) <= max_period:
            out.append(round(p))
    return out


def acf_at(values: np.ndarray, lag: int) -> float:
    """Autocorrelation at ``lag`` of ``values`` detrended by a centred moving average ``lag`` long."""
    v = pd.Series(values, dtype=float).interpolate(limit_direction="both")
    trend = v.rolling(lag, center=True, min_periods=max(lag // 2, 1)).mean()
    r = (v - trend).to_numpy()
    a, b = r[:-lag], r[lag:]
    ok = ~(np.isnan(a) | np.isnan(b))
    if ok.sum() < 10:
        return float("nan")
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float("nan")


def detect_period(x: pd.Series, min_cycles: float = 3.0, min_acf: float = 0.3) -> int | None:
    """The calendar period (points) with the strongest autocorrelation above ``min_acf``, or None."""
    v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
    best, best_acf = None, min_acf
    for p in calendar_periods(step_seconds(x.index)):
        if len(v) < min_cycles * p:
            continue
        acf = acf_at(v, p)
        if np.isfinite(acf) and acf >= best_acf:
            best, best_acf = p, acf
    return best
