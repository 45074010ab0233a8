"""Act stage, part 2: snapshot the series behind each anomaly of the stored incidents.

KPI points and log lines are not stored, so a chart of what a detector saw must be taken while the
cycle still holds its signals. For each anomaly, the series its detector scored:

* KPI anomalies (robust z, ensemble): the KPI's values (one series: metric and labels as the
  evidence names them; several rows at one time are averaged, as the detector does).
* Error-rate anomalies: per log bucket, the share of the endpoint's calls that returned the status.
* Event-ratio anomalies: per log bucket, downstream events per upstream event (of the label value
  the evidence names, or overall).
* KPI funnel anomalies: per funnel bucket, downstream per upstream summed over the trailing
  funnel span (what the funnel detector tests).

Anomalies with no numeric series in the window's signals (log templates, ticket surges, alerts,
evidence recorded before it was typed) get no snapshot, nor do anomalies whose peak is outside the
signals (an earlier cycle's sighting keeps the snapshot that cycle took).

A snapshot runs from ``max(6 h, 4 × duration)`` before the anomaly's start to ``max(1 h,
duration / 2)`` after its end, bounded by the data, at most :data:`MAX_POINTS` points.

**Expected band.** A causal robust baseline: at each point, the median ``m`` and MAD of the
``w`` points strictly before it (:func:`~opsloop.detectors.robust_z.trailing_median_mad`; ``w``
the points in 4 hours, 24 to 288; the detector's own window for robust z), ``expected = m`` and
``lower, upper = m ∓ k · 1.4826 · MAD`` (a MAD of 0 falls back to the trailing standard
deviation). ``k`` is :data:`K` (3.5, the modified-z outlier rule of Iglewicz & Hoaglin 1993), or
for robust-z anomalies the detector's threshold, which makes the band the detector's own. From
the anomaly's start on, the band stays as it was just before the start (an anomaly does not drag
its own expectation); inside the anomaly, where the detector states its expectation
(``evidence.expected``: a trailing baseline rate, ratio or forecast at the peak), ``expected`` is
that value and the band keeps the pre-anomaly width around it. Shares and ratios of counts are
never below 0.

Building reads the cycle's signals through a :class:`SeriesSource` (each KPI metric selected once,
each funnel ratio computed once); log lines are sliced by time, not scanned, when sorted.

Down-sampling keeps, from each run of ``ceil(n / MAX_POINTS)`` consecutive points, the one farthest
from its expected value, so spikes and drops survive. Values are in the series' unit; times UTC.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view
from sqlalchemy.orm import Session

from opsloop.config import Settings
from opsloop.detectors.robust_z import trailing_median_mad
from opsloop.domain import Anomaly, Incident
from opsloop.evidence import (
    ErrorRateEvidence,
    EventRatioEvidence,
    FunnelEvidence,
    RobustZEvidence,
)
from opsloop.packs.model import FunnelSpec, Pack
from opsloop.pipeline.detect import ALL, DetectionSettings
from opsloop.pipeline.observe import Signals
from opsloop.store.series import AnomalySeries, SeriesPoint, save_series

K = 3.5
"""Half-width of the band in robust standard deviations (1.4826 · MAD)."""
MAX_POINTS = 500
BEFORE, BEFORE_FACTOR = timedelta(hours=6), 4.0
AFTER, AFTER_FACTOR = timedelta(hours=1), 0.5
BASELINE = timedelta(hours=4)
MIN_BASELINE_POINTS, MAX_BASELINE_POINTS = 24, 288


@dataclass(frozen=True)
class _Raw:
    """A detector's series (float values on a sorted UTC index; NaN where undefined), its unit, the
    direction the detector watches, whether it is a ratio of counts (never below 0), and the
    baseline window (points) and band width (``k``) to use."""

    values: pd.Series
    unit: str
    direction: str
    nonnegative: bool = False
    window: int | None = None
    k: float = K


def _span(a: Anomaly) -> tuple[pd.Timestamp, pd.Timestamp]:
    duration = a.end - a.start
    lo = pd.Timestamp(a.start) - max(BEFORE, duration * BEFORE_FACTOR)
    hi = pd.Timestamp(a.end) + max(AFTER, duration * AFTER_FACTOR)
    return lo, hi


class SeriesSource:
    """A cycle's :class:`~opsloop.pipeline.observe.Signals` read for snapshots: each KPI metric's
    rows are selected once however many anomalies chart it, and each funnel's ratio is computed once
    per label value (several incidents may share them)."""

    def __init__(self, signals: Signals) -> None:
        self.signals = signals
        self.logs = signals.logs
        self.labels = [c for c in signals.kpis.columns if c not in ("ts", "metric", "value")]
        self._metrics: dict[str, pd.DataFrame] = {}
        self._funnels: dict[tuple[str, str], pd.Series | None] = {}

    def metric(self, name: str) -> pd.DataFrame:
        """The KPI rows of metric ``name`` (``ts, value`` and the label columns)."""
        if name not in self._metrics:
            kpis = self.signals.kpis
            self._metrics[name] = kpis.loc[kpis["metric"] == name, ["ts", "value", *self.labels]]
        return self._metrics[name]


def _kpi(a: Anomaly, source: SeriesSource, pack: Pack, ds: DetectionSettings) -> _Raw | None:
    ev = a.evidence
    rows = source.metric(ev.metric)
    for col in source.labels:
        want = ev.labels.get(col)
        rows = rows[rows[col] == want] if want else rows[rows[col].isna() | (rows[col] == "")]
    if rows.empty:
        return None
    values = rows.groupby("ts", sort=True)["value"].mean().astype(float)
    spec = pack.metric_spec(ev.metric)
    direction = spec.bad if spec.bad in ("up", "down") else "both"
    if isinstance(ev, RobustZEvidence):
        return _Raw(values, spec.unit, direction, window=ds.kpi_window, k=ds.kpi_threshold)
    return _Raw(values, spec.unit, direction)


def _grid(logs: pd.DataFrame, a: Anomaly, bucket: str) -> pd.DatetimeIndex:
    """The log buckets from the snapshot's baseline start to its end, bounded by the logs."""
    ts = logs["ts"]
    step = pd.Timedelta(bucket)
    lo, hi = _span(a)
    lo = max(lo - step * MAX_BASELINE_POINTS, ts.min()).floor(bucket)
    hi = min(hi, ts.max()).floor(bucket)
    return pd.date_range(lo, hi, freq=bucket)


