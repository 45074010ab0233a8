"""Reason stage, part 1: run the detectors over the window's signals and return anomalies.

* KPIs: the robust z-score per series (metric + labels), one-sided where the metric has a bad
  direction (conversion down, latency up).
* Logs → error counts per endpoint and status code per bucket: the error-rate detector (hard).
* Logs → event counts per stage per bucket: the ratio detector on ``downstream / upstream`` event
  pairs such as ``order.created / payment.succeeded`` (soft).
* KPI funnel counts (``orders`` out of ``sessions``) per stage, summed over a trailing hour: the
  ratio detector again, as a one-sided conversion-drop test (business). Counts carry their own
  noise level, so a quiet night is not mistaken for a drop.

Only anomalies whose peak lies in the window are returned; data before the window is history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from opsloop.data import contracts as C
from opsloop.data.contracts import affected
from opsloop.detectors.base import BaseDetector
from opsloop.detectors.intervals import flag_runs
from opsloop.detectors.registry import create
from opsloop.domain import Anomaly, Kind, SeriesKey, Severity, Window

#: Direction in which a KPI going is bad; metrics not listed are watched both ways. ``None``: not
#: watched by the trailing robust z, because these volumes follow the daily cycle, which a trailing
#: median lags; their signal reaches us through the rates they are the denominators of.
BAD_DIRECTION: dict[str, str | None] = {
    C.METRIC_CONVERSION: "down", C.METRIC_SUCCESS_RATE: "down", C.METRIC_P95_LATENCY: "up", C.METRIC_AOV: "both",
    C.METRIC_ATTEMPTS: None, C.METRIC_ORDERS: None, C.METRIC_SESSIONS: None,
}
#: KPI count pairs (upstream, downstream) whose ratio is a conversion rate.
KPI_FUNNELS = [(C.METRIC_SESSIONS, C.METRIC_ORDERS)]
#: Event pairs (upstream, downstream) whose ratio is an invariant of a healthy checkout.
EVENT_PAIRS = [
    (C.EVENT_PAYMENT_SUCCEEDED, C.EVENT_ORDER_CREATED),
    (C.EVENT_SESSION_CREATED, C.EVENT_PAYMENT_SUCCEEDED),
]


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds (in each detector's unit) and bucketing; ``bucket`` is a pandas offset alias."""

    kpi_threshold: float = 8.0
    count_threshold: float = 8.0
    bucket: str = "5min"
    count_span: int = 3  # buckets summed per count test (15 minutes)
    kpi_window: int = 240
    kpi_smooth: int = 15
    ensemble_threshold: float = 0.9995
    funnel_bucket: str = "15min"
    funnel_span: int = 4  # buckets summed per test (one hour)
    funnel_baseline: int = 96  # buckets (one day)


def kpi_kind(metric: str) -> Kind:
    """Latency KPIs are hard failures; every other KPI is a business signal."""
    return Kind.hard if "latency" in metric else Kind.business


def severity_of(score: float, threshold: float, kind: Kind) -> Severity:
    """Severity from how far the score passes the threshold; hard/soft failures rank one step up."""
    ratio = score / threshold if threshold > 0 else 1.0
    rank = 1 if ratio < 1.5 else 2 if ratio < 3 else 3 if ratio < 6 else 4
    if kind in (Kind.hard, Kind.soft):
        rank = min(rank + 1, 4)
    return [Severity.low, Severity.medium, Severity.high, Severity.critical][rank - 1]


def probation(n: int) -> int:
    """Points at the start of a series during which a learning detector reports nothing: 15% of the
    series, at most 750 (the Numenta Anomaly Benchmark's probationary period, Lavin & Ahmad 2015)."""
    return min(int(0.15 * n), 750)


def _intervals(detector: BaseDetector, frame: pd.DataFrame, window: Window, max_gap: int, min_len: int,
               strong: float | None = None, warmup: bool = False):
    """(first, last, peak) positions of flagged runs whose peak lies inside the window (and, with
    ``warmup``, after the :func:`probation` period).

    A run shorter than ``min_len`` flagged points is kept only if its peak scores at least ``strong``
    (default twice the threshold): one noisy bucket just over the line is not an incident, one far
    over it may be.
    """
    score = frame["score"].to_numpy(dtype=float)
    flags = np.nan_to_num(score, nan=0.0) > detector.threshold_
    strong = 2 * detector.threshold_ if strong is None else strong
    idx = frame.index
    if warmup:
        flags[: probation(len(flags))] = False
    for first, last in flag_runs(flags, max_gap=max_gap):
        peak = first + int(np.nanargmax(score[first : last + 1]))
        short = int(flags[first : last + 1].sum()) < min_len
        if short and score[peak] < strong:
            continue
        if window.contains(idx[peak].to_pydatetime()):
            yield first, last, peak


