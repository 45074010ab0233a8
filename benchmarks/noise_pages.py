"""Can one paging threshold keep pure noise silent and still page on real failures? Evidence figures.

    python benchmarks/noise_pages.py [--seeds 22] [--nab DIR]

Scores pure noise with the default ensemble — Gaussian, Student-t(3), a Gaussian random walk and a
daily cycle plus Gaussian noise, 3,000 points each, ``--seeds`` seeds, at 5-minute and hourly
spacing — and reports the largest evidence (``-log10 p``) any point reaches, per kind and the member
that raised it; then the largest evidence inside the labelled windows of each NAB
``realKnownCause`` file (where the failures are). A paging threshold on ``1 - p`` that pages on
every real failure and never on noise exists only if every failure's evidence exceeds the noise
maximum. Prints one JSON line.

Figures (season chosen causally, commit a7baa31; seeds 0-21): noise maximum 5.69 (t3, novelty: a
new range record of heavy-tailed noise; Gaussian 4.83, walk 4.71, seasonal 4.75, every maximum from
the novelty member; seeds 100-115 reached 5.97); largest evidence inside the labelled windows:
machine_temperature 4.78, ambient_temperature 4.47, nyc_taxi 4.98, ec2_request_latency 5.95,
cpu_utilization_asg 4.63, rogue_agent_key_hold 3.74, rogue_agent_key_updown 3.44 — 1 of 7 above the
noise maximum, so no paging threshold does both yet: the range-novelty member's calibration
(records of heavy-tailed noise) has to change first.

Memory and suppression in time (commit 3781cb1), seeds 0-21: the same noise maxima (5.69 t3, 4.83
Gaussian, 4.71 walk, 4.75 seasonal; failures as above). After NAB's probation (where the pipeline
pages) 5.63 / 4.76 / 4.22 / 4.17 (t3 / Gaussian / walk / seasonal), all novelty; the ensemble
without the novelty member still reaches 4.70 on t3 noise (the forecast member), above the
non-novelty evidence of three of machine_temperature's four windows (3.20, 4.22, 4.07; 4.78) —
so neither removing nor corroborating range novelty alone gives a noise-proof paging threshold.
The rank members' Pareto extrapolation (index 4) is a lighter tail than t(3)'s: with index 3
(``--seeds 8``) t3 noise without novelty reached 4.15, but the transfer fell (62.38/50.95/67.73 ->
62.06/50.36/67.52), so it was not adopted.

With the variance-change member and the record-based tail index (branch det, 2026-12-02): the same
noise maxima, all novelty; t3 noise without novelty 4.70 -> 4.61 (the estimated index lowers the
evidence of heavy-tailed records); inside the windows rogue_agent_key_hold 3.74 -> 3.58, the others
unchanged (1 of 7 above the noise maximum).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from opsloop.detectors.ensemble import DEFAULT_MEMBERS
from opsloop.detectors.probation import probation_length
from opsloop.detectors.registry import create
from opsloop.evaluation.nab import load_windows

DEFAULT_NAB = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets" / "nab"


def pure_noise(kind: str, n: int, seed: int) -> np.ndarray:
    """One noise series of ``n`` points (level 100, unit scale)."""
    r = np.random.default_rng(seed)
    t = np.arange(n)
    return {"gauss": 100 + r.normal(0, 1, n), "t3": 100 + r.standard_t(3, n),
            "walk": 100 + np.cumsum(r.normal(0, 1, n)),
            "seasonal": 100 + 10 * np.sin(2 * np.pi * t / 288) + r.normal(0, 1, n)}[kind]


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=22)
    ap.add_argument("--nab", type=Path, default=DEFAULT_NAB)
    args = ap.parse_args(argv)
    noise: dict[str, dict] = {}
    without = {"members": tuple(m for m in DEFAULT_MEMBERS if m.name != "novelty")}
    for kind in ("gauss", "t3", "walk", "seasonal"):
        top, paged, rest = (-np.inf, None), -np.inf, -np.inf
        for freq in ("5min", "1h"):
            for seed in range(args.seeds):
                v = pure_noise(kind, 3000, seed)
                s = pd.Series(v, index=pd.date_range("2026-01-01", periods=len(v), freq=freq, tz="UTC"))
                f = create("ensemble").fit(s).score_frame(s)
                e = f["evidence"].to_numpy()
                i = int(np.nanargmax(e))
                if e[i] > top[0]:
                    top = (float(e[i]), f["member"].iloc[i])
                start = probation_length(len(s))  # the pipeline pages after NAB's probation only
                paged = max(paged, float(np.nanmax(e[start:])))
                e2 = create("ensemble", **without).fit(s).score_frame(s)["evidence"].to_numpy()
                rest = max(rest, float(np.nanmax(e2[start:])))
        noise[kind] = {"max_evidence": round(top[0], 2), "member": top[1], "after_probation": round(paged, 2),
                       "without_novelty_after_probation": round(rest, 2)}
    failures: dict[str, float] = {}
    nab = args.nab.resolve()
    if (nab / "labels" / "combined_windows.json").exists():
        windows = load_windows(nab / "labels" / "combined_windows.json")
        for key in sorted(k for k in windows if k.startswith("realKnownCause/")):
            raw = pd.read_csv(nab / "data" / key)
            ts = pd.DatetimeIndex(pd.to_datetime(raw["timestamp"], utc=True))
            s = pd.Series(raw["value"].to_numpy(dtype=float), index=ts)
            s = s[~s.index.duplicated()].sort_index()
            e = create("ensemble").fit(s).score_frame(s)["evidence"]
            inside = np.zeros(len(s), dtype=bool)
            for a, b in windows[key]:
                inside |= (s.index >= a) & (s.index <= b)
            failures[key.split("/", 1)[1]] = round(float(np.nanmax(np.where(inside, e.to_numpy(), -np.inf))), 2)
    else:
        print(f"NAB not found at {nab}: noise figures only", file=sys.stderr)
    noise_max = max(v["max_evidence"] for v in noise.values())
    print(json.dumps({"noise": noise, "noise_max": noise_max, "failures_max_in_window": failures,
                      "failures_above_noise_max": sum(v > noise_max for v in failures.values()),
                      "failures": len(failures)}))


if __name__ == "__main__":
    main()
