"""Reason stage, part 1: run the detectors over the window's signals and return anomalies.

What to watch comes from the domain pack (:class:`opsloop.packs.model.Pack`), never from here:

* KPIs: each metric gets the detector and bad direction of the pack's first matching
  :class:`~opsloop.packs.model.MetricSpec` (default: the calibrated ``ensemble``, both directions).
  All series of one (detector, direction) are scored in one vectorised
  :func:`~opsloop.detectors.batch.score_long` call; runs are found across series at once.
* Logs → error counts per endpoint and status code per bucket: the ``error_rate`` detector (hard).
* Logs → event counts per bucket for each of the pack's event pairs, per value of its ``group_by``
  label and overall: the ``ratio`` detector on ``downstream / upstream`` (soft).
* Both log tests run over scan windows of 15, 30, 60, 120 and 240 minutes
  (:mod:`opsloop.detectors.scan`); an anomaly's span is the stretch of the flagged windows with the
  largest excess of errors (or missing events) over the baseline.
* KPI funnels of the pack (``downstream`` out of ``upstream`` counts) summed over a trailing hour:
  the ``kpi_funnel`` detector, a one-sided drop test (business). Counts carry their own noise
  level, so a quiet night is not mistaken for a drop.

Only anomalies whose peak lies in the window are returned; data before the window is history.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from opsloop.data.contracts import affected
from opsloop.detectors.base import BaseDetector
from opsloop.detectors.batch import score_long
from opsloop.detectors.intervals import grouped_runs
from opsloop.detectors.probation import probation_length
from opsloop.detectors.registry import create
from opsloop.detectors.scan import bernoulli_llr, max_excess_segment
from opsloop.detectors.severity import CALIBRATED_STEPS, severity_of
from opsloop.domain import Anomaly, Kind, Window
from opsloop.evidence import (
    EnsembleEvidence,
    ErrorRateEvidence,
    EventRatioEvidence,
    FunnelEvidence,
    RobustZEvidence,
)
from opsloop.packs.model import MetricSpec, Pack

ALL = "all"
"""The label value of a series summed over every value of a ``group_by`` label."""


@dataclass(frozen=True)
class DetectionSettings:
    """Thresholds (in each detector's unit) and bucketing; ``bucket`` is a pandas offset alias.

    ``kpi_threshold``: robust z; ``count_threshold``: −log10 p of the error-rate, ratio and funnel
    tests (both from :class:`opsloop.config.DetectionConfig`, which holds their one default);
    ``ensemble_threshold``: ``1 - p`` of the calibrated ensemble.
    """

    kpi_threshold: float
    count_threshold: float
    bucket: str = "5min"
    count_spans: tuple[int, ...] = (3, 6, 12, 24, 48)  # scan windows of the log count tests (15 min to 4 h)
    kpi_window: int = 240
    kpi_smooth: int = 15
    ensemble_threshold: float = 0.9995
    funnel_bucket: str = "15min"
    funnel_span: int = 4  # buckets summed per test (one hour)
    min_points: int = 10  # a KPI series shorter than this is not scored


def _runs_in_window(codes: np.ndarray, score: np.ndarray, flags: np.ndarray, idx: pd.DatetimeIndex,
                    window: Window, max_gap: int, min_len: int, strong: float):
    """(first, last, peak) rows of the runs of ``flags`` (per series ``codes``, see
    :func:`~opsloop.detectors.intervals.grouped_runs`) whose peak -- the highest flagged score --
    lies inside the window. A run shorter than ``min_len`` flagged points is kept only if its peak
    scores at least ``strong``: one noisy bucket just over the line is not an incident, one far
    over it may be."""
    start, end = pd.Timestamp(window.start), pd.Timestamp(window.end)
    for first, last in grouped_runs(codes, flags, max_gap=max_gap):
        peak = first + int(np.argmax(np.where(flags[first : last + 1], score[first : last + 1], -np.inf)))
        if int(flags[first : last + 1].sum()) < min_len and score[peak] < strong:
            continue
        if start <= idx[peak] < end:
            yield first, last, peak


def _intervals(score: np.ndarray, threshold: float, idx: pd.DatetimeIndex, window: Window, max_gap: int,
               min_len: int):
    """:func:`_runs_in_window` of one series' ``score > threshold``, a short run needing twice the
    threshold."""
    flags = np.nan_to_num(score, nan=0.0) > threshold
    return _runs_in_window(np.zeros(len(score), dtype=np.int64), score, flags, idx, window, max_gap, min_len,
                           2 * threshold)


def _located(score: np.ndarray, span: np.ndarray, threshold: float, excess: np.ndarray, first: int, last: int,
             peak: int) -> tuple[int, int, int]:
    """``(first, last, peak)`` rows of a flagged run of a scan-window count test narrowed to the
    stretch with the largest summed ``excess`` (per bucket, the log-likelihood ratio of the peak
    window's rate against the baseline, :func:`~opsloop.detectors.scan.bernoulli_llr`) among the
    buckets its flagged windows cover (:func:`~opsloop.detectors.scan.max_excess_segment`);
    the peak's row is moved inside it (its score and baseline stay those of the flagged peak).
    ``span``: the window length, in buckets, that scored each row."""
    rows = np.arange(first, last + 1)
    flagged = np.nan_to_num(score[rows], nan=0.0) > threshold
    lo = max(int(np.min(rows[flagged] - span[rows[flagged]].astype(int) + 1)), 0) if flagged.any() else first
    i, j = max_excess_segment(excess[lo : last + 1])
    return lo + i, lo + j, min(max(peak, lo + i), lo + j)


def _label_dict(row: pd.Series, label_cols: list[str]) -> dict[str, str]:
    return {c: str(row[c]) for c in label_cols if isinstance(row[c], str) and row[c] != ""}


def _blast(labels: dict[str, str], pack: Pack) -> dict[str, list[str]]:
    return {k: [v] for k, v in labels.items() if k in pack.labels and v != ALL}


#: How runs of each KPI detector become anomalies: merge gap and minimum length in points, the
#: score a short run needs, and whether NAB's probationary period applies.
_RUNS = {"robust_z": {"max_gap": 10, "min_len": 3, "strong": None, "probation": False},
         "ensemble": {"max_gap": 12, "min_len": 1, "strong": 0.0, "probation": True}}


def _kpi_detector_params(detector: str, bad: str, s: DetectionSettings) -> dict[str, object]:
    if detector == "robust_z":
        return {"threshold": s.kpi_threshold, "window": s.kpi_window, "min_periods": s.kpi_window // 4,
                "smooth": s.kpi_smooth, "direction": bad}
    return {"threshold": s.ensemble_threshold}


def detect_kpis(kpis: pd.DataFrame, window: Window, pack: Pack, s: DetectionSettings) -> list[Anomaly]:
    """KPI anomalies on every series of ``kpis`` (long form: ``ts, metric, value`` + label columns)
    up to the window's end, each metric watched as the pack says (see the module docstring)."""
    if kpis.empty:
        return []
    kpis = kpis[kpis["ts"] < pd.Timestamp(window.end)]
    label_cols = [c for c in kpis.columns if c not in ("ts", "metric", "value")]
    keys = ["metric", *label_cols]
    frame = kpis.assign(**{c: kpis[c].fillna("") for c in label_cols})
    frame = frame.groupby([*keys, "ts"], sort=True, observed=True)["value"].mean().reset_index()
    specs = {m: pack.metric_spec(m) for m in frame["metric"].unique()}
    frame["_size"] = frame.groupby(keys, observed=True)["ts"].transform("size")
    frame = frame[frame["_size"] >= s.min_points]
    out: list[Anomaly] = []
    groups: dict[tuple[str, str], list[str]] = {}
    for metric, spec in specs.items():
        if spec.bad != "none":
            groups.setdefault((spec.detector, spec.bad), []).append(metric)
    for (detector, bad), metrics in sorted(groups.items()):
        part = frame[frame["metric"].isin(metrics)]
        if part.empty:
            continue
        params = _kpi_detector_params(detector, bad, s)
        scored = score_long(_on_common_grid(part, keys), detector, key_cols=keys, **params)
        scored = scored[scored["value"].notna()].reset_index(drop=True)
        out += _kpi_anomalies(scored, detector, bad, params, keys, window, pack, specs)
    return out


def _on_common_grid(part: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Several series on one regular time grid with gaps (a rate undefined in a minute without
    traffic) padded with NaN rows to the grid, so that :func:`score_long` scores them in one
    vectorised batch (detectors give NaN for NaN input). A single series, or series whose union of
    timestamps is not regular, are returned as they are."""
    ts = pd.DatetimeIndex(part["ts"].unique(), name="ts").sort_values()
    n_series = part.groupby(keys, observed=True).ngroups
    if n_series < 2 or len(ts) < 3:
        return part
    steps = np.diff(ts.asi8)
    if not (steps == steps[0]).all():
        return part
    wide = part.set_index([*keys, "ts"])["value"].unstack("ts").reindex(columns=ts)
    long = wide.stack(future_stack=True).rename("value").reset_index()
    return long[[*keys, "ts", "value"]]


def _kpi_anomalies(scored: pd.DataFrame, detector: str, bad: str, params: dict, keys: list[str],
                   window: Window, pack: Pack, specs: dict[str, MetricSpec]) -> list[Anomaly]:
    """Anomalies from a :func:`score_long` frame (sorted by series then time) of one KPI detector;
    ``specs``: the pack's spec of each metric."""
    runs_cfg = _RUNS[detector]
    threshold = float(params["threshold"])
    score = scored["score"].to_numpy(dtype=float)
    direction = scored["direction"].to_numpy(dtype=float)
    codes = scored.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    starts = np.flatnonzero(np.r_[True, np.diff(codes) != 0])  # each series' first row (rows are contiguous)
    size = np.diff(np.r_[starts, len(codes)])[codes]
    pos = np.arange(len(codes)) - starts[codes]
    flags = np.nan_to_num(score, nan=0.0) > threshold
    if bad in ("up", "down") and detector == "ensemble":  # the ensemble scores both ways; keep the bad one
        flags &= direction == (1.0 if bad == "up" else -1.0)
    if runs_cfg["probation"]:
        flags &= pos >= probation_length(size)
    ts = pd.DatetimeIndex(scored["ts"])
    strong = 2 * threshold if runs_cfg["strong"] is None else float(runs_cfg["strong"])
    label_cols = keys[1:]
    refit: dict[int, pd.DataFrame] = {}
    out: list[Anomaly] = []
    for first, last, peak in _runs_in_window(codes, score, flags, ts, window, int(runs_cfg["max_gap"]),
                                             int(runs_cfg["min_len"]), strong):
        code = int(codes[peak])
        lo = int(starts[code])
        if code not in refit:  # expected values: one fit of the few series that alarmed
            rows = scored.iloc[lo : lo + int(size[peak])]
            series = pd.Series(rows["value"].to_numpy(dtype=float), index=pd.DatetimeIndex(rows["ts"]))
            det: BaseDetector = create(detector, **params).fit(series)
            refit[code] = det.score_frame(series).reset_index(drop=True)
        f = refit[code]
        at = peak - lo
        row = scored.iloc[peak]
        metric, labels = str(row["metric"]), _label_dict(row, label_cols)
        spec = specs[metric]
        observed, expected = float(row["value"]), float(f["expected"].iat[at]) if "expected" in f else None
        if expected is not None and np.isnan(expected):
            expected = None
        span_values = scored["value"].iloc[first : last + 1]
        common = {"metric": metric, "labels": labels, "observed": observed, "expected": expected,
                  "direction": "down" if direction[peak] < 0 else "up", "affected": _blast(labels, pack),
                  "points": int(last - first + 1)}
        if detector == "ensemble":
            ev_score = float(-np.log10(max(1.0 - score[peak], 1e-300)))
            base = float(-np.log10(max(1.0 - threshold, 1e-300)))
            member = f["member"].iat[at] if "member" in f else None
            evidence = EnsembleEvidence(score=ev_score, member=member if isinstance(member, str) else None, **common)
            severity = severity_of(ev_score, base, spec.kind, CALIBRATED_STEPS, None, pack.severity.evidence_max)
        else:
            evidence = RobustZEvidence(score=float(score[peak]), span_mean=float(span_values.mean()), **common)
            severity = severity_of(float(score[peak]), threshold, spec.kind, pack.severity.steps,
                                   pack.severity.kind_bump, pack.severity.evidence_max)
        out.append(Anomaly(kind=spec.kind, start=ts[first].to_pydatetime(), end=ts[last].to_pydatetime(),
                           peak=ts[peak].to_pydatetime(), severity=severity, evidence=evidence))
    return out


def _bucketed(logs: pd.DataFrame, by: list[str], bucket: str) -> pd.DataFrame:
    return logs.groupby([pd.Grouper(key="ts", freq=bucket), *by], observed=True).size().rename("n").reset_index()


def _count_severity(score: float, threshold: float, kind, pack: Pack):
    return severity_of(score, threshold, kind, pack.severity.steps, pack.severity.kind_bump,
                       pack.severity.evidence_max)


def detect_log_errors(logs: pd.DataFrame, window: Window, pack: Pack, s: DetectionSettings) -> list[Anomaly]:
    """Error-rate anomalies per (endpoint, status >= 400) against all calls to that endpoint (hard)."""
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
        det = create("error_rate", threshold=s.count_threshold, spans=s.count_spans).fit(buckets)
        frame = det.score_frame(buckets)
        score, span = frame["score"].to_numpy(dtype=float), frame["span"].to_numpy(dtype=float)
        errs, calls = buckets["errors"].to_numpy(dtype=float), buckets["total"].to_numpy(dtype=float)
        for first, last, peak in _intervals(score, det.threshold_, full_index, window, max_gap=2, min_len=2):
            excess = bernoulli_llr(errs, calls, float(frame["baseline_rate"].iat[peak]),
                                   float(frame["rate"].iat[peak]))
            first, last, at = _located(score, span, det.threshold_, excess, first, last, peak)
            start, end = full_index[first], full_index[last] + step
            rows = errors[(errors["endpoint"] == endpoint) & (errors["status"] == status)
                          & (errors["ts"] >= start) & (errors["ts"] < end)]
            n_err = int(buckets["errors"].iloc[first : last + 1].sum())
            n_tot = int(buckets["total"].iloc[first : last + 1].sum())
            evidence = ErrorRateEvidence(
                metric="http_errors", labels={"endpoint": str(endpoint), "status": str(int(status))},
                score=float(score[peak]), observed=n_err / max(n_tot, 1),
                expected=float(frame["baseline_rate"].iat[peak]), direction="up",
                affected=affected(rows, pack.labels, top=20), endpoint=str(endpoint), status=int(status),
                errors=n_err, requests=n_tot, services=sorted(rows["service"].dropna().astype(str).unique().tolist()),
                examples=rows["message"].drop_duplicates().head(3).astype(str).tolist())
            out.append(Anomaly(
                kind=Kind.hard, start=start.to_pydatetime(), end=end.to_pydatetime(),
                peak=full_index[at].to_pydatetime(),
                severity=_count_severity(float(score[peak]), det.threshold_, Kind.hard, pack), evidence=evidence))
    return out


def _ratio_affected(span: pd.DataFrame, up: str, down: str, base: float, labels: list[str], entity: str | None,
                    min_up: int = 3, drop: float = 0.25) -> dict[str, list[str]]:
    """Values of the pack's first blast-radius label present in the span (the entity, e.g. a
    customer) whose own ``down/up`` ratio fell by ``drop`` or more below ``base`` (with at least
    ``min_up`` upstream events): the blast radius, not everyone who had traffic."""
    if entity is None or entity not in span:
        return {}
    ev = span[span["event"].isin([up, down])]
    counts = ev.groupby([entity, "event"]).size().unstack(fill_value=0)
    if up not in counts:
        return {}
    n_up = counts[up]
    n_down = counts[down] if down in counts else 0 * n_up
    hit = counts.index[(n_up >= min_up) & (n_down < (1 - drop) * base * n_up)]
    return affected(ev[ev[entity].isin(hit)], labels, top=20)


def detect_event_ratios(logs: pd.DataFrame, window: Window, pack: Pack, s: DetectionSettings) -> list[Anomaly]:
    """Ratio anomalies of each of the pack's event pairs, per value of its ``group_by`` label and
    overall (soft)."""
    if logs.empty or not pack.event_pairs or "event" not in logs or logs["event"].isna().all():
        return []
    logs = logs[logs["ts"] < pd.Timestamp(window.end)]
    step = pd.Timedelta(s.bucket)
    entity = next((lab for lab in pack.labels if lab in logs and lab not in {p.group_by for p in pack.event_pairs}),
                  None)
    out: list[Anomaly] = []
    for pair in pack.event_pairs:
        up, down, by = pair.upstream, pair.downstream, pair.group_by
        ev = logs[logs["event"].isin([up, down])].copy()
        if ev.empty:
            continue
        ev["_group"] = ev[by].fillna(ALL).astype(str) if by and by in ev else ALL
        counts = _bucketed(ev, ["_group", "event"], s.bucket)
        if counts["_group"].nunique() > 1:
            overall = counts.groupby(["ts", "event"], as_index=False)["n"].sum().assign(_group=ALL)
            counts = pd.concat([counts, overall], ignore_index=True)
        full_index = pd.date_range(counts["ts"].min(), counts["ts"].max(), freq=s.bucket, tz="UTC")
        first_down = None
        for group, grp in counts.groupby("_group", sort=True):
            table = grp.pivot(index="ts", columns="event", values="n").reindex(full_index).fillna(0)
            if up not in table or down not in table:
                continue
            buckets = pd.DataFrame({"downstream": table[down], "upstream": table[up]})
            det = create("ratio", threshold=s.count_threshold, spans=s.count_spans).fit(buckets)
            frame = det.score_frame(buckets)
            score, win = frame["score"].to_numpy(dtype=float), frame["span"].to_numpy(dtype=float)
            ups, downs = (buckets[c].to_numpy(dtype=float) for c in ("upstream", "downstream"))
            for first, last, peak in _intervals(score, det.threshold_, full_index, window, max_gap=2, min_len=2):
                excess = bernoulli_llr(downs, ups, float(frame["baseline_ratio"].iat[peak]),
                                       float(frame["ratio"].iat[peak]))
                first, last, at = _located(score, win, det.threshold_, excess, first, last, peak)
                start, end = full_index[first], full_index[last] + step
                n_up = int(buckets["upstream"].iloc[first : last + 1].sum())
                n_down = int(buckets["downstream"].iloc[first : last + 1].sum())
                base = float(frame["baseline_ratio"].iat[peak])
                span = ev[(ev["ts"] >= start) & (ev["ts"] < end) & ((ev["_group"] == group) | (group == ALL))]
                orphaned: list[str] = []
                late = 0
                if pair.id_column and pair.id_column in span:
                    paid = span[span["event"] == up]
                    done = set(span.loc[span["event"] == down, pair.id_column].dropna())
                    orphans = paid[~paid[pair.id_column].isin(done)]
                    if first_down is None:  # once per pair: when each id's downstream event came
                        first_down = ev[ev["event"] == down].groupby(pair.id_column)["ts"].min()
                    arrived = (orphans[pair.id_column].map(first_down) >= end).fillna(False).astype(bool)
                    late = int(arrived.sum())  # a lagging consumer: the event came, after the span
                    orphans = orphans[~arrived.to_numpy()]
                    orphaned = orphans[pair.id_column].dropna().astype(str).head(5).tolist()
                    blast = affected(orphans, pack.labels, top=20)
                else:
                    blast = _ratio_affected(span, up, down, base, pack.labels, entity)
                labels = {by: str(group)} if by else {}
                evidence = EventRatioEvidence(
                    metric=f"{down}/{up}", labels=labels, score=float(score[peak]), observed=n_down / max(n_up, 1),
                    expected=base, direction="down", affected=blast, upstream_event=up, downstream_event=down,
                    upstream=n_up, downstream=n_down, missing=max(int(round(base * n_up)) - n_down - late, 0),
                    late=late, orphaned_ids=orphaned)
                out.append(Anomaly(
                    kind=pair.kind, start=start.to_pydatetime(), end=end.to_pydatetime(),
                    peak=full_index[at].to_pydatetime(),
                    severity=_count_severity(float(score[peak]), det.threshold_, pair.kind, pack), evidence=evidence))
    return out


def detect_kpi_funnels(kpis: pd.DataFrame, window: Window, pack: Pack, s: DetectionSettings) -> list[Anomaly]:
    """Drops of each of the pack's KPI funnels (``downstream`` out of ``upstream`` counts) per value
    of its ``group_by`` label, summed over the trailing ``funnel_span`` buckets, against the
    ``kpi_funnel`` detector's baseline (a day)."""
    if kpis.empty or not pack.funnels:
        return []
    kpis = kpis[kpis["ts"] < pd.Timestamp(window.end)]
    step = pd.Timedelta(s.funnel_bucket)
    out: list[Anomaly] = []
    for funnel in pack.funnels:
        up, down, by = funnel.upstream, funnel.downstream, funnel.group_by
        rows = kpis[kpis["metric"].isin([up, down])]
        if rows.empty:
            continue
        groups = rows[by].fillna(ALL).astype(str) if by and by in rows else pd.Series(ALL, index=rows.index)
        for group, grp in rows.groupby(groups, sort=True):
            table = grp.pivot_table(index="ts", columns="metric", values="value", aggfunc="sum")
            if up not in table or down not in table:
                continue
            counts = table[[up, down]].resample(s.funnel_bucket).sum()
            rolled = counts.rolling(s.funnel_span, min_periods=1).sum()
            frame_in = pd.DataFrame({"downstream": rolled[down], "upstream": rolled[up]})
            det = create("kpi_funnel", threshold=s.count_threshold).fit(frame_in)
            frame = det.score_frame(frame_in)
            score = frame["score"].to_numpy(dtype=float)
            for first, last, peak in _intervals(score, det.threshold_, counts.index, window, max_gap=2, min_len=2):
                span = counts.iloc[first : last + 1]
                n_up, n_down = float(span[up].sum()), float(span[down].sum())
                base = float(frame["baseline_ratio"].iat[first])
                labels = {by: str(group)} if by else {}
                evidence = FunnelEvidence(
                    metric=f"{down}/{up}", labels=labels, score=float(score[peak]), observed=n_down / max(n_up, 1.0),
                    expected=base, direction="down", affected=_blast(labels, pack), name=funnel.name,
                    upstream_metric=up, downstream_metric=down, upstream=n_up, downstream=n_down,
                    missing=max(base * n_up - n_down, 0.0))
                out.append(Anomaly(
                    kind=funnel.kind, start=counts.index[first].to_pydatetime(),
                    end=(counts.index[last] + step).to_pydatetime(), peak=counts.index[peak].to_pydatetime(),
                    severity=_count_severity(float(score[peak]), det.threshold_, funnel.kind, pack), evidence=evidence))
    return out
