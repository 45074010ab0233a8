"""Ticket-theme surge detector: the Poisson count test (:mod:`opsloop.detectors.poisson`) with the
defaults of support-ticket volumes.

Input: a ``pd.Series`` of tickets per ``freq`` bucket (an hour by default) of one theme, on a sorted
UTC ``DatetimeIndex`` (every bucket present; NaN where the count is unknown). The rate ``λ`` of a
bucket is the theme's mean count over the ``baseline`` buckets *before* it (causal), shrunk toward
``prior`` tickets per bucket with a weight of ``prior_weight`` buckets, so a theme with no history
still has a rate; it is the frame's ``expected``. Score: ``-log10 P(X >= k)``, ``X ~ Poisson(λ)``
(:func:`opsloop.detectors.tails.poisson_upper`), 0 unless ``k >= min_count`` and ``k >= min_ratio ·
λ``. Ticket volumes are tiny (a theme gets a few tickets a day), so the thresholds are in counts as
much as in probability; there is no warm-up (``min_periods = 0``) and no over-dispersion correction
by default. ``freq`` and ``max_gap`` (flagged buckets at most this many buckets apart form one
surge) are read by :func:`opsloop.clustering.surges.ticket_surges`, which builds the series.
"""

from __future__ import annotations

from opsloop.detectors.poisson import PoissonConfig, PoissonDetector


class TicketSurgeConfig(PoissonConfig):
    """``threshold`` in -log10 p; ``baseline``, ``prior_weight`` and ``max_gap`` in buckets of
    ``freq``; ``prior`` tickets per bucket."""

    threshold: float = 6.0
    baseline: int = 72
    min_periods: int = 0
    prior: float = 0.05
    prior_weight: float = 24.0
    min_count: int = 4
    min_ratio: float = 3.0
    overdispersion: bool = False
    freq: str = "1h"
    max_gap: int = 1


class TicketSurgeDetector(PoissonDetector):
    """Poisson tail test of a theme's ticket counts per bucket; ``expected`` is the trailing rate
    ``λ`` (tickets per bucket), ``upper`` the count at which the score would pass the threshold."""

    name = "ticket_surge"
    config_cls = TicketSurgeConfig
