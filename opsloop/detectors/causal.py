"""Vectorised causal building blocks shared by the detectors (all work along the last axis).

Every function here maps an array of shape ``(..., n)`` to the same shape and is *causal*: output
``t`` depends on inputs ``0..t`` only (or ``0..t-1`` where the name says ``prev``/``lag``), so the
result on a prefix equals the prefix of the result. Recursions run in ``scipy.signal.lfilter``;
NaN inputs are skipped (they neither update nor break the state) and give NaN outputs where the
caller masks them.
"""

from __future__ import annotations

import hashlib
from contextvars import ContextVar

import numpy as np
from scipy.signal import lfilter

#: Default scale floor as a fraction of the range of the earlier values (see :func:`scale_floor`).
SCALE_FLOOR_RANGE = 1e-3
#: sd of a normal variable per unit mean absolute deviation (sqrt(pi/2)).
MEAN_ABS_TO_SD = float(np.sqrt(np.pi / 2))


def alpha_of(span: float) -> float:
    """EWMA smoothing factor of a ``span`` (pandas convention: alpha = 2 / (span + 1))."""
    return 2.0 / (float(span) + 1.0)


def ew_mean(x: np.ndarray, alpha: float, min_weight: float = 0.0) -> np.ndarray:
    """NaN-aware exponentially weighted mean, including the current point (pandas ``adjust=True``).

    ``m_t = sum_s (1-alpha)^(t-s) x_s / sum_s (1-alpha)^(t-s)`` over non-NaN ``x_s``; two ``lfilter``
    passes (numerator and weight), so a NaN only decays the state. NaN while the accumulated weight
    (in units of one point) is below ``min_weight`` or nothing has been seen yet.
    """
    x = np.asarray(x, dtype=float)
    ok = ~np.isnan(x)
    b, a = [1.0], [1.0, -(1.0 - alpha)]
    num = lfilter(b, a, np.where(ok, x, 0.0), axis=-1)
    flat_ok = ok.reshape(-1, ok.shape[-1])
    if (flat_ok == flat_ok[0]).all():  # same NaN pattern in every row: one row of weights serves all
        den = np.broadcast_to(lfilter(b, a, flat_ok[0].astype(float)), x.shape)
    else:
        den = lfilter(b, a, ok.astype(float), axis=-1)
    with np.errstate(all="ignore"):
        out = num / den
    need = min(min_weight, 1.0 / alpha * 0.999)
    bad = den <= 0 if need <= 0 else den < need
    if bad.any():
        out[np.broadcast_to(bad, out.shape)] = np.nan
    return out


def lag(x: np.ndarray, k: int = 1, fill: float = np.nan) -> np.ndarray:
    """``x`` shifted ``k`` steps later along the last axis (first ``k`` positions ``fill``)."""
    out = np.full_like(np.asarray(x, dtype=float), fill)
    if k <= 0:
        return np.asarray(x, dtype=float).copy()
    if k < x.shape[-1]:
        out[..., k:] = x[..., :-k]
    return out


def nan0(x: np.ndarray) -> np.ndarray:
    """``x`` with NaN replaced by 0 (a faster ``np.nan_to_num`` for finite-or-NaN arrays)."""
    return np.where(np.isnan(x), 0.0, x)


def ffill(x: np.ndarray) -> np.ndarray:
    """Carry the last non-NaN value forward along the last axis (leading NaN stay NaN)."""
    x = np.asarray(x, dtype=float)
    missing = np.isnan(x)
    if not missing.any():
        return x
    n = x.shape[-1]
    pos = np.where(missing, 0, np.arange(n))
    np.maximum.accumulate(pos, axis=-1, out=pos)
    out = np.take_along_axis(x, pos, axis=-1)
    return out


def count_seen(x: np.ndarray) -> np.ndarray:
    """Number of non-NaN values at or before each position (shared through :data:`SHARED_MEMO`;
    do not modify the result in place)."""
    return memoized("seen", x, lambda: np.cumsum(~np.isnan(x), axis=-1))


def rolling_sum(x: np.ndarray, window: int) -> np.ndarray:
    """Sum of the last ``window`` values (NaN counted as 0), by differences of a cumulative sum."""
    c = np.cumsum(nan0(x), axis=-1)
    out = c.copy()
    if window < x.shape[-1]:
        out[..., window:] -= c[..., :-window]
    return out


def rolling_max(x: np.ndarray, window: int) -> np.ndarray:
    """Max of the last ``window`` values (NaN ignored; NaN where all are NaN), by doubling."""
    x = np.asarray(x, dtype=float)
    out = np.where(np.isnan(x), -np.inf, x)
    span = 1
    while span < window:
        step = min(span, window - span)
        if step < out.shape[-1]:
            np.maximum(out[..., step:], out[..., :-step].copy(), out=out[..., step:])
        span += step
    return np.where(np.isneginf(out), np.nan, out)


