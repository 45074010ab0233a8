"""The chart of one anomalous series: observed line, expected band, the anomaly window shaded."""

from __future__ import annotations

import altair as alt
import pandas as pd

from opsloop.store.series import AnomalySeries


def series_chart(s: AnomalySeries) -> alt.LayerChart:
    """Altair layers for ``s``: the expected band (lower..upper) as an area, the expected value
    dashed, the observed values as a line, and the anomaly's ``start``..``end`` as a shaded rect.
    The y axis is titled with the series' unit."""
    frame = pd.DataFrame([p.model_dump() for p in s.points])
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    y_title = f"{s.metric} ({s.unit})" if s.unit else s.metric
    base = alt.Chart(frame).encode(x=alt.X("ts:T", title="time (UTC)"))
    window = alt.Chart(pd.DataFrame({"start": [pd.Timestamp(s.start)], "end": [pd.Timestamp(s.end)]})).mark_rect(
        opacity=0.15, color="#d62728").encode(x="start:T", x2="end:T")
    band = base.mark_area(opacity=0.25, color="#7f7f7f").encode(y=alt.Y("lower:Q", title=y_title), y2="upper:Q")
    expected = base.mark_line(strokeDash=[4, 3], color="#7f7f7f").encode(y="expected:Q")
    observed = base.mark_line(color="#1f77b4").encode(
        y="observed:Q", tooltip=[alt.Tooltip("ts:T", format="%Y-%m-%d %H:%M"), "observed:Q", "expected:Q",
                                 "lower:Q", "upper:Q"])
    return alt.layer(window, band, expected, observed).properties(height=220)
