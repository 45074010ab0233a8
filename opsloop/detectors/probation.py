"""The probationary period: leading points of a series during which a learning detector reports
nothing (the Numenta Anomaly Benchmark's rule, Lavin & Ahmad 2015: ``min(floor(0.15 n), 750)``)."""

from __future__ import annotations

import numpy as np

PROBATION_PERCENT = 0.15
"""Share of each series in the probationary period (NAB's ``probationaryPercent``)."""

PROBATION_CAP = 750
"""At most this many probationary points (NAB: ``0.15 * 5000``)."""


def probation_length(n):
    """Number of leading points ignored in a series of ``n`` points: ``min(floor(0.15 n), 750)``.
    ``n`` an int (returns an int) or an integer array (returns an array, elementwise)."""
    if np.ndim(n) == 0:
        return min(int(PROBATION_PERCENT * int(n)), PROBATION_CAP)
    return np.minimum(np.floor(PROBATION_PERCENT * np.asarray(n)), PROBATION_CAP).astype(np.int64)