def robust_scale(resid: np.ndarray, alpha: float, clip: float = 4.0, floor: np.ndarray | float = 0.0) -> np.ndarray:
    """Causal robust scale (sd units) of residuals from points strictly before each position.

    Two passes of an EW mean absolute residual: the second winsorises each residual at ``clip``
    times the first pass's previous scale, so isolated outliers barely inflate the scale (a
    vectorised stand-in for a trailing MAD). ``floor`` bounds it below (flat series).
    """
    a = np.abs(resid)
    s1 = lag(ew_mean(a, alpha)) * MEAN_ABS_TO_SD
    lim = np.where(np.isnan(s1), np.inf, clip * np.maximum(s1, floor))
    s2 = lag(ew_mean(np.minimum(a, lim), alpha)) * MEAN_ABS_TO_SD  # np.minimum keeps NaN
    return np.maximum(s2, floor)


def sign_direction(value: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """+1 above the expectation, -1 below, 0 on it or where either is NaN."""
    with np.errstate(all="ignore"):
        d = np.sign(value - expected)
    return np.nan_to_num(d, nan=0.0)


def robust_level(x: np.ndarray, alpha: float, clip: float = 4.0) -> tuple[np.ndarray, np.ndarray]:
    """Causal robust level and scale of ``x`` from points strictly before each position.

    Pass 1: EW mean ``m1`` and the robust scale of ``x - m1(prev)``; pass 2: the EW mean of ``x``
    winsorised to ``m1(prev) ± clip·scale``, so a spike moves the level little while a lasting
    shift is followed within about ``1/alpha`` points. Returns ``(level, scale)``, both lagged (the
    expectation for the current point), NaN before the first value.
    """
    x = np.asarray(x, dtype=float)
    m1 = lag(ew_mean(x, alpha))
    r1 = x - m1
    s1 = robust_scale(r1, alpha, clip)
    with np.errstate(all="ignore"):
        lo, hi = m1 - clip * s1, m1 + clip * s1
    xc = np.where(np.isnan(lo) | np.isnan(x) | (s1 <= 0), x, np.clip(x, lo, hi))
    m2 = lag(ew_mean(xc, alpha))
    s2 = robust_scale(x - m2, alpha, clip)
    return m2, s2


#: Memo of per-array results shared by the members of an ensemble (set by
#: :func:`opsloop.detectors.forecast.shared_forecasts`; None: no memo).
SHARED_MEMO: ContextVar[dict | None] = ContextVar("opsloop_shared_memo", default=None)


def array_key(x: np.ndarray) -> tuple:
    """A content key of an array (digest of its bytes, shape) for :data:`SHARED_MEMO`.

    Within a memo the digest is computed once per buffer: the memo remembers each array it has
    keyed by buffer address, shape, strides and dtype (and keeps a reference, so the buffer is not
    freed and reused while the memo lives; members never modify their inputs in place).
    """
    x = np.asarray(x)
    memo = SHARED_MEMO.get()
    ident = None
    if memo is not None:
        ident = ("ident", x.__array_interface__["data"][0], x.shape, x.strides, x.dtype.str)
        hit = memo.get(ident)
        if hit is not None:
            return hit[1]
    key = hashlib.blake2b(np.ascontiguousarray(x).view(np.uint8), digest_size=16).digest(), x.shape
    if memo is not None:
        memo[ident] = (x, key)
    return key


def memoized(tag: str, x: np.ndarray, compute):
    """``compute()`` (a function of ``x``), once per array ``x`` within a :data:`SHARED_MEMO`."""
    memo = SHARED_MEMO.get()
    if memo is None:
        return compute()
    key = (tag, *array_key(x))
    if key not in memo:
        memo[key] = compute()
    return memo[key]


def running_extremes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(max, min)`` of the values strictly before each position (-inf / +inf before any value);
    shared through :data:`SHARED_MEMO` (do not modify the results in place)."""

    def compute():
        hi = lag(np.fmax.accumulate(np.where(np.isnan(x), -np.inf, x), axis=-1), 1, -np.inf)
        lo = lag(np.fmin.accumulate(np.where(np.isnan(x), np.inf, x), axis=-1), 1, np.inf)
        return hi, lo

    return memoized("extremes", x, compute)


def running_range(x: np.ndarray) -> np.ndarray:
    """``max - min`` of the values strictly before each position (NaN before two values)."""

    def compute():
        hi, lo = running_extremes(x)
        with np.errstate(invalid="ignore"):
            r = hi - lo
        return np.where(np.isfinite(r), r, np.nan)

    return memoized("range", x, compute)


def scale_floor(level: np.ndarray, x: np.ndarray, range_frac: float = SCALE_FLOOR_RANGE) -> np.ndarray:
    """A small positive scale so flat or sparse series do not divide by ~0: ``range_frac`` of the
    range of the earlier values, at least 1e-3 of the level's magnitude (and 1e-9)."""
    floor = np.maximum(np.abs(nan0(level)) * 1e-3, 1e-9)
    if range_frac > 0:
        floor = np.maximum(floor, range_frac * nan0(running_range(x)))
    return floor
