"""Flat line: the series has held one value longer than it ever held a value before.

Source: flat-line (stuck-sensor) checks of telemetry and process monitoring, which flag a signal that
repeats the same reading for longer than it normally does (e.g. the "flat line" test of the
U.S. IOOS *Manual for Real-Time Quality Control* series, QARTOD, 2015-2020: a run of identical
readings longer than a set count fails). Here the count is the series' own record: the run length
``L_t`` (points since the value last changed, exact repeats; a NaN ends a run) against ``M_t``, the
longest run of any value that ended before the current run started. The score is ``L_t / M_t`` at the
one point where the current run first exceeds ``ratio · M_t`` (0 everywhere else), and only when
``M_t >= min_run`` (a series whose values never repeat for long, continuous noise, has no such record
to break). One point per run, so a stuck series alarms once when it outlasts its record and not
again at every further repeat; a series that was constant from the start (no earlier run) never
alarms. It sees what value-based members cannot: a sensor or counter stuck at a value well inside
its range (a disk that stops writing and reports 0, which it reported before, only never so long).
Loop-free (cumulative maxima) and causal.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import count_seen


class FlatlineConfig(DetectorConfig):
    """``ratio``: how much longer than the earlier longest run the current run must get (1.2: by a
    fifth); ``min_run``: the earlier longest run, in points, below which nothing is scored;
    ``min_periods`` points before a score; ``threshold`` on the score ``L / M``."""

    threshold: float = 1.2
    ratio: float = 1.2
    min_run: int = 60
    min_periods: int = 30


def run_lengths(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(L, M)`` for rows of ``v`` (shape ``(..., n)``): ``L_t`` the number of points since the value
    last changed (0 at a change; exact repeats, NaN never repeats), ``M_t`` the longest ``L`` reached
    before the current run started (0 if none)."""
    v = np.asarray(v, dtype=float)
    n = v.shape[-1]
    same = np.zeros(v.shape, dtype=bool)
    same[..., 1:] = v[..., 1:] == v[..., :-1]
    idx = np.broadcast_to(np.arange(n), v.shape)
    start = np.maximum.accumulate(np.where(same, 0, idx), axis=-1)  # first point of the current run
    length = idx - start
    longest = np.maximum.accumulate(length, axis=-1)
    before = np.take_along_axis(longest, np.maximum(start - 1, 0), axis=-1)
    return length, np.where(start > 0, before, 0)


def flatline_core(v: np.ndarray, cfg: FlatlineConfig) -> np.ndarray:
    """Score of each point of the rows of ``v`` (shape ``(..., n)``): ``L / M`` where the current run
    first exceeds ``ratio · M`` (``M >= min_run``), 0 elsewhere, NaN before ``min_periods`` points
    and at NaN inputs."""
    length, longest = run_lengths(v)
    over = (longest >= cfg.min_run) & (length > cfg.ratio * longest)
    first = over.copy()
    first[..., 1:] &= ~over[..., :-1]
    with np.errstate(all="ignore"):
        score = np.where(first, length / np.maximum(longest, 1), 0.0)
    ready = (count_seen(v) > cfg.min_periods) & ~np.isnan(v)
    return np.where(ready, score, np.nan)


class FlatlineDetector(BaseDetector):
    """Run-length record of a float ``pd.Series`` (module doc); ``expected`` is the previous value
    (the value the series is stuck at when the score is positive)."""

    name = "flatline"
    config_cls = FlatlineConfig
    batchable = True

    def _score(self, x: pd.Series) -> pd.DataFrame:
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        score = flatline_core(v, self.config)
        prev = np.r_[np.nan, v[:-1]]
        return pd.DataFrame({"score": score, "expected": prev, "direction": np.zeros(len(v))}, index=x.index)

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        return flatline_core(values, self.config), np.zeros(np.shape(values))
