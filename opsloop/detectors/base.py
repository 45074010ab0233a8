"""The detector contract shared by every detector (after scikit-learn, PyOD and Merlion).

``__init__`` stores a frozen config only; ``fit(x)`` returns ``self``; ``score_samples(x)`` returns a
float ``pd.Series`` on ``x``'s index, higher is more anomalous, NaN where the detector has no opinion
(warm-up or NaN input); ``predict(x)`` compares scores with ``threshold_``. Learned state ends in
``_``. Scoring is causal: the score at ``t`` uses only points at or before ``t``.

``x`` is a ``pd.Series`` (one KPI) or a ``pd.DataFrame`` (detectors of counts take two columns) with
a sorted, UTC ``DatetimeIndex``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict


class NotFittedError(RuntimeError):
    """Raised when a detector is used before ``fit``."""


class DetectorConfig(BaseModel):
    """Base of every detector's config: frozen, unknown fields rejected.

    ``threshold`` is in the detector's score unit.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    threshold: float


def validate_input(x: pd.Series | pd.DataFrame, columns: tuple[str, ...] = ()) -> None:
    """Raise ``ValueError`` unless ``x`` has a sorted UTC ``DatetimeIndex`` (and ``columns``)."""
    if not isinstance(x, (pd.Series, pd.DataFrame)):
        raise ValueError(f"expected a pandas Series or DataFrame, got {type(x).__name__}")
    idx = x.index
    if not isinstance(idx, pd.DatetimeIndex):
        raise ValueError(f"expected a DatetimeIndex, got {type(idx).__name__}")
    if idx.tz is None or str(idx.tz) != "UTC":
        raise ValueError(f"expected a UTC DatetimeIndex, got tz={idx.tz}")
    if not idx.is_monotonic_increasing:
        raise ValueError("index must be sorted in increasing time order")
    if columns:
        if not isinstance(x, pd.DataFrame):
            raise ValueError(f"expected a DataFrame with columns {list(columns)}")
        missing = [c for c in columns if c not in x.columns]
        if missing:
            raise ValueError(f"missing columns {missing}; got {list(x.columns)}")


class BaseDetector(ABC):
    """Base class: validates once, delegates to ``_fit`` / ``_score``.

    Subclasses set ``name``, ``config_cls`` and ``columns`` (the DataFrame columns they need, empty
    for a Series) and implement ``_score(x) -> pd.DataFrame`` with columns ``score`` (float) and
    ``expected`` (the detector's expectation of the value, NaN where it has none); ``lower``/``upper``
    bounds are optional. ``direction`` (+1 the value is above its expectation, -1 below, 0 neither or
    unknown) is optional too: :meth:`score_frame` derives it from ``expected`` for a Series input
    when a detector does not return it.

    Detectors whose scores need nothing learned in ``fit`` and that can score many equal-length,
    equally spaced series at once set ``batchable = True`` and implement
    ``_score_array(values, step) -> (score, direction)`` on arrays of shape ``(m, n)``
    (``step``: seconds between points); :func:`opsloop.detectors.batch.score_long` uses it.
    """

    name: ClassVar[str]
    config_cls: ClassVar[type[DetectorConfig]]
    columns: ClassVar[tuple[str, ...]] = ()
    batchable: ClassVar[bool] = False

    def __init__(self, config: DetectorConfig | None = None, **params: object) -> None:
        if config is None:
            config = self.config_cls(**params)
        elif params:
            config = config.model_copy(update=params)
        if not isinstance(config, self.config_cls):
            raise ValueError(f"{type(self).__name__} needs a {self.config_cls.__name__}")
        self.config = config

    # -- public API -------------------------------------------------------------------------
    def fit(self, x: pd.Series | pd.DataFrame) -> BaseDetector:
        """Learn what is needed from ``x`` (may be nothing for purely trailing detectors)."""
        validate_input(x, self.columns)
        self._fit(x)
        self.threshold_ = float(self._threshold())
        return self

    def score_frame(self, x: pd.Series | pd.DataFrame) -> pd.DataFrame:
        """``score`` and ``expected`` (and ``lower``/``upper`` where known) on ``x``'s index."""
        self._check_fitted()
        validate_input(x, self.columns)
        out = self._score(x).reindex(x.index)
        if "direction" not in out:
            if isinstance(x, pd.Series) and "expected" in out:
                value = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
                with np.errstate(all="ignore"):
                    d = np.sign(value - out["expected"].to_numpy(dtype=float))
                out["direction"] = np.nan_to_num(d, nan=0.0)
            else:
                out["direction"] = 0.0
        return out

    def score_samples(self, x: pd.Series | pd.DataFrame) -> pd.Series:
        """Anomaly score per point, float, higher is more anomalous; NaN in gives NaN out."""
        return self.score_frame(x)["score"].astype(float)

    def predict(self, x: pd.Series | pd.DataFrame) -> pd.Series:
        """Boolean flags: ``score_samples(x) > threshold_`` (NaN scores are never flagged)."""
        return self.score_samples(x) > self.threshold_

    # -- subclass hooks ---------------------------------------------------------------------
    def _fit(self, x: pd.Series | pd.DataFrame) -> None:  # default: nothing to learn
        return None

    def _threshold(self) -> float:
        """The alarm threshold, called after ``_fit``; default: the config's ``threshold``."""
        return float(self.config.threshold)

    @abstractmethod
    def _score(self, x: pd.Series | pd.DataFrame) -> pd.DataFrame:
        """Scores of ``x`` (see the class docstring); every detector writes it."""

    def can_batch(self) -> bool:
        """Whether :meth:`_score_array` can score series without a per-series ``fit``."""
        return self.batchable

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        """Scores and directions of the rows of ``values`` (shape ``(m, n)``); batchable detectors only."""
        raise TypeError(f"{type(self).__name__} does not score series in batch (check can_batch() first)")

    def _check_fitted(self) -> None:
        if not hasattr(self, "threshold_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit() first")
