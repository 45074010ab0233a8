"""The one name → (detector class, config class) map read by the pipeline, CLI, API and UI."""

from __future__ import annotations

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.cusum import CusumDetector
from opsloop.detectors.ensemble import EnsembleDetector
from opsloop.detectors.error_rate import ErrorRateDetector
from opsloop.detectors.flatline import FlatlineDetector
from opsloop.detectors.forecast import ForecastDetector
from opsloop.detectors.funnel import FunnelDetector
from opsloop.detectors.log_template import LogTemplateDetector
from opsloop.detectors.novelty import NoveltyDetector
from opsloop.detectors.poisson import PoissonDetector
from opsloop.detectors.ratio import RatioDetector
from opsloop.detectors.robust_z import RobustZDetector
from opsloop.detectors.scale_change import ScaleChangeDetector
from opsloop.detectors.seasonal_drop import SeasonalDropDetector
from opsloop.detectors.stl_esd import StlEsdDetector
from opsloop.detectors.ticket_surge import TicketSurgeDetector

REGISTRY: dict[str, tuple[type[BaseDetector], type[DetectorConfig]]] = {
    cls.name: (cls, cls.config_cls)
    for cls in (RobustZDetector, ErrorRateDetector, RatioDetector, FunnelDetector, CusumDetector, PoissonDetector,
                SeasonalDropDetector, StlEsdDetector, ForecastDetector, NoveltyDetector,
                EnsembleDetector, TicketSurgeDetector, LogTemplateDetector,
                ScaleChangeDetector, FlatlineDetector)
}


def create(name: str, **params: object) -> BaseDetector:
    """Build detector ``name`` with ``params`` validated by its config; ``KeyError`` if unknown."""
    if name not in REGISTRY:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}")
    cls, config_cls = REGISTRY[name]
    return cls(config_cls(**params))
