"""The whole cycle on NAB's realKnownCause series (real KPIs with labelled failure windows).

For each file: observe the NAB CSV, run a cycle with the prometheus-operator runbooks into a fresh
SQLite store, and report incidents, incidents overlapping a labelled window (precision) and labelled
windows overlapped by an incident (window recall). Reads ``../shared/datasets``; exits with a message
if it is absent. This is the issue-2 sanity check; the NAB score harness is ``benchmarks/nab.py``.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from opsloop.config import Settings
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import observe
from opsloop.store.session import open_store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def main() -> None:
    nab, runbooks = SHARED / "nab", SHARED / "runbooks" / "prometheus-operator" / "content" / "runbooks"
    if not nab.exists():
        sys.exit(f"NAB not found at {nab}; put ../shared beside the repository")
    windows = json.loads((nab / "labels" / "combined_windows.json").read_text())
    totals = {"incidents": 0, "in_window": 0, "windows": 0, "windows_found": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for f in sorted((nab / "data" / "realKnownCause").glob("*.csv")):
            t0 = time.perf_counter()
            store = open_store(f"sqlite:///{Path(tmp) / (f.stem + '.db')}")
            result = run_cycle(observe(kpis=[f]), store, Settings(home=Path(tmp)), runbooks=runbooks)
            spans = [(pd.Timestamp(a, tz="UTC"), pd.Timestamp(b, tz="UTC")) for a, b in windows[f"realKnownCause/{f.name}"]]
            inc = result.incidents
            row = {"file": f.name, "points": result.report.counts["kpi_points"], "incidents": len(inc),
                   "in_window": sum(any(i.first_seen <= b and i.last_seen >= a for a, b in spans) for i in inc),
                   "windows": len(spans),
                   "windows_found": sum(any(i.first_seen <= b and i.last_seen >= a for i in inc) for a, b in spans),
                   "wall_s": round(time.perf_counter() - t0, 2)}
            for k in totals:
                totals[k] += row[k]
            print(json.dumps(row), flush=True)
    print(json.dumps({"summary": True, **totals,
                      "precision": round(totals["in_window"] / max(totals["incidents"], 1), 3),
                      "window_recall": round(totals["windows_found"] / max(totals["windows"], 1), 3)}))


if __name__ == "__main__":
    main()
