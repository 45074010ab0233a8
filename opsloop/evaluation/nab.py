"""The Numenta Anomaly Benchmark (NAB) score: our own implementation of NAB v1.1's scoring rules.

Sources:

* A. Lavin and S. Ahmad (2015), "Evaluating Real-time Anomaly Detection Algorithms -- the Numenta
  Anomaly Benchmark", IEEE ICMLA 2015, arXiv:1510.03336 (the scoring function, the application
  profiles, the normalisation).
* The NAB documentation and repository (github.com/numenta/NAB): the README's scoring section,
  ``config/profiles.json`` (the three cost matrices), and the behaviour of ``nab/sweeper.py``,
  ``nab/optimizer.py``, ``nab/scorer.py`` and ``nab/runner.py`` (probation, window positions, the
  threshold sweep, normalisation) that this module reproduces. No NAB code is copied; the rules are
  restated below and implemented with numpy.

The rules, per data file of ``n`` points with labelled anomaly windows ``[start, end]`` (inclusive,
given as timestamps of the file):

* **Probation.** The first ``min(floor(0.15 n), 750)`` points are ignored entirely: detections there
  count for nothing, and a window whose points all lie there is not scored.
* **True positives.** Only the earliest detection inside a window counts. A detection at point ``i``
  of a window ``[L, R]`` (indices, width ``W = R - L + 1``) sits at relative position
  ``p = -(R - i + 1) / W`` (``-1`` at the window's first point, ``-1/W`` at its last) and earns
  ``A_TP * sigma(p) / sigma(-1)``, where ``sigma(p) = 2 / (1 + exp(5 p)) - 1`` (the scaled sigmoid;
  ``-1`` for ``p > 3``). A detection at a window's start therefore earns exactly ``A_TP``. Later
  detections in the same window add nothing.
* **False negatives.** A scored window without a detection costs ``A_FN``.
* **False positives.** Every detection outside a window costs ``A_FP * sigma(p)`` (negative) with
  ``p = (i - R_prev) / (W_prev - 1)`` measured from the end of the closest preceding window; a
  detection with no preceding window costs the full ``A_FP``. (NAB divides by zero for a preceding
  window of one point; here that case costs the full ``A_FP``.)
* **Profiles** weight the three terms: ``standard`` (A_TP 1, A_FP 0.11, A_FN 1),
  ``reward_low_FP_rate`` (A_FP 0.22), ``reward_low_FN_rate`` (A_FN 2).
* **Threshold.** A detector emits an anomaly score per point; a point is a detection when its score
  is ``>=`` the threshold. One threshold is used for the whole corpus and is chosen, per profile, to
  maximise the corpus's total raw score over every distinct score of a non-probationary point (plus
  "no detections at all"); ties go to the highest threshold, as in NAB's sweeper.
* **Normalisation.** ``100 * (raw - null) / (perfect - null)`` where ``null`` is the raw score of
  the detector that never fires (``-A_FN`` per scored window) and ``perfect`` is ``A_TP`` per
  labelled window (detecting every window at its first point).

Counts (``tp``, ``fp``, ``fn``, ``tn``) follow NAB's convention and count *points* (outside
probation): ``tp`` detected points inside windows, ``fn`` undetected points inside windows, and so on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from opsloop.detectors.probation import PROBATION_CAP, PROBATION_PERCENT, probation_length  # noqa: F401 (re-exported)

PROFILES: dict[str, dict[str, float]] = {
    "standard": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 1.0},
    "reward_low_FP_rate": {"tpWeight": 1.0, "fpWeight": 0.22, "fnWeight": 1.0},
    "reward_low_FN_rate": {"tpWeight": 1.0, "fpWeight": 0.11, "fnWeight": 2.0},
}
"""NAB's application profiles (``config/profiles.json``): weights of true positives, false positives
and false negatives. ``tnWeight`` is unused by NAB's scorer and omitted."""

Windows = Mapping[str, Sequence[tuple[pd.Timestamp, pd.Timestamp]]]

_MAX_TP = 2.0 / (1.0 + math.exp(-5.0)) - 1.0  # scaled_sigmoid(-1) = 0.98661...


# --------------------------------------------------------------------------------------------------
# small pieces
# --------------------------------------------------------------------------------------------------


