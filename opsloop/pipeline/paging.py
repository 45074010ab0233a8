"""Reason stage, part 3: paging rules -- which incident candidates page someone, which are context.

A detector flags what is unusual; a page needs evidence an on-call engineer can act on. Each
anomaly of a candidate (:func:`opsloop.pipeline.correlate.correlate`) is *evidence* unless one of
these rules makes it *context* (checked in this order; the thresholds are the pack's
:class:`~opsloop.packs.model.PagingRules`):

1. ``maintenance``: it overlaps a declared maintenance window whose label selector it matches
   (:meth:`opsloop.domain.MaintenanceWindow.covers`).
2. ``expected_volume``: its metric is a volume (``MetricSpec.volume_only``): a surge or a dip of
   traffic with steady rates is expected; a failure shows in a rate or an error count beside it.
3. ``new_series``: its series (KPI series, or the endpoint of an error rate) has less than
   ``min_history_seconds`` of data before the anomaly: a label value going live from zero has no
   baseline, so nothing it does is an anomaly yet.
4. ``thin`` (sized): too little traffic behind it. A KPI whose spec names a ``volume`` metric
   needs ``min_volume`` of that count (same labels) summed over the anomaly's span (a per-minute
   percentile of a handful of requests is not evidence); an error rate needs
   ``min_events`` errors above its baseline; an event ratio or funnel ``min_events`` missing
   events; a log template or ticket surge ``min_events`` lines or tickets. An error rate or event
   ratio with fewer is still evidence when its *slice* failed wholesale -- at least ``min_share``
   of it: for an error rate, the requests to the endpoint in the span from the values of the
   pack's first label its errors came from (a merchant whose every webhook fails); for a ratio or
   funnel, the expected downstream events of its group. At low traffic a complete failure leaves
   few events yet is no noise; the blip rule below still wants it sustained.
5. ``seasonal``: a KPI whose level over the anomaly's span (the median, so one spike in it does
   not count) lies inside what the same series did at the same time of day (``± seasonal_minutes``)
   on up to ``seasonal_days`` earlier days: below the ``seasonal_quantile`` of those values for a
   rise, above the ``1 - seasonal_quantile`` one for a drop. A seasonal naive baseline (Hyndman &
   Athanasopoulos, *Forecasting: Principles and Practice*, 3rd ed., §5.2) read as a range.

A candidate with no evidence left is context. One whose evidence is not **sustained** -- no
evidence anomaly lasting ``min_seconds`` (its run, or for a KPI how long the series stays past
halfway from expected to peak), none whose source already required it to hold (an Alertmanager
alert: its rule's ``for:``), and no second evidence anomaly of another detector or metric
corroborating it -- is context too (``blip``). The others page, rebuilt from their evidence
only: title, fingerprint, span and severity come from the evidence, so a blip beside an incident
does not raise its severity. A candidate paging on a ticket surge also takes back its *thin*
count anomalies (errors, missing events, log lines): customers writing about it corroborate a
failure too small to page alone, and it names the incident. Context is returned as :class:`~opsloop.domain.ContextNote` for the
cycle report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pandas as pd

from opsloop.domain import Anomaly, ContextNote, Incident, MaintenanceWindow
from opsloop.evidence import ErrorRateEvidence
from opsloop.packs.model import Pack, PagingRules
from opsloop.pipeline.correlate import incident_of

#: Why an anomaly or candidate is context, in the order the rules are checked.
REASONS = {
    "maintenance": "inside a declared maintenance window",
    "expected_volume": "a volume moved with no rate or error beside it (a surge or a dip)",
    "new_series": "a series with no baseline yet (a new label value)",
    "thin": "too few requests or events behind it",
    "seasonal": "within what the series does at that time of day on earlier days",
    "blip": "not sustained and not corroborated by a second signal",
}
_DAY = pd.Timedelta(days=1)


class _Series:
    """KPI values per series, grouped once per cycle: ``get(metric, labels) -> (ts ns, value)``
    sorted by time (each series built once, on first use)."""

    def __init__(self, kpis: pd.DataFrame) -> None:
        self.kpis = kpis
        self.label_cols = [c for c in kpis.columns if c not in ("ts", "metric", "value")]
        self._index: dict | None = None
        self._cache: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get(self, metric: str, labels: dict[str, str]) -> tuple[np.ndarray, np.ndarray]:
        key = (metric, *(labels.get(c, "") for c in self.label_cols))
        if key in self._cache:
            return self._cache[key]
        if self._index is None:
            keys = self.kpis[["metric", *self.label_cols]].astype("string").fillna("")
            self._index = keys.groupby(list(keys.columns), sort=False, observed=True).indices \
                if len(self.kpis) else {}
            self._ts = pd.DatetimeIndex(self.kpis["ts"]).as_unit("ns").asi8 if len(self.kpis) else None
            self._values = self.kpis["value"].to_numpy(dtype=float)
        rows = self._index.get(key[0] if len(key) == 1 else key)
        if rows is None:
            out = (np.zeros(0, dtype=np.int64), np.zeros(0))
        else:
            ts = self._ts[rows]
            order = np.argsort(ts, kind="stable")
            out = (ts[order], self._values[rows][order])
        self._cache[key] = out
        return out


def _ns(ts) -> int:
    return int(pd.Timestamp(ts).value)


class PagingJudge:
    """Applies the rules of the module docstring to anomalies of one cycle.

    ``kpis``/``logs``: the cycle's frames (history included); ``windows``: the maintenance windows
    in force (the pack's and the stored ones).
    """

    def __init__(self, pack: Pack, kpis: pd.DataFrame, logs: pd.DataFrame,
                 windows: Sequence[MaintenanceWindow] = ()) -> None:
        self.pack, self.rules, self.windows = pack, pack.paging, list(windows)
        self.series = _Series(kpis)
        self._endpoint_first: dict[str, int] | None = None
        self.logs = logs

    # -- rules ----------------------------------------------------------------------------------
    def reason(self, a: Anomaly) -> str | None:
        """Why ``a`` is context (a :data:`REASONS` key), or ``None`` when it is evidence."""
        if any(w.covers(a) for w in self.windows):
            return "maintenance"
        ev = a.evidence
        kpi = ev.kpi
        spec = self.pack.metric_spec(ev.metric) if kpi else None
        if spec is not None and spec.volume_only:
            return "expected_volume"
        if self._is_new(a, kpi):
            return "new_series"
        if self._is_thin(a, spec):
            return "thin"
        if kpi and self._is_seasonal(a):
            return "seasonal"
        return None

    def _is_new(self, a: Anomaly, kpi: bool) -> bool:
        need = self.rules.min_history_seconds * 1e9
        if need <= 0:
            return False
        if kpi:
            ts, _ = self.series.get(a.evidence.metric, a.evidence.labels)
            return ts.size > 0 and _ns(a.start) - int(ts[0]) < need
        if isinstance(a.evidence, ErrorRateEvidence) and not self.logs.empty:
            if self._endpoint_first is None:
                first = self.logs.groupby("endpoint", observed=True)["ts"].min()
                self._endpoint_first = {str(k): _ns(v) for k, v in first.items()}
            first_ns = self._endpoint_first.get(a.evidence.endpoint)
            return first_ns is not None and _ns(a.start) - first_ns < need
        return False

    def _volume(self, spec, labels: dict[str, str]) -> tuple[np.ndarray, np.ndarray] | None:
        if spec is None or not spec.volume:
            return None
        return self.series.get(spec.volume, labels)

    def _is_thin(self, a: Anomaly, spec) -> bool:
        """Too few abnormal events (``min_events``) unless the slice failed wholesale (``min_share``);
        a KPI without a count: too little volume in its span (``min_volume``)."""
        r, ev = self.rules, a.evidence
        events = ev.abnormal_events()
        if events is not None:
            return events < r.min_events and not self._wholesale(self._failed_share(a, events))
        vol = self._volume(spec, ev.labels)
        if vol is None or r.min_volume <= 0:
            return False
        ts, n = vol
        inside = (ts >= _ns(a.start)) & (ts <= _ns(a.end))
        return float(np.nansum(n[inside])) < r.min_volume

    def _wholesale(self, share: float) -> bool:
        return self.rules.min_share > 0 and share >= self.rules.min_share

    def _failed_share(self, a: Anomaly, events: float) -> float:
        """The share of the span's expected events that the ``events`` abnormal ones are: from the
        evidence when it knows what was expected, from the logs for an endpoint's error status (the
        slice's share, :meth:`_slice_error_share`), else 0 (log lines and tickets have no
        denominator)."""
        ev = a.evidence
        expected = ev.expected_events()
        if expected is not None:
            return events / expected if expected > 0 else 0.0
        if isinstance(ev, ErrorRateEvidence):
            return self._slice_error_share(a)
        return 0.0

    def _slice_error_share(self, a: Anomaly) -> float:
        """Share of the requests to the anomaly's endpoint in its span, from the values of the pack's
        first label that had its error status, that returned that status (0 when the logs lack
        the columns)."""
        ev, logs = a.evidence, self.logs
        entity = next((lab for lab in self.pack.labels if lab in logs), None)
        if entity is None or logs.empty or not {"status", "endpoint"} <= set(logs.columns):
            return 0.0
        ts = logs["ts"]
        in_span = (ts >= pd.Timestamp(a.start)) & (ts < pd.Timestamp(a.end))
        rows = logs[(logs["endpoint"] == ev.endpoint) & in_span]
        failed = rows["status"] == ev.status
        hit = rows.loc[failed, entity].dropna().unique()
        in_slice = rows[entity].isin(hit)
        return float(failed[in_slice].sum()) / max(int(in_slice.sum()), 1)

    def _is_seasonal(self, a: Anomaly) -> bool:
        r, ev = self.rules, a.evidence
        if r.seasonal_days <= 0:
            return False
        ts, values = self.series.get(ev.metric, ev.labels)
        inside = (ts >= _ns(a.start)) & (ts <= _ns(a.end)) & ~np.isnan(values)
        if not inside.any():
            return False
        level = float(np.median(values[inside]))  # the span's level: one spike in it does not move it
        day, half = _DAY.value, r.seasonal_minutes * 60 * 10**9
        lag = _ns(a.peak) - ts  # ns before the peak
        k = np.rint(lag / day)
        near = (k >= 1) & (k <= r.seasonal_days) & (np.abs(lag - k * day) <= half) & ~np.isnan(values)
        ref = values[near]
        if ref.size < r.seasonal_min_points:
            return False
        if ev.direction == "up":
            return level <= float(np.quantile(ref, r.seasonal_quantile))
        return level >= float(np.quantile(ref, 1.0 - r.seasonal_quantile))

    # -- candidates -----------------------------------------------------------------------------
    def _excursion_seconds(self, a: Anomaly) -> float:
        """How long a KPI stays past halfway from its expected to its peak value from the peak on
        (a detector that flags only the onset of a level shift still shows a lasting move)."""
        ev = a.evidence
        if not ev.kpi or ev.observed is None or ev.expected is None:
            return 0.0
        ts, values = self.series.get(ev.metric, ev.labels)
        after = ts >= _ns(a.peak)
        ts, values = ts[after], values[after]
        half = (ev.observed + ev.expected) / 2.0
        past = values > half if ev.observed > ev.expected else values < half
        stop = np.flatnonzero(~past)
        last = (stop[0] - 1) if stop.size else values.size - 1
        return float(ts[last] - ts[0]) / 1e9 if last >= 0 else 0.0

    def sustained(self, evidence: list[Anomaly]) -> bool:
        """A long enough evidence anomaly (its run, or for a KPI its excursion), one whose source
        already required it to hold (an alert rule's ``for:``), or two of different detectors or
        metrics."""
        if any(a.evidence.sustained for a in evidence):
            return True
        need = self.rules.min_seconds
        if any((a.end - a.start).total_seconds() >= need or self._excursion_seconds(a) >= need for a in evidence):
            return True
        return len({(a.detector, a.evidence.metric) for a in evidence}) >= 2


def page(candidates: list[Incident], judge: PagingJudge, labels: Sequence[str] = ()
         ) -> tuple[list[Incident], list[ContextNote]]:
    """Split ``candidates`` into incidents that page (rebuilt from their evidence anomalies, with
    the candidates' ticket clusters) and context notes (see the module docstring)."""
    pages: list[Incident] = []
    context: list[ContextNote] = []
    for cand in candidates:
        reasons = [judge.reason(a) for a in cand.anomalies]
        evidence = [a for a, why in zip(cand.anomalies, reasons, strict=True) if why is None]
        why: str | None = None
        if not evidence:
            why = min(Counter(reasons), key=lambda r: list(REASONS).index(str(r)))
        elif not judge.sustained(evidence):
            why = "blip"
        if why is None:
            evidence += _corroborated_counts(cand.anomalies, reasons, evidence)
            pages.append(incident_of(evidence, cand.clusters, labels))
        else:
            context.append(ContextNote(title=cand.title, kind=cand.kind, first_seen=cand.first_seen,
                                       last_seen=cand.last_seen, reason=why, anomalies=len(cand.anomalies)))
    return pages, context


def _corroborated_counts(anomalies: Sequence[Anomaly], reasons: Sequence[str | None],
                         evidence: Sequence[Anomaly]) -> list[Anomaly]:
    """Thin count anomalies of a candidate that pages on a ticket surge: at low traffic a real
    failure leaves few failed events (8 orders lost in 20 minutes) yet customers write about it,
    and the two independent signals together are the evidence neither is alone. They join the
    incident so that it is named by what failed, not by the customers' words (a surge never names
    an incident, :func:`opsloop.pipeline.correlate.primary`). Pages nothing on its own: only
    candidates that already page are touched; percentiles of a handful of requests stay context."""
    if not any(a.evidence.corroborating for a in evidence):
        return []
    return [a for a, why in zip(anomalies, reasons, strict=True)
            if why == "thin" and not a.evidence.corroborating and a.evidence.abnormal_events() is not None]


def rules_summary(rules: PagingRules) -> dict[str, float]:
    """The thresholds in force, for the cycle report's parameters."""
    return {f"paging_{k}": v for k, v in rules.model_dump().items() if isinstance(v, (int, float))}
