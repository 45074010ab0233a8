"""KPI funnel: a one-sided drop of ``downstream`` out of ``upstream`` KPI counts (a conversion rate).

The same exact binomial test as :mod:`opsloop.detectors.ratio` (input columns ``downstream`` and
``upstream``, counts summed over a trailing span per bucket), with a baseline of a day of 15-minute
buckets: KPI counts arrive aggregated, so a bucket holds far more trials than a log bucket, and the
baseline must cover the daily cycle. ``score`` is −log10 p.
"""

from __future__ import annotations

from opsloop.detectors.ratio import RatioConfig, RatioDetector


class FunnelConfig(RatioConfig):
    """:class:`~opsloop.detectors.ratio.RatioConfig` with a day-long baseline: ``baseline`` buckets
    (96 of 15 minutes) and at least ``min_buckets`` (a quarter of it) before any score."""

    baseline: int = 96
    min_buckets: int = 24


class FunnelDetector(RatioDetector):
    """Conversion-drop test on KPI funnel counts (see the module docstring)."""

    name = "kpi_funnel"
    config_cls = FunnelConfig
