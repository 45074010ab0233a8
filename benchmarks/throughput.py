"""Throughput of the default detector (the calibrated ensemble), printed as one JSON object.

    python benchmarks/throughput.py [--series 10000] [--points 1440] [--nab DIR]

(a) causal mode: every NAB data file (``../shared/datasets/nab/data/*/*.csv``, 365,558 points) is
    fitted and scored alone with ``create("ensemble")`` — the path a streaming pipeline takes;
(b) batch mode: ``score_long`` on a long frame of ``--series`` series × ``--points`` points (one
    day at one minute by default) with metric + label key columns, scored as a 2-D batch.

Both are timed around the detector calls only (reading files and building the frame are not
counted). Peak memory: ``tracemalloc``'s peak of traced allocations during a second, traced run of
(b) (numpy reports its buffers to it; tracing is off while timing) and the process's maximum
resident set size (which includes the input frame). The bare ``robust_z`` detector is timed
in the same process on the same inputs, for a ratio that does not depend on the machine. On a
shared machine wall-clock rates drop with the load; ``points_per_cpu_second`` (process CPU time,
single-threaded code) and the 1-minute load average are printed beside them.
Goals: (a) >= 100,000 points/s; (b) >= 1,000,000 points/s with peak memory < 4 GiB.

Figures, 2026-12-02, main vs branch det (variance-change member, record-based tail index) run back to
back on 2 shared cores (load 0.8-2.3): (a) 642,000-663,000 -> 554,000-566,000 points/s (ensemble /
robust_z 7.6-8.2 -> 6.8); (b) 1.39-1.51 M -> 1.28-1.33 M points/s (ratio 16.6-17.4 -> 15.3-16.0);
peak traced memory 1.18 GiB both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pandas as pd

from opsloop.detectors.batch import score_long
from opsloop.detectors.registry import create

DEFAULT_NAB = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "nab"
CPU: dict[tuple[str, str], float] = {}  # process CPU seconds per timed run (wall time suffers on a busy machine)


def load_nab(nab: Path) -> list[pd.Series]:
    series = []
    for path in sorted((nab / "data").glob("*/*.csv")):
        raw = pd.read_csv(path)
        ts = pd.to_datetime(raw["timestamp"], utc=True)
        s = pd.Series(pd.to_numeric(raw["value"], errors="coerce").to_numpy(dtype=float), index=pd.DatetimeIndex(ts))
        series.append(s[~s.index.duplicated()].sort_index())
    return series


def causal_rate(name: str, series: list[pd.Series]) -> tuple[float, int, float]:
    """(points per second, points, seconds) of fit + score_samples per series."""
    points = sum(len(s) for s in series)
    t0, c0 = time.perf_counter(), time.process_time()
    for s in series:
        create(name).fit(s).score_samples(s)
    dt = time.perf_counter() - t0
    CPU[("causal", name)] = time.process_time() - c0
    return points / dt, points, dt


def long_frame(m: int, n: int, seed: int = 0) -> pd.DataFrame:
    """``m`` series of ``n`` one-minute points: a daily-ish cycle, noise, a few spikes and shifts."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    level = rng.uniform(10, 1000, (m, 1))
    v = level * (1 + 0.2 * np.sin(2 * np.pi * t / n + rng.uniform(0, 6.3, (m, 1)))) + rng.normal(0, 1, (m, n)) * level * 0.02
    rows = rng.integers(0, m, m // 10)
    v[rows, rng.integers(n // 2, n, rows.size)] *= 1.5
    ts = pd.date_range("2026-01-01", periods=n, freq="1min", tz="UTC")
    metric = pd.Categorical.from_codes(np.repeat(np.arange(m) % 8, n), [f"metric_{i}" for i in range(8)])
    host = pd.Categorical.from_codes(np.repeat(np.arange(m), n), [f"host-{i:05d}" for i in range(m)])
    return pd.DataFrame({"metric": metric, "host": host, "ts": np.tile(ts, m), "value": v.ravel()})


def batch_rate(name: str, df: pd.DataFrame, trace: bool = True) -> tuple[float, float, int | None]:
    """(points per second, seconds, tracemalloc peak bytes or None) of ``score_long`` over ``df``.

    Timed without tracing (tracemalloc slows every allocation); the peak is measured in a second,
    traced run when ``trace``.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    out = score_long(df, name, key_cols=("metric", "host"))
    dt = time.perf_counter() - t0
    CPU[("batch", name)] = time.process_time() - c0
    assert len(out) == len(df)
    del out
    peak = None
    if trace:
        tracemalloc.start()
        tracemalloc.reset_peak()
        out = score_long(df, name, key_cols=("metric", "host"))
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        del out
    return len(df) / dt, dt, peak


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--points", type=int, default=1_440)
    ap.add_argument("--nab", type=Path, default=DEFAULT_NAB)
    args = ap.parse_args(argv)
    nab = args.nab.resolve()
    if not (nab / "data").exists():
        sys.exit(f"NAB not found at {nab}; put ../shared beside the repository or pass --nab DIR")

    series = load_nab(nab)
    ens_rate, points, ens_s = causal_rate("ensemble", series)
    rz_rate, _, _ = causal_rate("robust_z", series)

    df = long_frame(args.series, args.points)
    b_rate, b_s, b_peak = batch_rate("ensemble", df)
    rzb_rate, _, _ = batch_rate("robust_z", df.iloc[: len(df) // 10], trace=False)  # 1/10: one by one
    gib = 2**30
    result = {
        "causal_nab": {"points": points, "files": len(series), "seconds": round(ens_s, 2),
                       "points_per_second": round(ens_rate), "goal": 100_000, "ok": ens_rate >= 100_000,
                       "points_per_cpu_second": round(points / CPU[("causal", "ensemble")]),
                       "robust_z_points_per_second": round(rz_rate),
                       "ensemble_vs_robust_z": round(ens_rate / rz_rate, 3)},
        "batch_long": {"series": args.series, "points_per_series": args.points, "points": len(df),
                       "seconds": round(b_s, 2), "points_per_second": round(b_rate),
                       "points_per_cpu_second": round(len(df) / CPU[("batch", "ensemble")]),
                       "peak_traced_gib": round(b_peak / gib, 3), "goal": 1_000_000,
                       "ok": b_rate >= 1_000_000 and b_peak < 4 * gib,
                       "robust_z_points_per_second": round(rzb_rate),
                       "robust_z_sample_points": len(df) // 10,
                       "ensemble_vs_robust_z": round(b_rate / rzb_rate, 3)},
        "max_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / gib, 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