def _logs_near(a: Anomaly, logs: pd.DataFrame, bucket: str, columns: list[str]) -> pd.DataFrame:
    """``columns`` of the log lines from the snapshot's baseline start to its end (a slice when the
    lines are sorted by time, as observed signals are)."""
    lo, hi = _span(a)
    lo -= pd.Timedelta(bucket) * MAX_BASELINE_POINTS
    cols = [c for c in dict.fromkeys(["ts", *columns]) if c in logs]
    ts = logs["ts"]
    if ts.is_monotonic_increasing:
        return logs.iloc[int(ts.searchsorted(lo)) : int(ts.searchsorted(hi))][cols]
    return logs.loc[(ts >= lo) & (ts < hi), cols]


def _error_share(a: Anomaly, logs: pd.DataFrame, ds: DetectionSettings) -> _Raw | None:
    ev = a.evidence
    if logs.empty:
        return None
    logs = _logs_near(a, logs, ds.bucket, ["endpoint", "status"])
    calls = logs[logs["endpoint"] == ev.endpoint]
    if calls.empty:
        return None
    by = calls["ts"].dt.floor(ds.bucket)
    counts = (calls["status"] == ev.status).groupby(by).agg(["sum", "size"])
    counts = counts.reindex(_grid(logs, a, ds.bucket), fill_value=0)
    share = (counts["sum"] / counts["size"].where(counts["size"] > 0)).astype(float)
    return _Raw(share, "share of calls", "up", nonnegative=True)


def _event_ratio(a: Anomaly, logs: pd.DataFrame, pack: Pack, ds: DetectionSettings) -> _Raw | None:
    ev = a.evidence
    pair = next((p for p in pack.event_pairs
                 if (p.upstream, p.downstream) == (ev.upstream_event, ev.downstream_event)), None)
    if pair is None or logs.empty or "event" not in logs:
        return None
    logs = _logs_near(a, logs, ds.bucket, ["event", *([pair.group_by] if pair.group_by else [])])
    events = logs[logs["event"].isin([pair.upstream, pair.downstream])]
    group = ev.labels.get(pair.group_by, ALL) if pair.group_by else ALL
    if group != ALL and pair.group_by in events:
        events = events[events[pair.group_by].astype(str) == group]
    if events.empty:
        return None
    counts = events.groupby([events["ts"].dt.floor(ds.bucket), "event"], observed=True).size().unstack(fill_value=0)
    counts = counts.reindex(index=_grid(logs, a, ds.bucket), columns=[pair.upstream, pair.downstream],
                            fill_value=0)
    up = counts[pair.upstream].astype(float)
    ratio = counts[pair.downstream].astype(float) / up.where(up > 0)
    return _Raw(ratio, "ratio", "down", nonnegative=True)


