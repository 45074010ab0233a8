"""Prefix causality of a detector: the scores of a prefix do not change when later data arrives.

A streaming detector must give point ``t`` the same score whether it is scored with the data up to
``t`` only or with the whole series (nothing from the future may leak into the past: no season length,
scale or parameter chosen from the whole series). The check fits and scores the detector on the first
``k`` points and on the whole series, for a few ``k``, and compares the first ``k`` scores of both
(``np.allclose`` with a tight tolerance; NaN equal to NaN). This is the "no look-ahead" property the
Numenta Anomaly Benchmark requires of entries (A. Lavin and S. Ahmad, 2015, arXiv:1510.03336, §III:
detectors must be run on streaming data, each point seen once and in order).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector

#: Shares of the series used as prefixes by default.
DEFAULT_FRACTIONS: tuple[float, ...] = (0.4, 0.6, 0.8)


@dataclass(frozen=True)
class PrefixCheck:
    """Result of :func:`prefix_causality` on one series: ``ok`` when every prefix agreed;
    ``worst`` the largest absolute score difference over the compared points (0 when equal);
    ``failed_at`` the prefix lengths (points) whose scores differed."""

    ok: bool
    worst: float
    failed_at: tuple[int, ...]


def prefix_causality(make: Callable[[], BaseDetector], series: pd.Series,
                     fractions: Sequence[float] = DEFAULT_FRACTIONS, rtol: float = 1e-9,
                     atol: float = 1e-12) -> PrefixCheck:
    """Whether scores of ``series`` (a float ``pd.Series`` with a sorted UTC ``DatetimeIndex``) by a
    fresh detector ``make()`` (fitted on what it scores) are prefix-causal.

    For each ``f`` in ``fractions`` (in (0, 1)), ``k = round(f·n)`` (skipped when ``k < 2``): the
    first ``k`` scores computed on ``series.iloc[:k]`` must equal the first ``k`` scores computed on
    ``series`` (``np.allclose(rtol, atol)``, NaN matching NaN). Raises ``ValueError`` for a fraction
    outside (0, 1) and whatever the detector raises for bad input.
    """
    full = make().fit(series).score_samples(series).to_numpy(dtype=float)
    worst, failed = 0.0, []
    for frac in fractions:
        if not 0.0 < frac < 1.0:
            raise ValueError(f"prefix_causality: fractions must lie in (0, 1), got {frac}")
        k = int(round(frac * len(series)))
        if k < 2:
            continue
        head = series.iloc[:k]
        part = make().fit(head).score_samples(head).to_numpy(dtype=float)
        ref = full[:k]
        same_nan = np.isnan(part) == np.isnan(ref)
        both = ~np.isnan(part) & ~np.isnan(ref)
        close = same_nan.all() and np.allclose(part[both], ref[both], rtol=rtol, atol=atol)
        diff = np.abs(part[both] - ref[both])
        worst = max(worst, float(diff.max()) if diff.size else 0.0, 0.0 if same_nan.all() else np.inf)
        if not close:
            failed.append(k)
    return PrefixCheck(ok=not failed, worst=worst, failed_at=tuple(failed))
