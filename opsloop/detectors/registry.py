"""The one name → (detector class, config class) map read by the pipeline, CLI, API and UI."""

from __future__ import annotations

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.error_rate import ErrorRateDetector
from opsloop.detectors.ratio import RatioDetector
from opsloop.detectors.robust_z import RobustZDetector

REGISTRY: dict[str, tuple[type[BaseDetector], type[DetectorConfig]]] = {
    cls.name: (cls, cls.config_cls) for cls in (RobustZDetector, ErrorRateDetector, RatioDetector)
}


def create(name: str, **params: object) -> BaseDetector:
    """Build detector ``name`` with ``params`` validated by its config; ``KeyError`` if unknown."""
    if name not in REGISTRY:
        raise KeyError(f"unknown detector {name!r}; known: {sorted(REGISTRY)}")
    cls, config_cls = REGISTRY[name]
    return cls(config_cls(**params))