def _kpi_detector(metric: str, s: DetectionSettings) -> tuple[BaseDetector | None, dict]:
    """The detector for a KPI and how its alarms become intervals.

    Metrics of the checkout contract with a known bad direction (rates, latency) get the trailing
    robust z with Stouffer smoothing: their per-minute noise changes with traffic, and a lasting shift
    is what matters. Any other KPI (e.g. a NAB series) gets the calibrated ``ensemble``, whose alarms
    are single points at the start of a change (one default for every series; see
    ``benchmarks/nab.py``).
    """
    direction = BAD_DIRECTION.get(metric, "both")
    if direction is None:
        return None, {}
    if metric in BAD_DIRECTION:
        det = create("robust_z", threshold=s.kpi_threshold, window=s.kpi_window, min_periods=s.kpi_window // 4,
                     smooth=s.kpi_smooth, direction=direction)
        return det, {"max_gap": 10, "min_len": 3}
    return create("ensemble", threshold=s.ensemble_threshold), {"max_gap": 12, "min_len": 1, "strong": 0.0,
                                                                "warmup": True}


def _kpi_severity(det: BaseDetector, frame: pd.DataFrame, peak: int, kind: Kind) -> Severity:
    if "evidence" in frame:  # ensemble: -log10 p against the threshold's
        base = -np.log10(max(1.0 - det.threshold_, 1e-12))
        ratio = float(frame["evidence"].iat[peak]) / base
        return Severity.high if ratio >= 2 else Severity.medium
    return severity_of(float(frame["score"].iat[peak]), det.threshold_, kind)


def detect_kpis(kpis: pd.DataFrame, window: Window, s: DetectionSettings) -> list[Anomaly]:
    """KPI anomalies on every series in ``kpis`` (long form) up to the window's end (see
    :func:`_kpi_detector` for which detector a series gets)."""
    if kpis.empty:
        return []
    kpis = kpis[kpis["ts"] < pd.Timestamp(window.end)]
    label_cols = [c for c in kpis.columns if c not in ("ts", "metric", "value")]
    out: list[Anomaly] = []
    for keys, grp in kpis.groupby(["metric", *label_cols], dropna=False, sort=True):
        keys = keys if isinstance(keys, tuple) else (keys,)
        metric, labels = str(keys[0]), {c: v for c, v in zip(label_cols, keys[1:]) if isinstance(v, str)}
        det, runs = _kpi_detector(metric, s)
        series = grp.groupby("ts")["value"].mean().sort_index()
        if det is None or len(series) < 10:
            continue
        det.fit(series)
        frame = det.score_frame(series)
        kind = kpi_kind(metric)
        key = SeriesKey.of(metric, **labels)
        for first, last, peak in _intervals(det, frame, window, **runs):
            score = float(frame["score"].iat[peak])
            observed, expected = float(series.iat[peak]), float(frame["expected"].iat[peak])
            span = series.iloc[first : last + 1]
            out.append(Anomaly(
                detector=det.name, kind=kind, series=key, start=series.index[first].to_pydatetime(),
                end=series.index[last].to_pydatetime(), peak=series.index[peak].to_pydatetime(), score=score,
                severity=_kpi_severity(det, frame, peak, kind), observed=observed, expected=expected,
                direction="down" if observed < expected else "up",
                evidence={"metric": metric, **labels, "span_mean": float(span.mean()),
                          "affected": {"stage": [labels["stage"]]} if labels.get("stage", "all") != "all" else {},
                          "expected_at_peak": expected, "points": int(last - first + 1)},
            ))
    return out


def _bucketed(logs: pd.DataFrame, by: list[str], bucket: str) -> pd.DataFrame:
    return logs.groupby([pd.Grouper(key="ts", freq=bucket), *by], observed=True).size().rename("n").reset_index()



