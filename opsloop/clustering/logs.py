"""Simple log signatures: mask variable tokens of a message into a template and count templates.

Masking is the one masker, :func:`opsloop.clustering.masking.mask_messages` (Drain's pre-processing,
He et al. 2017), so a signature's template reads like the drain3 templates of
:mod:`opsloop.clustering.drain`, the deeper miner (persisted per service, with window anomalies).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from opsloop.clustering.masking import mask_messages
from opsloop.domain import LogSignature, stable_hash


def signatures(logs: pd.DataFrame, start: datetime, end: datetime, baseline_hours: float = 24.0,
               top: int = 5, min_lift: float = 3.0, min_count: int = 5) -> list[LogSignature]:
    """Warning/error templates seen at least ``min_count`` times in ``[start, end]`` whose rate there
    is at least ``min_lift`` times their rate over the ``baseline_hours`` before (new templates
    qualify), so a stray rare error is not presented as an incident's signature.

    ``logs`` follows the logs contract. Rates are events per hour. Returns up to ``top`` templates,
    most frequent in the span first.
    """
    if logs.empty:
        return []
    noisy = (logs["status"] >= 400) | logs["level"].str.upper().isin(["WARN", "WARNING", "ERROR", "CRITICAL"])
    ts = logs["ts"]
    base_start = pd.Timestamp(start) - pd.Timedelta(hours=baseline_hours)
    span = logs[noisy & (ts >= pd.Timestamp(start)) & (ts <= pd.Timestamp(end))]
    if span.empty:
        return []
    base = logs[noisy & (ts >= base_start) & (ts < pd.Timestamp(start))]
    span_t = mask_messages(span["service"] + " " + span["message"])
    counts = span_t.value_counts()
    base_counts = mask_messages(base["service"] + " " + base["message"]).value_counts() if not base.empty else pd.Series(dtype=int)
    hours = max((pd.Timestamp(end) - pd.Timestamp(start)).total_seconds() / 3600.0, 1 / 60)
    out = []
    for t, c in counts.items():
        rate, base_rate = float(c) / hours, float(base_counts.get(t, 0)) / baseline_hours
        if c >= min_count and rate >= min_lift * base_rate:
            out.append(LogSignature(template_id="tpl-" + stable_hash(t, 10), template=t, count=int(c),
                                    baseline_rate=base_rate, rate=rate))
        if len(out) >= top:
            break
    return out