def scaled_sigmoid(position: np.ndarray | float) -> np.ndarray | float:
    """NAB's scaled sigmoid ``2 / (1 + exp(5 p)) - 1``, and ``-1`` for ``p > 3``.

    ``-1`` (a window's left edge) gives 0.98661, ``0`` (its right edge) gives 0, ``+1`` gives -0.98661.
    """
    p = np.asarray(position, dtype=float)
    with np.errstate(over="ignore"):
        out = np.where(p > 3.0, -1.0, 2.0 / (1.0 + np.exp(5.0 * p)) - 1.0)
    return float(out) if out.ndim == 0 else out



def _profile(profile: str | Mapping[str, float]) -> tuple[float, float, float]:
    """``(A_TP, A_FP, A_FN)`` of a profile name or a NAB-style cost matrix."""
    cm = PROFILES[profile] if isinstance(profile, str) else profile
    return float(cm["tpWeight"]), float(cm["fpWeight"]), float(cm["fnWeight"])


def _ns(values: object) -> np.ndarray:
    """Timestamps as int64 nanoseconds since the epoch, UTC (naive timestamps are taken as UTC)."""
    idx = pd.DatetimeIndex(pd.to_datetime(values))
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    return np.asarray(idx.as_unit("ns").asi8, dtype=np.int64)


def _ts(value: object) -> pd.Timestamp:
    t = pd.Timestamp(value)
    return t.tz_localize("UTC") if t.tzinfo is None else t.tz_convert("UTC")


def load_windows(labels_path: str | Path) -> dict[str, list[tuple[pd.Timestamp, pd.Timestamp]]]:
    """Read NAB's ``labels/combined_windows.json``: file key (``realKnownCause/nyc_taxi.csv``) ->
    sorted list of ``(start, end)`` UTC timestamps, both ends inclusive."""
    raw = json.loads(Path(labels_path).read_text())
    return {key: sorted((_ts(a), _ts(b)) for a, b in spans) for key, spans in raw.items()}


# --------------------------------------------------------------------------------------------------
# per-file preparation: the score contribution each point would make as the first detection
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _File:
    """One file prepared for scoring.

    ``probation``: leading points ignored; ``scorable``: the points after them. ``window``: window number per point (-1 outside).
    ``tp_unit``: ``sigma(p)/sigma(-1)`` for points inside windows (times ``A_TP`` = their value as the
    first detection). ``fp_unit``: ``sigma(p)`` (<= 0) for points outside (times ``A_FP``).
    ``scored_windows``: numbers of windows with at least one scorable point. ``n_windows``: all.
    """

    n: int
    probation: int
    scorable: np.ndarray
    window: np.ndarray
    tp_unit: np.ndarray
    fp_unit: np.ndarray
    bounds: list[tuple[int, int]]
    scored_windows: list[int]

    @property
    def n_windows(self) -> int:
        return len(self.bounds)


def _window_bounds(t: np.ndarray, start: int, end: int) -> tuple[int, int] | None:
    """Positions ``(L, R)`` of a window in the file, as NAB's sweeper finds them: the first point
    stamped ``start`` and the first point stamped ``end`` from there (NAB's labels always use
    timestamps of the file). Without an exact match: the first point at or after ``start`` and the
    last point at or before ``end``. Positional, so duplicated or out-of-order timestamps (a few
    NAB files have them) behave as in NAB. ``None`` if the window holds no point."""
    eq = np.flatnonzero(t == start)
    if eq.size:
        lo = int(eq[0])
    else:
        ge = np.flatnonzero(t >= start)
        if not ge.size:
            return None
        lo = int(ge[0])
    eq = np.flatnonzero(t[lo:] == end)
    if eq.size:
        return lo, lo + int(eq[0])
    le = np.flatnonzero(t[lo:] <= end)
    return (lo, lo + int(le[-1])) if le.size else None


