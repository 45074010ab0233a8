"""Tail probabilities as anomaly scores in ``-log10 p`` (higher is more anomalous).

One place for the Poisson upper tail used by every count test (ticket-theme surges, log-template
surges, the Poisson detector): ``-log10 P(X >= k)`` for ``X ~ Poisson(lam)`` via
``scipy.stats.poisson.logsf`` (exact in log space, so tiny p-values do not underflow).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

MAX_SCORE = 300.0
"""Scores are clipped to ``[0, MAX_SCORE]`` (p-values below 1e-300 are all "certain")."""

_LN10 = np.log(10.0)


def poisson_upper(k: np.ndarray | float, lam: np.ndarray | float) -> np.ndarray:
    """``-log10 P(X >= k)``, ``X ~ Poisson(lam)``, elementwise (broadcasting; ``lam`` floored at
    1e-12), clipped to ``[0, MAX_SCORE]``. ``k`` may be non-integer (it is rounded up)."""
    k = np.asarray(k, dtype=float)
    lam = np.maximum(np.asarray(lam, dtype=float), 1e-12)
    with np.errstate(all="ignore"):
        score = -stats.poisson.logsf(np.ceil(k) - 1, lam) / _LN10
    return np.clip(np.nan_to_num(score, nan=0.0, posinf=MAX_SCORE), 0.0, MAX_SCORE)