def _funnel_ratio(source: SeriesSource, funnel: FunnelSpec, group: str, ds: DetectionSettings) -> pd.Series | None:
    """Downstream per upstream of a KPI funnel per funnel bucket, both summed over the trailing
    funnel span, for one value of its ``group_by`` label (or overall)."""
    key = (funnel.name, group)
    if key not in source._funnels:
        up, down = funnel.upstream, funnel.downstream
        rows = pd.concat([source.metric(up).assign(metric=up), source.metric(down).assign(metric=down)])
        if group != ALL and funnel.group_by in rows:
            rows = rows[rows[funnel.group_by].astype(str) == group]
        table = rows.groupby(["ts", "metric"])["value"].sum().unstack("metric")
        ratio = None
        if up in table and down in table:
            rolled = table[[up, down]].resample(ds.funnel_bucket).sum().rolling(ds.funnel_span, min_periods=1).sum()
            ratio = rolled[down].astype(float) / rolled[up].where(rolled[up] > 0).astype(float)
        source._funnels[key] = ratio
    return source._funnels[key]


def _funnel(a: Anomaly, source: SeriesSource, pack: Pack, ds: DetectionSettings) -> _Raw | None:
    ev = a.evidence
    funnel = next((f for f in pack.funnels if f.name == ev.name), None)
    if funnel is None or (ev.upstream_metric, ev.downstream_metric) != (funnel.upstream, funnel.downstream):
        return None
    group = ev.labels.get(funnel.group_by, ALL) if funnel.group_by else ALL
    ratio = _funnel_ratio(source, funnel, group, ds)
    return None if ratio is None else _Raw(ratio, "ratio", "down", nonnegative=True)


def _raw(a: Anomaly, source: SeriesSource, pack: Pack, ds: DetectionSettings) -> _Raw | None:
    """The series ``a``'s detector scored, or ``None`` when the signals hold none for it."""
    ev = a.evidence
    if ev.kpi:
        return _kpi(a, source, pack, ds)
    if isinstance(ev, ErrorRateEvidence):
        return _error_share(a, source.logs, ds)
    if isinstance(ev, EventRatioEvidence):
        return _event_ratio(a, source.logs, pack, ds)
    if isinstance(ev, FunnelEvidence):
        return _funnel(a, source, pack, ds)
    return None


def _baseline_points(index: pd.DatetimeIndex) -> int:
    if len(index) < 2:
        return MIN_BASELINE_POINTS
    step = pd.Series(index).diff().median()
    return int(np.clip(BASELINE / step, MIN_BASELINE_POINTS, MAX_BASELINE_POINTS))


def _median(windows: np.ndarray) -> np.ndarray:
    """Exact median of each row (no NaN) by partial sorting."""
    h = windows.shape[1] // 2
    if windows.shape[1] % 2:
        return np.partition(windows, h, axis=1)[:, h]
    part = np.partition(windows, [h - 1, h], axis=1)
    return (part[:, h - 1] + part[:, h]) / 2


