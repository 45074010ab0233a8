"""Log-template surge detector: a template's lines against its baseline *share* of its service's
lines (the model of :func:`opsloop.clustering.drain.detect_templates`).

Input: a ``pd.DataFrame`` with columns ``count`` (lines of one template per bucket) and ``total``
(lines of the template's service in the same bucket) on a sorted UTC ``DatetimeIndex`` (regular or
not). The baseline of a bucket at ``t`` is every row in ``[t - baseline_hours, t)`` (a time window,
so the bucket itself and anything later are excluded: causal). The template's share of its
service's lines there is ``(b + 0.5) / (b_s + 1)`` (``b`` template lines, ``b_s`` service lines;
Jeffreys-style, so a template never seen has share ``0.5 / (b_s + 1)``) and ``expected = share ·
total``: the daily traffic cycle of the service cancels out. ``tail``: ``-log10 P(X >= count)``,
``X ~ Poisson(expected)`` (:func:`opsloop.detectors.tails.poisson_upper`); ``score`` is ``tail``
where ``count >= min_count``, ``count >= min_ratio · expected`` and the baseline has service lines,
else 0; NaN where ``count`` or ``total`` is NaN.

``min_new``, ``min_baseline_lines`` and ``bucket`` belong to the new-template rule and the anomaly
spans of :func:`~opsloop.clustering.drain.detect_templates` (a new template is judged against the
miners' state, which a count series does not carry).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.tails import poisson_upper


class LogTemplateConfig(DetectorConfig):
    """``threshold`` in -log10 p; ``baseline_hours`` hours; ``min_count``/``min_new`` lines;
    ``min_ratio`` times ``expected``; ``min_baseline_lines`` service lines in the baseline before a
    template can be "new"; ``bucket`` (pandas frequency) the resolution of an anomaly's span."""

    threshold: float = 8.0
    baseline_hours: float = 24.0
    min_count: int = 5
    min_ratio: float = 3.0
    min_new: int = 3
    min_baseline_lines: int = 500
    bucket: str = "5min"


def share_surge(count: np.ndarray, total: np.ndarray, base_count: np.ndarray, base_total: np.ndarray,
                cfg: LogTemplateConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(score, expected, tail)`` elementwise (arrays broadcast): ``count`` template lines out of
    ``total`` service lines, against ``base_count`` out of ``base_total`` in the baseline (see the
    module docstring). NaN ``count`` or ``total`` gives NaN."""
    count, total = np.asarray(count, dtype=float), np.asarray(total, dtype=float)
    base_count, base_total = np.asarray(base_count, dtype=float), np.asarray(base_total, dtype=float)
    ok = ~(np.isnan(count) | np.isnan(total))
    expected = (base_count + 0.5) / (base_total + 1.0) * total
    tail = np.where(count > 0, poisson_upper(count, expected), 0.0)
    strong = (count >= cfg.min_count) & (count >= cfg.min_ratio * expected) & (base_total >= 1)
    score = np.where(strong, tail, 0.0)
    return np.where(ok, score, np.nan), np.where(ok, expected, np.nan), np.where(ok, tail, np.nan)


class LogTemplateDetector(BaseDetector):
    """Poisson tail of a template's lines against its baseline share of its service's lines;
    ``expected`` in lines per bucket, ``tail`` the ungated tail score (see the module docstring)."""

    name = "log_template"
    config_cls = LogTemplateConfig
    columns = ("count", "total")

    def _score(self, x: pd.DataFrame) -> pd.DataFrame:
        cfg: LogTemplateConfig = self.config
        counts = x[["count", "total"]].apply(pd.to_numeric, errors="coerce").astype(float)
        if (counts.fillna(0.0).to_numpy() < 0).any():
            raise ValueError("log_template: counts must be non-negative")
        base = counts.rolling(pd.Timedelta(hours=cfg.baseline_hours), closed="left", min_periods=1).sum().fillna(0.0)
        score, expected, tail = share_surge(counts["count"].to_numpy(), counts["total"].to_numpy(),
                                            base["count"].to_numpy(), base["total"].to_numpy(), cfg)
        direction = np.where(np.nan_to_num(score) > 0, 1.0, 0.0)
        return pd.DataFrame({"score": score, "expected": expected, "tail": tail, "direction": direction},
                            index=x.index)
