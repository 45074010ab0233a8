"""Turn per-point anomaly flags into anomalous intervals (the one run finder)."""

from __future__ import annotations

import numpy as np


def _runs(idx: np.ndarray, breaks: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """Runs of the flagged positions ``idx`` split after each position in ``breaks`` (indices into
    ``idx``), keeping runs of at least ``min_len`` flagged points."""
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [idx.size - 1]])
    return [(int(idx[s]), int(idx[e])) for s, e in zip(starts, ends) if e - s + 1 >= min_len]


def flag_runs(flags: np.ndarray, max_gap: int = 0, min_len: int = 1) -> list[tuple[int, int]]:
    """Runs of ``True`` in ``flags`` (shape (n,)) as inclusive ``(first, last)`` index pairs.

    Runs separated by at most ``max_gap`` unflagged points are merged; merged runs with fewer than
    ``min_len`` flagged points are dropped.
    """
    return grouped_runs(np.zeros(len(flags), dtype=np.int64), flags, max_gap, min_len)


def grouped_runs(codes: np.ndarray, flags: np.ndarray, max_gap: int = 0, min_len: int = 1) -> list[tuple[int, int]]:
    """:func:`flag_runs` over many series at once: ``codes`` (shape (n,), the series of each row,
    rows of one series contiguous and in time order) and ``flags`` (shape (n,)). Runs never cross
    from one series into the next. Returns inclusive ``(first, last)`` row pairs."""
    idx = np.flatnonzero(flags)
    if idx.size == 0:
        return []
    breaks = np.flatnonzero((np.diff(idx) > max_gap + 1) | (np.diff(np.asarray(codes)[idx]) != 0))
    return _runs(idx, breaks, min_len)