def detect_log_errors(logs: pd.DataFrame, window: Window, s: DetectionSettings) -> list[Anomaly]:
    """Error-rate anomalies per (endpoint, status >= 400) against all calls to that endpoint."""
    if logs.empty:
        return []
    logs = logs[logs["ts"] < pd.Timestamp(window.end)]
    totals = _bucketed(logs, ["endpoint"], s.bucket).pivot(index="ts", columns="endpoint", values="n").fillna(0)
    full_index = pd.date_range(totals.index.min(), totals.index.max(), freq=s.bucket, tz="UTC")
    totals = totals.reindex(full_index, fill_value=0)
    errors = logs[logs["status"] >= 400]
    if errors.empty:
        return []
    err = _bucketed(errors, ["endpoint", "status"], s.bucket)
    out: list[Anomaly] = []
    step = pd.Timedelta(s.bucket)
    for (endpoint, status), grp in err.groupby(["endpoint", "status"], sort=True):
        k = grp.set_index("ts")["n"].reindex(full_index, fill_value=0)
        buckets = pd.DataFrame({"errors": k, "total": totals[endpoint]})
        frame_in = buckets.rolling(s.count_span, min_periods=1).sum()
        det = create("error_rate", threshold=s.count_threshold).fit(frame_in)
        frame = det.score_frame(frame_in)
        for first, last, peak in _intervals(det, frame, window, max_gap=2, min_len=2):
            first = max(first - s.count_span + 1, 0)
            while first < last and buckets["errors"].iat[first] == 0:
                first += 1
            start, end = full_index[first], full_index[last] + step
            rows = errors[(errors["endpoint"] == endpoint) & (errors["status"] == status)
                          & (errors["ts"] >= start) & (errors["ts"] < end)]
            n_err, n_tot = int(buckets["errors"].iloc[first : last + 1].sum()), int(buckets["total"].iloc[first : last + 1].sum())
            score = float(frame["score"].iat[peak])
            base = float(frame["baseline_rate"].iat[peak])
            examples = rows["message"].drop_duplicates().head(3).tolist()
            out.append(Anomaly(
                detector=det.name, kind=Kind.hard, series=SeriesKey.of("http_errors", endpoint=endpoint, status=int(status)),
                start=start.to_pydatetime(), end=end.to_pydatetime(), peak=full_index[peak].to_pydatetime(),
                score=score, severity=severity_of(score, det.threshold_, Kind.hard),
                observed=n_err / max(n_tot, 1), expected=base, direction="up",
                evidence={"endpoint": endpoint, "status": int(status), "errors": n_err, "requests": n_tot,
                          "error_rate": n_err / max(n_tot, 1), "baseline_rate": base,
                          "services": sorted(rows["service"].dropna().unique().tolist()),
                          "examples": examples, "affected": affected(rows, top=20)},
            ))
    return out


def _ratio_affected(span: pd.DataFrame, up: str, down: str, base: float, s: DetectionSettings,
                    min_up: int = 3, drop: float = 0.25) -> dict[str, list[str]]:
    """Merchants (and their stages) whose own ``down/up`` ratio in the span fell by ``drop`` or more
    below the baseline ratio ``base`` (with at least ``min_up`` upstream events): the blast radius,
    not everyone who had traffic."""
    if "merchant_id" not in span:
        return {}
    ev = span[span["event"].isin([up, down])]
    counts = ev.groupby(["merchant_id", "event"]).size().unstack(fill_value=0)
    if up not in counts:
        return {}
    n_up = counts[up]
    n_down = counts[down] if down in counts else 0 * n_up
    hit = counts.index[(n_up >= min_up) & (n_down < (1 - drop) * base * n_up)]
    return affected(ev[ev["merchant_id"].isin(hit)], top=20)


