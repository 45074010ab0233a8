"""NAB score of an opsloop detector: the Numenta Anomaly Benchmark's three profiles, normalised 0-100.

    python benchmarks/nab.py [--detector NAME] [--out DIR] [--nab DIR] [--files GLOB]

For every NAB data file (or those whose key, e.g. ``realKnownCause/nyc_taxi.csv``, matches ``GLOB``)
the detector is built with its default config (``opsloop.detectors.registry.create``), fitted on the
series and scored on the whole series. Detectors are causal, nothing from the label file is read
while scoring, and no parameter depends on the file. Scores outside [0, 1] are mapped into it by the
monotone ``s / (s + threshold_)`` (the detector's own threshold maps to 0.5; NAB's sweep result is
unchanged by monotone maps); NaN scores become 0, and so does the probationary period (NAB ignores it
anyway). Results are written in NAB's layout, ``OUT/opsloop/<category>/opsloop_<file>.csv`` for the
default ensemble (``OUT/<detector>/<category>/<detector>_<file>.csv`` for another ``--detector``),
and scored with :mod:`opsloop.evaluation.nab`. Prints one JSON line; ``points_per_second`` counts
detector time (fit + score) only.

Reads ``../shared/datasets/nab`` beside the repository unless ``--nab`` says otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from opsloop.detectors.registry import REGISTRY, create
from opsloop.evaluation.nab import load_windows, nab_scores, probation_length, write_results_dir

DEFAULT_NAB = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "nab"


def to_unit_interval(scores: np.ndarray, threshold: float) -> np.ndarray:
    """Map detector scores into [0, 1], monotone: kept if already there, else ``s / (s + t)`` for
    non-negative scores (``t`` the detector's threshold, mapped to 0.5) or a logistic around ``t``
    otherwise. NaN -> 0."""
    s = np.asarray(scores, dtype=float)
    finite = s[np.isfinite(s)]
    if finite.size and (finite.min() < 0 or finite.max() > 1):
        t = threshold if threshold > 0 else 1.0
        with np.errstate(over="ignore", invalid="ignore"):
            if finite.min() >= 0:
                s = np.where(np.isposinf(s), 1.0, s / (s + t))
            else:
                s = 1.0 / (1.0 + np.exp(-(s - threshold)))
    return np.nan_to_num(s, nan=0.0, posinf=1.0, neginf=0.0)


def run_file(detector_name: str, path: Path) -> tuple[pd.DataFrame, float]:
    """Score one NAB file; returns the results frame (in the file's row order) and detector seconds."""
    raw = pd.read_csv(path)
    ts = pd.to_datetime(raw["timestamp"], utc=True)
    # Detectors need a sorted index; a few NAB files have a row out of order. Score in time order
    # (stable) and put the scores back in the file's order, which is what NAB scores by.
    order = np.argsort(ts.to_numpy(), kind="stable")
    series = pd.Series(pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float)[order],
                       index=pd.DatetimeIndex(ts.to_numpy()[order]), name=path.stem)
    t0 = time.perf_counter()
    det = create(detector_name).fit(series)
    sorted_scores = det.score_samples(series).to_numpy(dtype=float)
    seconds = time.perf_counter() - t0
    scores = np.empty_like(sorted_scores)
    scores[order] = sorted_scores
    scores = to_unit_interval(scores, float(getattr(det, "threshold_", 1.0)))
    scores[: probation_length(len(scores))] = 0.0
    frame = pd.DataFrame({"timestamp": ts, "value": raw["value"], "anomaly_score": scores})
    return frame, seconds


def main(argv: list[str] | None = None) -> None:
    default = "ensemble" if "ensemble" in REGISTRY else "robust_z"
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--detector", default=default, help=f"registry name (default {default})")
    ap.add_argument("--out", type=Path, default=None, help="results directory (default: a temp dir)")
    ap.add_argument("--nab", type=Path, default=DEFAULT_NAB, help="NAB dataset directory")
    ap.add_argument("--files", default="*", help="glob over keys like realKnownCause/*.csv")
    args = ap.parse_args(argv)

    nab = args.nab.resolve()
    if not (nab / "labels" / "combined_windows.json").exists():
        sys.exit(f"NAB not found at {nab}; put ../shared beside the repository or pass --nab DIR")
    if args.detector not in REGISTRY:
        sys.exit(f"unknown detector {args.detector!r}; known: {sorted(REGISTRY)}")
    windows = load_windows(nab / "labels" / "combined_windows.json")
    keys = sorted(k for k in windows if fnmatch.fnmatch(k, args.files))
    if not keys:
        sys.exit(f"no NAB file matches {args.files!r}")
    out = args.out or Path(tempfile.gettempdir()) / "opsloop_nab_results"

    t_start = time.perf_counter()
    results: dict[str, pd.DataFrame] = {}
    detector_seconds = 0.0
    points = 0
    for key in keys:
        frame, seconds = run_file(args.detector, nab / "data" / key)
        results[key] = frame
        detector_seconds += seconds
        points += len(frame)
    name = "opsloop" if args.detector == default else args.detector  # NAB's name for our entry
    write_results_dir(out, name, results, windows)
    scores = nab_scores(results, windows)
    row = {
        "detector": args.detector,
        "standard": round(float(scores["standard"]), 2),
        "reward_low_FP_rate": round(float(scores["reward_low_FP_rate"]), 2),
        "reward_low_FN_rate": round(float(scores["reward_low_FN_rate"]), 2),
        "thresholds": {k: float(v) for k, v in scores["thresholds"].items()},
        "wall_seconds": round(time.perf_counter() - t_start, 2),
        "points": points,
        "points_per_second": round(points / detector_seconds) if detector_seconds > 0 else None,
        "files": len(keys),
        "results_dir": str(out / name),
    }
    print(json.dumps(row))


if __name__ == "__main__":
    main()