def _prepare(timestamps: object, windows: Sequence[tuple[object, object]]) -> _File:
    t = _ns(timestamps)
    n = len(t)
    bounds: list[tuple[int, int]] = []
    for a, b in sorted((_ts(a), _ts(b)) for a, b in windows):
        found = _window_bounds(t, int(_ns([a])[0]), int(_ns([b])[0]))
        if found is not None:  # a window holding no point of the file is ignored
            bounds.append(found)
    window = np.full(n, -1, dtype=np.int64)
    tp_unit = np.zeros(n)
    fp_unit = np.full(n, -1.0)  # no preceding window: the full false-positive cost
    for w, (lo, hi) in enumerate(bounds):
        if lo <= (bounds[w - 1][1] if w else -1):
            raise ValueError("anomaly windows overlap")
        width = hi - lo + 1
        idx = np.arange(lo, hi + 1)
        window[lo : hi + 1] = w
        tp_unit[lo : hi + 1] = scaled_sigmoid(-(hi - idx + 1) / width) / _MAX_TP
        nxt = bounds[w + 1][0] if w + 1 < len(bounds) else n
        after = np.arange(hi + 1, nxt)
        if width > 1:
            fp_unit[hi + 1 : nxt] = scaled_sigmoid((after - hi) / (width - 1))
        # width 1: NAB divides by zero; keep the full cost (-1)
    probation = probation_length(n)
    scorable = np.arange(n) >= probation
    scored = [w for w, (lo, hi) in enumerate(bounds) if hi >= probation]
    return _File(n, probation, scorable, window, tp_unit, fp_unit, bounds, scored)


def score_detections(
    timestamps: object,
    detections: object,
    windows: Sequence[tuple[object, object]],
    profile: str | Mapping[str, float] = "standard",
) -> tuple[float, dict[str, int]]:
    """Raw NAB score of one file's boolean ``detections`` (one per timestamp) under ``profile``.

    ``windows``: ``(start, end)`` pairs, inclusive. Returns ``(raw_score, {"tp", "fp", "fn", "tn"})``
    with point counts outside the probationary period (NAB's convention).
    """
    f = _prepare(timestamps, windows)
    det = np.asarray(detections, dtype=bool)
    if det.shape != (f.n,):
        raise ValueError(f"expected {f.n} detections, got shape {det.shape}")
    return _score_file(f, det, *_profile(profile))


def _score_file(f: _File, det: np.ndarray, a_tp: float, a_fp: float, a_fn: float) -> tuple[float, dict[str, int]]:
    det = det & f.scorable
    inside = f.window >= 0
    score = a_fp * float(f.fp_unit[det & ~inside].sum())
    for w in f.scored_windows:
        lo, hi = f.bounds[w]
        hits = np.flatnonzero(det[lo : hi + 1])
        score += a_tp * float(f.tp_unit[lo + hits[0]]) if hits.size else -a_fn
    s = f.scorable
    counts = {
        "tp": int(np.sum(det & inside)),
        "fp": int(np.sum(det & ~inside)),
        "fn": int(np.sum(~det & inside & s)),
        "tn": int(np.sum(~det & ~inside & s)),
    }
    return score, counts


# --------------------------------------------------------------------------------------------------
# the threshold sweep
# --------------------------------------------------------------------------------------------------


def _scores_of(frame: pd.DataFrame) -> np.ndarray:
    s = pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(dtype=float, copy=True)
    s[np.isnan(s)] = -np.inf  # NaN never fires
    return s


def _timestamps_of(frame: pd.DataFrame) -> object:
    return frame["timestamp"] if "timestamp" in frame.columns else frame.index


@dataclass(frozen=True)
class _Events:
    """Score changes of the corpus total as the threshold falls: ``value`` at which each happens
    (descending) and ``delta`` of the raw score, plus ``base`` (the score with no detections) and the
    distinct candidate thresholds (scores of scorable points, descending)."""

    value: np.ndarray
    delta: np.ndarray
    base: float
    candidates: np.ndarray


def _events(prepared: Sequence[tuple[_File, np.ndarray]], a_tp: float, a_fp: float, a_fn: float) -> _Events:
    values: list[np.ndarray] = []
    deltas: list[np.ndarray] = []
    cands: list[np.ndarray] = []
    base = 0.0
    for f, s in prepared:
        ok = f.scorable & np.isfinite(s)
        cands.append(s[ok])
        out = ok & (f.window < 0)
        values.append(s[out])
        deltas.append(a_fp * f.fp_unit[out])
        for w in f.scored_windows:
            base -= a_fn
            lo, hi = f.bounds[w]
            lo = max(lo, f.probation)  # probationary points never count
            seg = s[lo : hi + 1]
            # Left-to-right strict records: the points that can be the window's first detection.
            prev = np.concatenate(([-np.inf], np.maximum.accumulate(seg)[:-1]))
            rec = np.flatnonzero(seg > prev)
            if rec.size == 0:
                continue
            gain = a_tp * f.tp_unit[lo + rec]
            # Falling to the last record's score turns the miss into its gain; each earlier record
            # then replaces a later, smaller gain.
            d = np.empty(rec.size)
            d[-1] = gain[-1] + a_fn
            d[:-1] = gain[:-1] - gain[1:]
            values.append(seg[rec])
            deltas.append(d)
    value = np.concatenate(values) if values else np.empty(0)
    delta = np.concatenate(deltas) if deltas else np.empty(0)
    order = np.argsort(-value, kind="stable")
    cand = np.unique(np.concatenate(cands)) if cands else np.empty(0)
    return _Events(value[order], delta[order], base, cand[::-1])


