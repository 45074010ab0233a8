"""Score many series at once: a long frame keyed by series (``SeriesKey``: metric + labels).

:func:`score_long` groups the rows of a long DataFrame (``ts``, ``value`` and key columns) into
series. When every series shares one equally spaced timestamp grid and the detector is
``batchable`` (needs nothing learned per series), the values are stacked into a 2-D array and scored
in one vectorised call per chunk of rows (``BaseDetector._score_array``); otherwise each series is
fitted and scored on its own. Either way the scores are causal per series.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector
from opsloop.detectors.registry import create

#: Points of the 2-D batch scored per call: small enough for the working arrays to stay in the CPU
#: cache (much faster than streaming large arrays through memory) and to bound peak memory.
CHUNK_POINTS = 75_000


def _codes(df: pd.DataFrame, key_cols: Sequence[str]) -> tuple[np.ndarray, pd.DataFrame]:
    """Group code per row (numbered by first appearance) and the key values per code."""
    combined = np.zeros(len(df), dtype=np.int64)
    for col in key_cols:  # factorize each column, then combine the codes in mixed radix
        codes, uniques = pd.factorize(df[col], use_na_sentinel=False)
        combined = combined * max(len(uniques), 1) + codes
    codes, _ = pd.factorize(combined)
    first = np.unique(codes, return_index=True)[1]  # first row of each group, by code
    keys = df[list(key_cols)].iloc[first].reset_index(drop=True)
    return codes.astype(np.int64), keys


def score_long(df: pd.DataFrame, name: str, key_cols: Sequence[str] = ("metric",), ts_col: str = "ts",
               value_col: str = "value", **params: object) -> pd.DataFrame:
    """Score every series of a long frame with detector ``name`` (built with ``params``).

    ``df``: one row per (series, timestamp) with ``ts_col`` (UTC), ``value_col`` and ``key_cols``.
    Returns a frame sorted by series then time with the key columns, ``ts``, ``value``, ``score``
    and ``direction``. Raises ``ValueError`` for missing columns or non-UTC timestamps,
    ``KeyError`` for an unknown detector.
    """
    key_cols = tuple(key_cols)
    missing = [c for c in (*key_cols, ts_col, value_col) if c not in df.columns]
    if missing:
        raise ValueError(f"score_long: missing columns {missing}; got {list(df.columns)}")
    ts = pd.DatetimeIndex(df[ts_col])
    if ts.tz is None or str(ts.tz) != "UTC":
        raise ValueError(f"score_long: {ts_col!r} must be UTC timestamps, got tz={ts.tz}")
    det = create(name, **params)
    cols = [*key_cols, "ts", "value", "score", "direction"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    codes, keys = _codes(df, key_cols)
    t_ns = ts.as_unit("ns").asi8
    values = pd.to_numeric(df[value_col], errors="coerce").to_numpy(dtype=float)
    dc, dt = np.diff(codes), np.diff(t_ns)
    order = None
    if not np.all((dc > 0) | ((dc == 0) & (dt > 0))):  # not yet sorted by series, then time
        order = np.lexsort((t_ns, codes))
    codes_s, t_s = (codes, t_ns) if order is None else (codes[order], t_ns[order])
    if order is not None:
        values = values[order]
    m = len(keys)
    counts = np.bincount(codes_s, minlength=m)
    n = int(counts[0])
    grid = None
    if det.can_batch() and np.all(counts == n) and n >= 2:
        t2 = t_s.reshape(m, n)
        steps = np.diff(t2[0])
        if np.all(t2 == t2[0]) and steps.size and np.all(steps == steps[0]) and steps[0] > 0:
            grid = float(steps[0]) / 1e9
    if grid is not None:
        v2 = values.reshape(m, n)
        score = np.empty((m, n))
        direction = np.empty((m, n))
        rows = max(1, CHUNK_POINTS // n)
        for lo in range(0, m, rows):
            s, d = det._score_array(v2[lo : lo + rows], grid)
            score[lo : lo + rows], direction[lo : lo + rows] = s, d
        score, direction = score.ravel(), direction.ravel()
    else:
        score = np.empty(len(values))
        direction = np.empty(len(values))
        bounds = np.concatenate([[0], np.cumsum(counts)])
        for g in range(m):
            lo, hi = bounds[g], bounds[g + 1]
            idx = pd.DatetimeIndex(pd.to_datetime(t_s[lo:hi], unit="ns", utc=True))
            series = pd.Series(values[lo:hi], index=idx).groupby(level=0).mean()
            fitted: BaseDetector = create(name, **params).fit(series)
            frame = fitted.score_frame(series).reindex(idx)
            score[lo:hi] = frame["score"].to_numpy(dtype=float)
            direction[lo:hi] = frame["direction"].to_numpy(dtype=float)
    if order is None:  # rows already in output order: reuse the input's columns
        out = df[list(key_cols)].reset_index(drop=True)
        out["ts"] = ts.as_unit("ns")
    else:
        out = keys.iloc[codes_s].reset_index(drop=True)
        out["ts"] = pd.to_datetime(t_s, unit="ns", utc=True)
    out["value"] = values
    out["score"] = score
    out["direction"] = direction
    return out[cols]