def trailing_median(values: np.ndarray, window: int, min_periods: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`~opsloop.detectors.robust_z.trailing_median_mad` (median and MAD of the ``window``
    points strictly before each point), computed by partial sorting where the series has no NaN and
    the window is full (the same values, several times faster on long windows)."""
    if len(values) <= window or np.isnan(values).any():
        return trailing_median_mad(values, window, min_periods)
    head_med, head_mad = trailing_median_mad(values[:window], window, min_periods)
    windows = sliding_window_view(values[:-1], window)  # row j: the window before point j + window
    med = _median(windows)
    mad = _median(np.abs(windows - med[:, None]))
    return np.concatenate([head_med, med]), np.concatenate([head_mad, mad])


def band(raw: _Raw, a: Anomaly) -> pd.DataFrame:
    """``observed, expected, lower, upper`` on ``raw``'s index (see the module docstring for the
    method): trailing median ± k·1.4826·MAD, held from the anomaly's start, centred on the
    detector's expectation inside the anomaly when it states one."""
    v = raw.values.to_numpy(dtype=float)
    window = raw.window or _baseline_points(raw.values.index)
    med, mad = trailing_median(v, window, max(window // 4, 3))
    std = pd.Series(v).shift(1).rolling(window, min_periods=max(window // 4, 3)).std().to_numpy()
    half = raw.k * np.where(mad > 0, 1.4826 * mad, std)
    idx = raw.values.index
    start, end = pd.Timestamp(a.start), pd.Timestamp(a.end)
    frame = pd.DataFrame({"observed": v, "expected": med, "half": half}, index=idx)
    before = frame.loc[idx < start, ["expected", "half"]].dropna()
    held = before.iloc[-1] if len(before) else pd.Series({"expected": np.nan, "half": np.nan})
    frame.loc[idx >= start, ["expected", "half"]] = held.to_numpy()
    expected = a.evidence.expected
    if expected is not None and np.isfinite(expected):
        frame.loc[(idx >= start) & (idx <= end), "expected"] = float(expected)
    frame["lower"] = frame["expected"] - frame["half"]
    frame["upper"] = frame["expected"] + frame["half"]
    if raw.nonnegative:
        frame["lower"] = frame["lower"].clip(lower=0.0)
    return frame.drop(columns="half")


def downsample(frame: pd.DataFrame, max_points: int = MAX_POINTS) -> pd.DataFrame:
    """At most ``max_points`` rows of a band frame: from each run of ``ceil(n / max_points)``
    consecutive rows, the one whose ``observed`` is farthest from ``expected`` (the first where
    none can be compared)."""
    n = len(frame)
    if n <= max_points:
        return frame
    size = math.ceil(n / max_points)
    dev = (frame["observed"] - frame["expected"]).abs().fillna(-1.0).to_numpy()
    bins = np.arange(n) // size
    keep = pd.Series(dev).groupby(bins).idxmax().to_numpy()
    return frame.iloc[keep]


def anomaly_series(a: Anomaly, source: SeriesSource, pack: Pack, ds: DetectionSettings) -> AnomalySeries | None:
    """The snapshot of one anomaly (see the module docstring), or ``None`` when the signals hold no
    series for it or do not reach its peak."""
    raw = _raw(a, source, pack, ds)
    if raw is None or raw.values.empty:
        return None
    idx = raw.values.index
    if not idx[0] <= pd.Timestamp(a.peak) <= idx[-1]:
        return None
    lo, hi = _span(a)
    window = raw.window or _baseline_points(idx)
    first = max(int(idx.searchsorted(lo)) - window - 1, 0)  # the baseline of the first point shown, no more
    raw = replace(raw, values=raw.values.iloc[first : int(idx.searchsorted(hi, side="right"))], window=window)
    frame = band(raw, a)
    frame = downsample(frame[(frame.index >= lo) & (frame.index <= hi)])
    cols = frame.astype(object).where(frame.notna(), None)
    points = [SeriesPoint(ts=ts, observed=o, expected=e, lower=lw, upper=up)
              for ts, o, e, lw, up in zip(frame.index.to_pydatetime(), cols["observed"], cols["expected"],
                                          cols["lower"], cols["upper"], strict=True)]
    ev = a.evidence
    return AnomalySeries(anomaly_key=a.key(), metric=ev.metric, labels=dict(ev.labels), unit=raw.unit,
                         direction=raw.direction, detector=a.detector, start=a.start, end=a.end, peak=a.peak,
                         points=points)


def incident_series(inc: Incident, source: SeriesSource, pack: Pack, ds: DetectionSettings) -> list[AnomalySeries]:
    """The snapshots of an incident's anomalies the signals hold a series for."""
    return [s for a in inc.anomalies if (s := anomaly_series(a, source, pack, ds)) is not None]


def snapshot_series(session: Session, incidents: list[Incident], signals: Signals, pack: Pack,
                    settings: Settings) -> int:
    """Store, in the caller's transaction, the snapshots of the stored ``incidents``' anomalies
    (replacing their earlier snapshots); returns how many were stored."""
    ds = DetectionSettings(kpi_threshold=settings.detection.kpi_z_threshold,
                           count_threshold=settings.detection.count_threshold)
    stored, source = 0, SeriesSource(signals)
    for inc in incidents:
        series = incident_series(inc, source, pack, ds)
        save_series(session, inc.id, series)
        stored += len(series)
    return stored