def _curve(ev: _Events) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score at every candidate threshold, the first one meaning "no detections"."""
    csum = np.concatenate(([0.0], np.cumsum(ev.delta)))
    # number of events with value >= T, for each candidate T (value is descending)
    k = np.searchsorted(-ev.value, -ev.candidates, side="right")
    top = float(ev.candidates[0]) if ev.candidates.size else 1.0
    none = max(1.1, float(np.nextafter(top, np.inf))) if np.isfinite(top) else 1.1
    thresholds = np.concatenate(([none], ev.candidates))
    scores = ev.base + np.concatenate(([0.0], csum[k]))
    return thresholds, scores


def _prepare_results(results: Mapping[str, pd.DataFrame], windows: Windows) -> list[tuple[_File, np.ndarray]]:
    out = []
    for key in sorted(results):
        frame = results[key]
        if key not in windows:
            raise KeyError(f"no windows for {key!r} in the labels")
        out.append((_prepare(_timestamps_of(frame), windows[key]), _scores_of(frame)))
    return out


def threshold_curve(
    results: Mapping[str, pd.DataFrame], windows: Windows, profile: str | Mapping[str, float] = "standard"
) -> tuple[np.ndarray, np.ndarray]:
    """Raw corpus score for every threshold NAB's sweeper evaluates, highest threshold first.

    ``results``: file key -> frame with ``timestamp`` (or a ``DatetimeIndex``) and ``anomaly_score``.
    The first threshold is above every score (no detections, NAB's 1.1); the others are the distinct
    scores of non-probationary points. O(N log N) in the corpus size.
    """
    return _curve(_events(_prepare_results(results, windows), *_profile(profile)))


def _normalise(raw: float, null: float, perfect: float) -> float:
    return 100.0 * (raw - null) / (perfect - null) if perfect != null else float("nan")


def _best(prepared: Sequence[tuple[_File, np.ndarray]], profile: str | Mapping[str, float]) -> tuple[float, float, float]:
    a_tp, a_fp, a_fn = _profile(profile)
    thresholds, scores = _curve(_events(prepared, a_tp, a_fp, a_fn))
    i = int(np.argmax(scores))  # first maximum = highest threshold among ties (NAB's stable sort)
    null = -a_fn * sum(len(f.scored_windows) for f, _ in prepared)
    perfect = a_tp * sum(f.n_windows for f, _ in prepared)
    raw = float(scores[i])
    return float(thresholds[i]), raw, _normalise(raw, null, perfect)


def sweep(
    results: Mapping[str, pd.DataFrame], windows: Windows, profile: str | Mapping[str, float] = "standard"
) -> tuple[float, float, float]:
    """Best corpus-wide threshold for ``profile``: ``(threshold, raw_score, normalized_score)``.

    Detections are ``anomaly_score >= threshold``; the raw score is the sum over files; the normalised
    score is ``100 (raw - null) / (perfect - null)`` (null: never firing; perfect: ``A_TP`` per window).
    """
    return _best(_prepare_results(results, windows), profile)


def nab_scores(results: Mapping[str, pd.DataFrame], windows: Windows) -> dict[str, object]:
    """The three normalised NAB scores, plus the chosen thresholds and raw scores.

    Returns ``{"standard": x, "reward_low_FP_rate": y, "reward_low_FN_rate": z,
    "thresholds": {profile: t}, "raw": {profile: r}}``.
    """
    prepared = _prepare_results(results, windows)
    out: dict[str, object] = {}
    thresholds: dict[str, float] = {}
    raws: dict[str, float] = {}
    for name in PROFILES:
        t, raw, norm = _best(prepared, name)
        out[name], thresholds[name], raws[name] = norm, t, raw
    out["thresholds"] = thresholds
    out["raw"] = raws
    return out


def scores_at(results: Mapping[str, pd.DataFrame], windows: Windows,
              thresholds: Mapping[str, float]) -> dict[str, float]:
    """Normalised corpus score of each profile at a *given* threshold (not swept): ``thresholds``
    maps profile name -> threshold (detections are ``anomaly_score >= threshold``). This scores a
    corpus at thresholds chosen on another one (transfer). Returns ``{profile: normalised score}``;
    ``KeyError`` for an unknown profile or a file without windows."""
    prepared = _prepare_results(results, windows)
    out: dict[str, float] = {}
    for name, threshold in thresholds.items():
        a_tp, a_fp, a_fn = _profile(name)
        raw = sum(_score_file(f, s >= threshold, a_tp, a_fp, a_fn)[0] for f, s in prepared)
        null = -a_fn * sum(len(f.scored_windows) for f, _ in prepared)
        perfect = a_tp * sum(f.n_windows for f, _ in prepared)
        out[name] = _normalise(float(raw), null, perfect)
    return out


def score_files(
    results: Mapping[str, pd.DataFrame],
    windows: Windows,
    threshold: float,
    profile: str | Mapping[str, float] = "standard",
) -> pd.DataFrame:
    """Per-file raw scores and point counts at ``threshold`` (like NAB's ``<detector>_<profile>_scores.csv``):
    columns ``File, Threshold, Score, TP, TN, FP, FN, Total_Count``, one row per file."""
    weights = _profile(profile)
    rows = []
    for key in sorted(results):
        frame = results[key]
        f = _prepare(_timestamps_of(frame), windows[key])
        score, c = _score_file(f, _scores_of(frame) >= threshold, *weights)
        rows.append({"File": key, "Threshold": threshold, "Score": score, "TP": c["tp"], "TN": c["tn"],
                     "FP": c["fp"], "FN": c["fn"], "Total_Count": f.n})
    return pd.DataFrame(rows, columns=["File", "Threshold", "Score", "TP", "TN", "FP", "FN", "Total_Count"])


# --------------------------------------------------------------------------------------------------
# NAB's results layout
# --------------------------------------------------------------------------------------------------


def labels_for(timestamps: object, windows: Sequence[tuple[object, object]]) -> np.ndarray:
    """0/1 per timestamp: 1 inside a window (ends inclusive)."""
    t = _ns(timestamps)
    lab = np.zeros(len(t), dtype=np.int64)
    for a, b in windows:
        lab[(t >= _ns([a])[0]) & (t <= _ns([b])[0])] = 1
    return lab


def write_results_dir(
    out_dir: str | Path, detector_name: str, results: Mapping[str, pd.DataFrame], windows: Windows
) -> list[Path]:
    """Write ``OUT/<detector>/<category>/<detector>_<file>.csv`` with ``timestamp,value,anomaly_score,label``
    (NAB's results layout; timestamps ``YYYY-MM-DD HH:MM:SS`` in UTC). Returns the paths written."""
    paths = []
    for key, frame in sorted(results.items()):
        category, name = key.split("/", 1)
        ts = pd.DatetimeIndex(pd.to_datetime(_timestamps_of(frame)))
        ts = ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")
        value = frame["value"].to_numpy() if "value" in frame.columns else np.full(len(frame), np.nan)
        out = pd.DataFrame({
            "timestamp": ts.strftime("%Y-%m-%d %H:%M:%S"),
            "value": value,
            "anomaly_score": pd.to_numeric(frame["anomaly_score"], errors="coerce").to_numpy(dtype=float),
            "label": labels_for(ts, windows.get(key, [])),
        })
        path = Path(out_dir) / detector_name / category / f"{detector_name}_{name}"
        path.parent.mkdir(parents=True, exist_ok=True)
        out.to_csv(path, index=False, float_format="%.17g")
        paths.append(path)
    return paths


def read_results_dir(out_dir: str | Path, detector_name: str) -> dict[str, pd.DataFrame]:
    """Read NAB-layout results back: file key (``realKnownCause/nyc_taxi.csv``) -> frame with
    ``timestamp`` (UTC), ``anomaly_score`` and, where present, ``value`` and ``label``. Files named
    ``*_scores.csv`` (NAB's score tables) are skipped."""
    root = Path(out_dir) / detector_name
    prefix = f"{detector_name}_"
    out: dict[str, pd.DataFrame] = {}
    for path in sorted(root.glob("*/*.csv")):
        if path.name.endswith("_scores.csv") or not path.name.startswith(prefix):
            continue
        frame = pd.read_csv(path)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        out[f"{path.parent.name}/{path.name[len(prefix):]}"] = frame
    return out
