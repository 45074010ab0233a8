"""One default, one threshold, two corpora: NAB and SMAP/MSL side by side, plus a baseline and causality.

    python benchmarks/transfer.py [--detector NAME] [--nab DIR] [--smap DIR] [--no-causality] [--per-file N]

For each corpus every file is scored as in ``benchmarks/nab.py`` (default config, fitted and scored
on the file, scores mapped into [0, 1], probation zeroed). The thresholds are swept **on NAB only**
(per profile, as NAB's optimiser does); the table shows

* ``nab``: NAB's three normalised scores at those thresholds;
* ``transfer``: SMAP/MSL scored at NAB's thresholds (the figure that tells whether one default and
  one threshold hold on a corpus nothing was tuned on);
* ``smap_own``: SMAP/MSL at thresholds swept on SMAP/MSL itself (an upper bound for the transfer);

for the detector and, in the same run, for the tester's baseline :func:`robust_z_new_high`. Then the
prefix causality of the detector on every file of both corpora
(:func:`opsloop.evaluation.causality.prefix_causality`, prefixes of 40/60/80%). Prints one JSON line;
with ``--per-file N`` it also lists, per corpus, the ``N`` files with the lowest raw standard score
at NAB's standard threshold (:func:`opsloop.evaluation.nab.score_files`: raw score, TP/FP points),
the place to look for missed windows and false alarms.

Figures (``python benchmarks/transfer.py``, ~170 s wall with the causality check, load ~1.5 on
2 shared cores), normalised standard / reward-low-FP / reward-low-FN:

    start of session (season chosen in ``fit`` from the whole series):
      ensemble  NAB 77.74/71.78/81.71  transfer 59.24/49.11/63.68  SMAP own 59.41/49.81/65.89
                prefix-causal on 128 of 139 files (worst score change 0.99999998)
    season chosen causally, Pareto tail from the member's floor:
      ensemble  NAB 77.67/70.57/81.95  transfer 62.43/51.06/67.77  SMAP own 62.49/54.76/69.57
                prefix-causal on 139 of 139 files
    suppression at most 23 h (60 points at 5-minute spacing, 23 on hourly data), alone:
      ensemble  NAB 77.62/70.48/81.92  transfer 62.38/50.95/67.73  SMAP own 62.49/54.76/69.57
    ... and the long-run CUSUM's memory at most 17.4 days (5,000 points at 5 minutes, 417 hourly):
      ensemble  NAB 77.76/70.81/82.01  transfer 62.38/50.95/67.73  SMAP own 62.49/54.76/69.57
                prefix-causal on 139 of 139 files (worst score change 0.0; 152 s wall, load ~7)
    baseline    NAB 25.35/3.42/40.99   transfer 30.85/0.94/38.95   SMAP own 44.46/33.27/53.82
    a variance-change member (``scale_change``: log ratio of the recent scale, EW span 60 points, to
    the long-run scale, ranked from a factor of 2), first on the forecast residuals:
      ensemble  NAB 77.72/70.84/81.98  transfer 64.08/51.60/69.52  SMAP own 64.19/55.70/71.41
    ... on successive differences instead (level-, drift- and cycle-free), alone:
      ensemble  NAB 77.35/70.11/81.74  transfer 66.57/56.01/72.16  SMAP own 66.94/57.29/72.90
    ... and the rank members' Pareto index estimated from their own earlier records (record-ratio
    MLE, 5 pseudo-records of index 4, never above 4; alone, on the first variant: NAB
    78.03/71.50/82.19, transfer 63.40/51.81/68.74) — together (2026-12-02, load ~0.6):
      ensemble  NAB 77.59/70.77/81.90  transfer 66.67/56.12/72.23  SMAP own 67.05/57.61/72.90
                prefix-causal on 139 of 139 files (worst score change 0.0; 15 s wall)
      NAB within noise of the start (-0.17/-0.04/-0.11); SMAP/MSL +4.3/+5.2/+4.5, three more windows
      caught where the noise amplitude changes (A-4, E-13, P-1), one lost (F-7).
    a flat-line member (``flatline``: one score where the series has held one value 1.2 times longer
    than its longest earlier run of at least 60 points; pareto calibration like range novelty), 2026-12-02:
      ensemble  NAB 78.87/71.90/83.32  transfer 67.22/56.13/72.92  SMAP own 67.59/57.62/73.17
                prefix-causal on 139 of 139 files (worst score change 0.0; 26 s wall)
      NAB +1.28/+1.13/+1.42: two windows caught (``ec2_disk_write_bytes_c0d644`` stuck at 0,
      ``rogue_agent_key_hold``), 5 false-alarm points on NAB, 10 on SMAP/MSL (3 windows there).
      Ratio 1.15-1.25 and a minimum run of 24-60 points all give NAB 78.6-78.9 (the plateau); from
      1.3 the stuck window is caught too late (1.3: 78.02, 1.4: 77.40).
    tried on top of it and not adopted (NAB standard / low-FP / low-FN, transfer standard / low-FP):
      corroboration (max + 0.1 x second member) 77.53/71.24/81.77 (before the flat line), 65.90/55.80;
      two members needed in the first 1,000-2,500 rows 73.4-77.4 standard; an early-file evidence
      penalty 74.9-76.9; member weights x0.85 / x1.15, every member: all lower on NAB (the optimum is
      sharp, +-0.5 is noise); the repeat discount counted over the last 3-28 days 78.09-78.56;
      counted per member 78.01; seasonal_drop with 3 earlier days required 79.25/72.13/83.58 but
      transfer 65.96/53.98 (< 55); a sign-run record of the forecast residuals 77.1-78.6.
    tried 2026-12-03 (four new member classes, each added to the defaults and, for some, in place of
    one; none adopted):
      sustained evidence (the least evidence of the last k points, rank-calibrated): on every member
      75.4-77.3; on the combined evidence 78.4-78.8; on the forecast alone, k=4 from 2.25,
      79.51/72.35/84.04 but transfer 67.06/55.92 and all of it one window (Twitter_volume_AMZN),
      lost at k=3 and k=5 (a fit to one file); k=5 79.2-80.0 standard but transfer low-FP 52.3-54.6.
      Isolation does not tell false alarms from detections: 52 of the 125 low-FP false alarms and
      48 of the 104 first detections are single points (SMAP/MSL 119/216 and 28/84);
      level rarity (kNN distance of the hourly mean to 32-64 earlier levels over a week, Burnaev &
      Ishimtsev 2016): 77.1-78.8 added, 71.2-78.5 in place of any member; never above the best
      member in a missed window;
      multi-resolution (forecast / CUSUM / scale change on a trailing or block mean of 30 min-6 h):
      78.0-78.9, no window gained (the missed windows score lower when smoothed);
      a causal left matrix profile (z-normalised 8-24 h subsequences of 10-40 min blocks, nearest
      earlier neighbour within 3.5-8 days; Yeh et al. 2016, Zhu et al. 2017): 76.96-78.87, transfer
      up to 69.02/57.93/74.77, at +45-50% causal CPU; the windows it catches seasonal_drop catches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nab import run_file, to_unit_interval

from opsloop.detectors.causal import lag, rolling_max
from opsloop.detectors.probation import probation_length
from opsloop.detectors.registry import create
from opsloop.evaluation.causality import prefix_causality
from opsloop.evaluation.nab import PROFILES, load_windows, nab_scores, score_files, scores_at

ROOT = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"


def robust_z_new_high(values: np.ndarray, window: int = 30, high: int = 288) -> np.ndarray:
    """The tester's baseline: ``|x_t - median| / (1.4826 MAD)`` over the previous ``window`` points
    (trailing, the current point excluded), reported only where it is a new high over the previous
    ``high`` points of that z (0 otherwise; NaN during the first ``window`` points). Shape ``(n,)``
    in, ``(n,)`` out, in sd units."""
    s = pd.Series(values, dtype=float)
    med = s.rolling(window, min_periods=window).median().shift(1)
    mad = (s - med).abs().rolling(window, min_periods=window).median().shift(1) * 1.4826
    scale = np.maximum(mad.to_numpy(), 1e-9 * np.maximum(np.abs(med.to_numpy()), 1.0))
    with np.errstate(all="ignore"):
        z = np.abs(values - med.to_numpy()) / scale
    prev = lag(rolling_max(z, high))
    return np.where(np.isnan(prev) | (z > prev), z, 0.0)


def read_series(path: Path) -> tuple[pd.DataFrame, pd.Series, np.ndarray]:
    """The raw file, its series in time order (UTC index) and the order that sorts the file."""
    raw = pd.read_csv(path)
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    order = np.argsort(ts.to_numpy(), kind="stable")
    series = pd.Series(pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float)[order],
                       index=pd.DatetimeIndex(ts.to_numpy()[order]), name=path.stem)
    return raw, series, order


def baseline_frame(path: Path) -> pd.DataFrame:
    """Results frame of :func:`robust_z_new_high` on one file (NAB layout, file row order)."""
    raw, series, order = read_series(path)
    sorted_scores = robust_z_new_high(series.to_numpy())
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    scores = to_unit_interval(scores, 4.0)
    scores[: probation_length(len(scores))] = 0.0
    return pd.DataFrame({"timestamp": pd.to_datetime(raw["timestamp"], utc=True), "value": raw["value"],
                         "anomaly_score": scores})


def corpus(root: Path) -> tuple[dict, list[str]]:
    windows = load_windows(root / "labels" / "combined_windows.json")
    return windows, sorted(windows)


def rounded(d: dict) -> dict:
    return {k: round(float(v), 2) for k, v in d.items()}


def evaluate(results: dict[str, dict], windows: dict[str, dict]) -> dict:
    nab = nab_scores(results["nab"], windows["nab"])
    thresholds = {p: float(nab["thresholds"][p]) for p in PROFILES}
    own = nab_scores(results["smap"], windows["smap"])
    return {"nab": rounded({p: nab[p] for p in PROFILES}),
            "transfer": rounded(scores_at(results["smap"], windows["smap"], thresholds)),
            "smap_own": rounded({p: own[p] for p in PROFILES}),
            "thresholds": {p: round(t, 6) for p, t in thresholds.items()}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", default="ensemble")
    ap.add_argument("--nab", type=Path, default=ROOT / "nab")
    ap.add_argument("--smap", type=Path, default=ROOT / "smap_msl")
    ap.add_argument("--no-causality", action="store_true", help="skip the prefix-causality check")
    ap.add_argument("--per-file", type=int, default=0, metavar="N",
                    help="also list the N files of each corpus with the lowest raw standard score")
    args = ap.parse_args(argv)
    roots = {"nab": args.nab.resolve(), "smap": args.smap.resolve()}
    for name, root in roots.items():
        if not (root / "labels" / "combined_windows.json").exists():
            sys.exit(f"{name} corpus not found at {root}; put ../shared beside the repository or pass --{name} DIR")
    t0 = time.perf_counter()
    windows, det_results, base_results, causal = {}, {}, {}, {}
    for name, root in roots.items():
        windows[name], keys = corpus(root)
        det_results[name], base_results[name] = {}, {}
        for key in keys:
            det_results[name][key] = run_file(args.detector, root / "data" / key)[0]
            base_results[name][key] = baseline_frame(root / "data" / key)
            if not args.no_causality:
                check = prefix_causality(lambda: create(args.detector), read_series(root / "data" / key)[1])
                causal[f"{name}:{key}"] = check
    row = {"detector": args.detector, **evaluate(det_results, windows),
           "baseline": evaluate(base_results, windows)}
    if args.per_file:
        at = row["thresholds"]["standard"]
        row["worst_files"] = {
            name: score_files(det_results[name], windows[name], at).nsmallest(args.per_file, "Score")
            .round(3).to_dict(orient="records") for name in roots}
    if causal:
        bad = sorted(k for k, c in causal.items() if not c.ok)
        row["prefix_causal"] = {"files": len(causal), "failed": len(bad), "failed_files": bad[:10],
                                "worst_diff": float(max(c.worst for c in causal.values()))}
    row["wall_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(row))


if __name__ == "__main__":
    main()
