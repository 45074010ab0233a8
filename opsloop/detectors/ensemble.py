"""Ensemble: member detectors calibrated on their own past scores, combined into one score in [0, 1].

Each member's score at ``t`` becomes a tail probability from that member's *own* earlier scores, so
members with different units (sd, CUSUM decision intervals, fractions of a range) and series of
different noise become comparable, and one threshold serves every series:

* ``rank`` calibration — the causal empirical tail ``p_t = (1 + #{u < t: s_u >= s_t}) / (1 + #{u < t})``
  (scores compared on a logarithmic grid, 12 cells per decade; scores below the member's ``floor``
  are not in the tail and get ``p = 1``; see :func:`causal_tail_probability`): the conformal p-value
  of the score against the member's history (V. Vovk, A. Gammerman and G. Shafer, *Algorithmic
  Learning in a Random World*, 2005; used for streaming anomaly scores by E. Burnaev and
  V. Ishimtsev, 2016, "Conformalized density- and distance-based anomaly detection in time-series
  data", arXiv:1608.04585, an entry of the Numenta Anomaly Benchmark). An empirical
  tail cannot go below ``1/(t+1)``; a score beyond the largest earlier score ``M`` is extrapolated
  with a Pareto tail of index ``κ``: ``p = (M/s)^κ / (t+1)`` (peaks-over-threshold in the spirit of
  J. Pickands, 1975, "Statistical inference using extreme order statistics", *Ann. Statist.* 3(1)),
  where ``κ`` is the member's ``tail_index`` lowered for a series whose earlier records came in
  large jumps (a heavy tail): the maximum-likelihood index of the ratios of its earlier records to
  the levels they beat, shrunk towards ``tail_index`` (:func:`record_tail_index`).
* ``pareto`` calibration — for scores that are zero until something new happens (range novelty, a
  run-length record of the flat-line member): a
  Pareto tail ``p = min(1, scale / s)``, i.e. ``-log10 p = -log10(scale) + log10 s``, with the scale
  no smaller than ``10^-record_boost · 2/(t+1)`` early on (a new extreme among ``t`` exchangeable
  points has probability ``2/(t+1)``, so early extremes count for less).

The combined evidence is the largest ``-log10 p`` over the members (the minimum p-value,
L. H. C. Tippett, 1931), reported as ``1 - p`` in [0, 1]. NAB-style alarm hygiene, threshold-free:
a point reports its evidence only if it exceeds every combined evidence of the previous ``suppress``
points by ``suppress_margin`` (a clear new local record, so a lasting change alarms at its start and
not again at every point; 0 otherwise). A reported alarm is then discounted by how many alarms at
least as strong the series has already reported: ``x' = x - γ·log10(1 + N)`` (``γ`` =
``repeat_discount``; ``N`` counts earlier reported points whose evidence is at least ``x``, compared on
a grid of 0.05). This is the conformal rank of the alarm among the series' own earlier alarms,
``(1 + N)`` out of the alarms so far, combined geometrically (weight ``γ``) with its point p-value:
``p' = p·(1 + N)^γ``. A series that keeps raising alarms of the same strength (a noisy, bursty KPI)
gets fewer of them, while the first alarm of a quiet series keeps all its evidence (alarm-rate
normalisation per series, the same idea as the second-level likelihood of S. Ahmad, A. Lavin,
S. Purdy and Z. Agha, 2017, "Unsupervised real-time anomaly detection for streaming data",
*Neurocomputing* 262:134-147, which scores a raw anomaly score against that series' own history of
anomaly scores). Everything is causal; the score at ``t`` uses points ``<= t`` only.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from opsloop.detectors.base import BaseDetector, DetectorConfig
from opsloop.detectors.causal import lag, rolling_max
from opsloop.detectors.forecast import shared_forecasts
from opsloop.detectors.seasonality import step_seconds

#: Grid on which member scores are compared for the rank calibration: 0, then 12 steps per decade
#: from 1e-2 to 1e4 (scores beyond go to the last cell; the Pareto extrapolation ranks them).
RANK_EDGES = np.concatenate([[0.0], np.logspace(-2, 4, 6 * 12 + 1)])

#: Grid on which reported evidence (``-log10 p``) is compared for the repeat discount: steps of 0.05
#: from 0 to 20 (larger evidence goes to the last cell).
EVIDENCE_EDGES = np.arange(0.0, 20.0 + 1e-9, 0.05)

#: Weight, in pseudo-records of index ``Member.tail_index``, of the prior of the record-based tail
#: index estimate (:func:`record_tail_index`).
TAIL_PRIOR_RECORDS = 5.0

#: Longest alarm suppression in seconds (23 hours: less than a day, so a daily spike on hourly data
#: reports every day; at 5-minute spacing the 60-point window, 5 hours, is the shorter).
SUPPRESS_SECONDS = 23 * 3600.0


class Member(BaseModel):
    """One member: a registered detector ``name`` with ``params`` and how its scores are calibrated:
    ``rank`` (scores below ``floor`` are not in the tail: ``p = 1``) with a Pareto extrapolation of
    index at most ``tail_index`` (estimated from the member's earlier records, :func:`record_tail_index`)
    beyond the largest earlier score (``baseline_seconds``: the member's
    ``baseline`` param, in points, is capped at that much data, see :meth:`params_at`),
    or ``pareto`` with scale ``pareto_scale``, capped early in the series: ``-log10`` of the scale is
    at most ``log10((t+1)/2) + record_boost`` (a new extreme among ``t`` exchangeable points has
    probability ``2/(t+1)``; None: no cap)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    calibration: Literal["rank", "pareto"] = "rank"
    tail_index: float = 4.0
    floor: float = 0.0
    relative_floor: float = 0.0
    pareto_scale: float = 10**-5.5
    record_boost: float | None = 3.5
    baseline_seconds: float | None = None

    def params_at(self, step: float) -> dict[str, Any]:
        """``params`` for data ``step`` seconds apart: a ``baseline`` (points) no longer than
        ``baseline_seconds`` of data (``min(baseline, ceil(baseline_seconds / step))``; unchanged when
        either is unset or ``step`` is not a positive number)."""
        if self.baseline_seconds is None or "baseline" not in self.params:
            return self.params
        return {**self.params, "baseline": points_within(self.params["baseline"], self.baseline_seconds, step)}


DEFAULT_MEMBERS: tuple[Member, ...] = (
    Member(name="forecast", params={"alpha": 2 / 301, "baseline": 300, "min_periods": 0}, floor=2.0),
    Member(name="seasonal_drop", params={"direction": "both", "lags": 3, "min_lags": 1, "baseline": 300,
                                         "smooth": 3, "min_drop": 0.0, "min_periods": 0}, floor=2.0),
    Member(name="cusum", params={"baseline": 300, "k": 2.0, "min_periods": 0}, floor=1.0, relative_floor=0.25),
    Member(name="cusum", params={"baseline": 5000, "k": 1.0, "level": "mean", "min_periods": 0}, floor=2.0,
           relative_floor=0.25, baseline_seconds=5000 * 300.0),
    Member(name="novelty", params={"min_periods": 0}, calibration="pareto"),
    Member(name="scale_change", params={"window": 60, "baseline": 300, "min_periods": 0},
           floor=float(np.log(2.0))),
    Member(name="flatline", params={"ratio": 1.2, "min_run": 60, "min_periods": 0}, calibration="pareto"),
)
"""The default members: a slow exponential-smoothing forecast (spikes), the median of the same time
on the previous three days (seasonal breaks; a trailing level without a season), a CUSUM on the
forecast's standardised residuals (large shifts, short memory), a self-starting CUSUM against the
long-run robust mean and scale (moderate, lasting departures that a short-memory baseline adopts:
slow drifts, sustained dips; EW span 5,000 points but at most 17.4 days, i.e. 5,000 points at 5-minute
sampling and 417 on hourly data; D. M.
Hawkins, 1987, *The Statistician* 36(4):299-316), range novelty, and a variance change (the log ratio
of the recent scale of successive differences, EW span 60 points, to their long-run scale; ranked
only from a factor of 2 up or down, ``floor = ln 2``: noise that halves or doubles, which no
level-based member sees), and a flat line (the series held one value 1.2 times longer than its longest
earlier run of at least 60 points; one score per run, calibrated like range novelty, a run-length
record: a sensor or counter stuck at a value inside its range, :mod:`opsloop.detectors.flatline`)."""


class EnsembleConfig(DetectorConfig):
    """``threshold`` on ``1 - p`` (0.9995: p below 5e-4); ``members``; alarm suppression over the
    previous ``suppress`` points but no longer than ``suppress_seconds`` of the series' median
    spacing (:func:`points_within`; 0: none), and the ``suppress_margin`` (in ``-log10 p``) by
    which a point must beat them to report; ``repeat_discount`` ``γ`` (in ``-log10 p`` per decade of
    earlier alarms at least as strong; 0: none); ``min_periods`` points before any score."""

    threshold: float = 0.9995
    members: tuple[Member, ...] = DEFAULT_MEMBERS
    suppress: int = Field(default=60, ge=0)
    suppress_seconds: float | None = Field(default=SUPPRESS_SECONDS, gt=0)
    suppress_margin: float = 0.25
    repeat_discount: float = Field(default=0.5, ge=0.0)
    min_periods: int = 30


def points_within(points: int, seconds: float | None, step: float) -> int:
    """A window of ``points``, but no more than ``seconds`` of data at ``step`` seconds between
    points: ``min(points, max(1, ceil(seconds / step)))`` (``points`` when ``seconds`` is None or
    ``step`` is not a positive number). Memory and suppression in time, so coarse data (hourly) is
    not silenced or remembered for days or months, while 5-minute data keeps its point counts."""
    if seconds is None or not np.isfinite(step) or step <= 0:
        return int(points)
    return int(min(points, max(1, int(np.ceil(seconds / step - 1e-9)))))


#: ``_LOWER[o, l]``: lane ``l`` precedes lane ``o`` within a block of 16.
_LOWER = np.tril(np.ones((16, 16), dtype=bool), -1)


def _tail_counts(b: np.ndarray, rows: np.ndarray, nrows: int, nbins: int) -> np.ndarray:
    """For tail points with cells ``b`` (in 0..nbins-1, nbins <= 127) listed by row then time (row
    ``rows``), the number of earlier tail points of the same row with a cell ``>= b``.

    Block decomposition: each row's points start a new block of 16 slots (padded with -1), so
    per-block histograms cumulated over cells and over blocks count whole earlier blocks of the
    row (the cumulated count at the block, minus that at the row's first block), and an all-pairs
    comparison inside each block (16 x 16 cells) counts within the point's own block.
    """
    block = _LOWER.shape[0]
    per_row = np.bincount(rows, minlength=nrows)
    padded = -(-per_row // block) * block
    start = np.cumsum(padded) - padded  # first slot of each row
    first = np.cumsum(per_row) - per_row  # first tail point of each row
    slot = start[rows] + (np.arange(b.size) - first[rows])
    nblk = int(padded.sum()) // block
    bp = np.full(nblk * block, -1, dtype=np.int8 if nbins <= 127 else np.int16)
    bp[slot] = b
    bb = bp.reshape(nblk, block)
    blk = slot // block
    hist = np.bincount(blk * nbins + b, minlength=nblk * nbins).reshape(nblk, nbins).astype(np.int32)
    ge_cell = np.cumsum(hist[:, ::-1], axis=1)[:, ::-1]  # per block: points with cell >= j
    before = np.cumsum(ge_cell, axis=0) - ge_cell  # over earlier blocks
    # within[blk, o]: earlier lanes l < o of the block whose cell is >= the cell of lane o
    within = ((bb[:, None, :] >= bb[:, :, None]) & _LOWER).view(np.uint8).sum(axis=2, dtype=np.uint8)
    return before[blk, b] - before[start[rows] // block, b] + within.ravel()[slot]


def _tail_evidence(s2: np.ndarray, ok: np.ndarray, prev_max: np.ndarray | None, edges: np.ndarray,
                   floor: float, relative_floor: float) -> np.ndarray:
    """``-log10`` of the causal empirical tail probability of rows ``s2`` (shape (R, n); NaN where
    not ``ok``); ``prev_max``: the largest earlier score of each position (needed when
    ``relative_floor > 0``)."""
    n = s2.shape[1]
    x = np.where(ok, 0.0, np.nan)
    tail = ok & (s2 >= floor)
    if relative_floor > 0:  # also at least a share of the largest earlier score (non-decreasing)
        tail &= s2 >= relative_floor * prev_max
    pos = np.flatnonzero(tail)  # row-major: by row, then time
    if pos.size:
        rows = pos // n
        b = (np.searchsorted(edges, s2.ravel()[pos], side="right") - 1).astype(np.int32)
        count = _tail_counts(b, rows, s2.shape[0], len(edges))
        if (ok == ok[0]).all():  # one NaN pattern in every row: count the earlier scores on one row
            seen = (np.cumsum(ok[0]) - ok[0])[pos - rows * n]
        else:
            seen = (np.cumsum(ok, axis=-1) - ok).ravel()[pos]
        x.ravel()[pos] = -np.log10((1.0 + count) / (1.0 + seen))
    return x


def _prev_max(s2: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """The largest earlier non-NaN score of each position (-inf before any)."""
    return lag(np.fmax.accumulate(np.where(ok, s2, -np.inf), axis=-1), 1, -np.inf)


def causal_tail_probability(s: np.ndarray, edges: np.ndarray = RANK_EDGES, floor: float = 0.0,
                            relative_floor: float = 0.0) -> np.ndarray:
    """Causal empirical tail probability of each score among the earlier scores of its row.

    ``s``: shape ``(..., n)``, non-negative (NaN ignored: NaN out, and not counted). Scores are
    compared on the grid ``edges`` (ties within a grid cell count as ``>=``, the conservative side).
    Only scores at or above ``floor`` and at least ``relative_floor`` times the largest earlier
    score are ranked (the tail; both bounds never decrease, so any earlier score at least as large
    was ranked too and the counts are exact); the others get ``p = 1``.
    Cost: a few passes over the array plus ``O(16)`` work per tail point (block decomposition).
    """
    s = np.asarray(s, dtype=float)
    s2 = s.reshape(-1, s.shape[-1])
    ok = ~np.isnan(s2)
    prev_max = _prev_max(s2, ok) if relative_floor > 0 else None
    return (10.0 ** -_tail_evidence(s2, ok, prev_max, edges, floor, relative_floor)).reshape(s.shape)


def record_tail_index(s2: np.ndarray, top: np.ndarray, record: np.ndarray, kappa: float,
                      prior_records: float = TAIL_PRIOR_RECORDS) -> np.ndarray:
    """Pareto tail index of each position's extrapolation, from the row's *earlier* records.

    ``s2`` scores (shape ``(R, n)``), ``top`` the level each had to beat (the largest earlier score,
    at least the member's floor), ``record`` where it did. For iid scores with a Pareto tail of index
    ``α``, the ratio of a record to the level it beat is Pareto(``α``) whatever came before (B. C.
    Arnold, N. Balakrishnan and H. N. Nagaraja, 1998, *Records*, Wiley), so the maximum-likelihood
    index from ``m`` records is ``m / Σ ln(ratio)`` (B. M. Hill, 1975, "A simple general approach to
    inference about the tail of a distribution", *Ann. Statist.* 3(5):1163-1174, applied to record
    ratios). Shrunk towards ``kappa`` with ``prior_records`` pseudo-records of index ``kappa``,
    ``(m + m0) / (Σ ln(ratio) + m0/kappa)``, and never above ``kappa``: a series whose records came in
    large jumps (a heavy tail) gets a smaller index, so the same jump is less evidence; one whose
    records were small steps keeps ``kappa``. Returns shape ``(R, n)``; causal (cumulative sums over
    the records strictly before each position)."""
    with np.errstate(all="ignore"):
        log_ratio = np.where(record, np.log(s2 / top), 0.0)
    m = np.cumsum(record, axis=-1) - record
    total = np.cumsum(log_ratio, axis=-1) - log_ratio
    return np.minimum((m + prior_records) / (total + prior_records / kappa), kappa)


def calibrate(score: np.ndarray, member: Member) -> np.ndarray:
    """``-log10`` of the member's tail probability of each score (NaN stays NaN)."""
    if member.calibration == "pareto":
        base = np.full(score.shape, -np.log10(member.pareto_scale))
        if member.record_boost is not None:
            t = np.cumsum(~np.isnan(score), axis=-1)
            base = np.minimum(base, np.log10((t + 1) / 2) + member.record_boost)
        with np.errstate(all="ignore"):
            x = np.where(score > 0, base + np.log10(score), 0.0)
        return np.where(np.isnan(score), np.nan, np.maximum(x, 0.0))
    score = np.asarray(score, dtype=float)
    s2 = score.reshape(-1, score.shape[-1])
    ok = ~np.isnan(s2)
    prev_max = _prev_max(s2, ok) if (member.relative_floor > 0 or member.tail_index > 0) else None
    x = _tail_evidence(s2, ok, prev_max, RANK_EDGES, member.floor, member.relative_floor)
    if member.tail_index > 0:  # beyond every earlier score: extrapolate the tail (Pareto, index κ)
        top = np.maximum(prev_max, member.floor)  # never from below the tail's floor
        beyond = (top > 0) & (s2 > top)
        if beyond.any():
            kappa = record_tail_index(s2, top, beyond, member.tail_index)
            x[beyond] += kappa[beyond] * np.log10(s2[beyond] / top[beyond])
    return x.reshape(score.shape)


def discount_repeats(x: np.ndarray, gamma: float, edges: np.ndarray = EVIDENCE_EDGES) -> np.ndarray:
    """Reported evidence ``x`` (shape ``(..., n)``; ``> 0`` reported, 0 not, NaN no score) with each
    reported point lowered by ``gamma·log10(1 + N)``, ``N`` the number of earlier reported points of
    its row whose evidence is at least its own (compared on the grid ``edges``; ties within a cell
    count as ``>=``), floored at 0. Causal; ``O(16)`` work per reported point (block decomposition,
    :func:`_tail_counts`)."""
    x = np.asarray(x, dtype=float)
    if gamma <= 0 or x.size == 0:
        return x
    x2 = x.reshape(-1, x.shape[-1])
    pos = np.flatnonzero(x2 > 0)  # NaN never is
    if not pos.size:
        return x
    out = x2.copy()
    vals = x2.ravel()[pos]
    b = np.minimum(np.searchsorted(edges, vals, side="right") - 1, len(edges) - 1).astype(np.int32)
    count = _tail_counts(b, pos // x2.shape[1], x2.shape[0], len(edges))
    out.ravel()[pos] = np.maximum(vals - gamma * np.log10(1.0 + count), 0.0)
    return out.reshape(x.shape)


def combine(evidence: list[np.ndarray], directions: list[np.ndarray], suppress: int, ready: np.ndarray,
            margin: float = 0.0, repeat_discount: float = 0.0):
    """Combine member evidence (a list of arrays of one shape) into ``(score in [0,1], evidence,
    direction, index of the strongest member)``; NaN where no member has a score or before
    ``ready``. ``repeat_discount``: see :func:`discount_repeats` (applied after suppression)."""
    x = np.full(evidence[0].shape, -np.inf)
    direction = np.zeros(evidence[0].shape)
    best = np.zeros(evidence[0].shape, dtype=np.int8)
    for i, (e, d) in enumerate(zip(evidence, directions)):
        stronger = e > x  # NaN never is
        x = np.where(stronger, e, x)
        direction = np.where(stronger, d, direction)
        best[stronger] = i
    x = np.where(np.isneginf(x) | ~ready, np.nan, x)
    if suppress > 0:
        prev = lag(rolling_max(x, suppress))
        x = np.where(np.isnan(prev) | (x > prev + margin) | np.isnan(x), x, 0.0)
    if repeat_discount > 0:
        x = discount_repeats(x, repeat_discount)
    score = 1.0 - 10.0 ** (-x)  # NaN stays NaN
    return score, x, direction, best


class EnsembleDetector(BaseDetector):
    """Calibrated ensemble of member detectors on a float ``pd.Series`` (the default NAB detector).

    ``score`` is ``1 - p`` of the strongest member (after suppression); ``evidence`` its
    ``-log10 p``; ``member`` the name of that member; ``expected`` and ``lower``/``upper`` come from
    the first member.
    """

    name = "ensemble"
    config_cls = EnsembleConfig
    batchable = True

    def _members(self, step: float = float("nan")) -> list[BaseDetector]:
        from opsloop.detectors.registry import create  # the registry imports this module

        return [create(m.name, **m.params_at(step)) for m in self.config.members]

    def _fit(self, x: pd.Series) -> None:
        if not self.config.members:
            raise ValueError("ensemble: at least one member is needed")
        self.members_ = [d.fit(x) for d in self._members(step_seconds(x.index))]

    def can_batch(self) -> bool:
        return all(d.can_batch() for d in self._members())

    def _score(self, x: pd.Series) -> pd.DataFrame:
        cfg: EnsembleConfig = self.config
        v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
        with shared_forecasts():
            frames = [d.score_frame(x) for d in self.members_]
        evidence = [calibrate(f["score"].to_numpy(dtype=float), m) for f, m in zip(frames, cfg.members)]
        directions = [f["direction"].to_numpy(dtype=float) for f in frames]
        ready = (np.cumsum(~np.isnan(v)) > cfg.min_periods) & ~np.isnan(v)
        suppress = points_within(cfg.suppress, cfg.suppress_seconds, step_seconds(x.index))
        score, x_ev, direction, best = combine(evidence, directions, suppress, ready, cfg.suppress_margin,
                                               cfg.repeat_discount)
        names = np.array([m.name for m in cfg.members], dtype=object)[best]
        out = pd.DataFrame({"score": score, "evidence": x_ev, "direction": np.where(np.isnan(score), 0.0, direction),
                            "member": np.where(np.isnan(score), None, names)}, index=x.index)
        first = frames[0]
        for col in ("expected", "lower", "upper"):
            if col in first:
                out[col] = first[col].to_numpy()
        return out

    def _score_array(self, values: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
        cfg: EnsembleConfig = self.config
        evidence, directions = [], []
        with shared_forecasts():
            for d, m in zip(self._members(step), cfg.members):
                s, dr = d._score_array(values, step)
                evidence.append(calibrate(s, m))
                directions.append(dr)
        ready = (np.cumsum(~np.isnan(values), axis=-1) > cfg.min_periods) & ~np.isnan(values)
        suppress = points_within(cfg.suppress, cfg.suppress_seconds, step)
        score, _, direction, _ = combine(evidence, directions, suppress, ready, cfg.suppress_margin,
                                         cfg.repeat_discount)
        return score, np.where(np.isnan(score), 0.0, direction)
