"""Severity of an anomaly from its evidence strength (score over threshold), the one ladder every
detector uses; a domain pack sets the steps, the per-kind bump and the cap
(:class:`opsloop.packs.model.SeverityRules`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from opsloop.domain import SEVERITY_RANK, Kind, Severity

LADDER = (Severity.low, Severity.medium, Severity.high, Severity.critical)

#: Steps for a calibrated tail probability (the ensemble): every alarm is already past a corpus-chosen
#: threshold, so an alarm is medium and twice the threshold's evidence is high.
CALIBRATED_STEPS = (0.0, 2.0, math.inf)


def severity_of(score: float, threshold: float, kind: Kind, steps: Sequence[float] = (1.5, 3.0, 6.0),
                kind_bump: Mapping[Kind, int] | None = None, cap: Severity = Severity.critical) -> Severity:
    """Severity from ``strength = score / threshold`` (1.0 when ``threshold <= 0``): below ``steps[0]``
    low, below ``steps[1]`` medium, below ``steps[2]`` high, else critical; then ``kind_bump[kind]``
    steps up, and at most ``cap``."""
    strength = score / threshold if threshold > 0 else 1.0
    rank = 1 + sum(strength >= s for s in steps)
    rank += (kind_bump or {}).get(kind, 0)
    rank = max(1, min(rank, 4, SEVERITY_RANK[cap]))
    return LADDER[rank - 1]


def worst(severities: Sequence[Severity]) -> Severity:
    """The highest of ``severities`` (``low`` for none)."""
    return max(severities, key=SEVERITY_RANK.__getitem__, default=Severity.low)


def at_most(s: Severity, cap: Severity) -> Severity:
    return s if SEVERITY_RANK[s] <= SEVERITY_RANK[cap] else cap


def at_least(s: Severity, floor: Severity) -> Severity:
    return s if SEVERITY_RANK[s] >= SEVERITY_RANK[floor] else floor