def detect_event_ratios(logs: pd.DataFrame, window: Window, s: DetectionSettings) -> list[Anomaly]:
    """Ratio anomalies of each pair in :data:`EVENT_PAIRS`, per stage and overall."""
    if logs.empty or "event" not in logs or logs["event"].isna().all():
        return []
    logs = logs[logs["ts"] < pd.Timestamp(window.end)]
    names = {e for pair in EVENT_PAIRS for e in pair}
    ev = logs[logs["event"].isin(names)].copy()
    if ev.empty:
        return []
    ev["stage"] = ev["stage"].fillna("all") if "stage" in ev else "all"
    counts = _bucketed(ev, ["stage", "event"], s.bucket)
    overall = counts.groupby(["ts", "event"], as_index=False)["n"].sum().assign(stage="all")
    if counts["stage"].nunique() > 1:
        counts = pd.concat([counts, overall], ignore_index=True)
    full_index = pd.date_range(counts["ts"].min(), counts["ts"].max(), freq=s.bucket, tz="UTC")
    step = pd.Timedelta(s.bucket)
    out: list[Anomaly] = []
    for stage, grp in counts.groupby("stage", sort=True):
        table = grp.pivot(index="ts", columns="event", values="n").reindex(full_index).fillna(0)
        for up, down in EVENT_PAIRS:
            if up not in table or down not in table:
                continue
            buckets = pd.DataFrame({"downstream": table[down], "upstream": table[up]})
            frame_in = buckets.rolling(s.count_span, min_periods=1).sum()
            det = create("ratio", threshold=s.count_threshold).fit(frame_in)
            frame = det.score_frame(frame_in)
            for first, last, peak in _intervals(det, frame, window, max_gap=2, min_len=2):
                first = max(first - s.count_span + 1, 0)
                start, end = full_index[first], full_index[last] + step
                n_up = int(buckets["upstream"].iloc[first : last + 1].sum())
                n_down = int(buckets["downstream"].iloc[first : last + 1].sum())
                base = float(frame["baseline_ratio"].iat[peak])
                span = ev[(ev["ts"] >= start) & (ev["ts"] < end) & ((ev["stage"] == stage) | (stage == "all"))]
                evidence = {"upstream_event": up, "downstream_event": down, "stage": stage, "upstream": n_up,
                            "downstream": n_down, "ratio": n_down / max(n_up, 1), "baseline_ratio": base,
                            "missing": max(int(round(base * n_up)) - n_down, 0)}
                if "order_id" in span and up == C.EVENT_PAYMENT_SUCCEEDED:
                    paid = span[span["event"] == up]
                    done = set(span.loc[span["event"] == down, "order_id"].dropna())
                    orphans = paid[~paid["order_id"].isin(done)]
                    evidence.update(orphaned_ids=orphans["order_id"].dropna().head(5).tolist(), affected=affected(orphans, top=20))
                else:
                    evidence["affected"] = _ratio_affected(span, up, down, base, s)
                score = float(frame["score"].iat[peak])
                out.append(Anomaly(
                    detector=det.name, kind=Kind.soft, series=SeriesKey.of(f"{down}/{up}", stage=stage),
                    start=start.to_pydatetime(), end=end.to_pydatetime(), peak=full_index[peak].to_pydatetime(),
                    score=score, severity=severity_of(score, det.threshold_, Kind.soft),
                    observed=n_down / max(n_up, 1), expected=base, direction="down", evidence=evidence,
                ))
    return out


def detect_kpi_funnels(kpis: pd.DataFrame, window: Window, s: DetectionSettings) -> list[Anomaly]:
    """Conversion drops: ``downstream`` out of ``upstream`` KPI counts (:data:`KPI_FUNNELS`) per stage,
    summed over the trailing ``funnel_span`` buckets, against the median ratio of the previous day."""
    if kpis.empty:
        return []
    kpis = kpis[kpis["ts"] < pd.Timestamp(window.end)]
    stages = kpis["stage"].fillna("all") if "stage" in kpis else pd.Series("all", index=kpis.index)
    step = pd.Timedelta(s.funnel_bucket)
    out: list[Anomaly] = []
    for stage, grp in kpis.groupby(stages, sort=True):
        table = grp.pivot_table(index="ts", columns="metric", values="value", aggfunc="sum")
        for up, down in KPI_FUNNELS:
            if up not in table or down not in table:
                continue
            counts = table[[up, down]].resample(s.funnel_bucket).sum()
            rolled = counts.rolling(s.funnel_span, min_periods=1).sum()
            frame_in = pd.DataFrame({"downstream": rolled[down], "upstream": rolled[up]})
            det = create("ratio", threshold=s.count_threshold, baseline=s.funnel_baseline,
                         min_buckets=s.funnel_baseline // 4).fit(frame_in)
            frame = det.score_frame(frame_in)
            for first, last, peak in _intervals(det, frame, window, max_gap=2, min_len=2):
                span = counts.iloc[first : last + 1]
                n_up, n_down = float(span[up].sum()), float(span[down].sum())
                base = float(frame["baseline_ratio"].iat[first])
                score = float(frame["score"].iat[peak])
                out.append(Anomaly(
                    detector="kpi_funnel", kind=Kind.business, series=SeriesKey.of(f"{down}/{up}", stage=stage),
                    start=counts.index[first].to_pydatetime(), end=(counts.index[last] + step).to_pydatetime(),
                    peak=counts.index[peak].to_pydatetime(), score=score,
                    severity=severity_of(score, det.threshold_, Kind.business),
                    observed=n_down / max(n_up, 1.0), expected=base, direction="down",
                    evidence={"upstream_metric": up, "downstream_metric": down, "stage": stage, "upstream": n_up,
                              "downstream": n_down, "ratio": n_down / max(n_up, 1.0), "baseline_ratio": base,
                              "missing": max(base * n_up - n_down, 0.0),
                              "affected": {"stage": [stage]} if stage != "all" else {}},
                ))
    return out
