"""False pages and found incidents on weeks whose background is drawn, not only the incidents.

For each seed and mode (``quiet``: no incident; ``benign``: only benign events -- a marketing surge
with steady conversion, a public-holiday dip, a declared maintenance window with a burst of 503s on
the low-traffic lookup endpoint, a new merchant going live from zero; ``incidents``: the six
injected incidents), draw a platform (:func:`opsloop.packs.checkout.background.draw_background`),
simulate ``--days`` days, declare the ground truth's maintenance windows in a fresh SQLite store
(as an operator would with ``opsloop maintenance add``), run one cycle and count incidents. Prints
one JSON line per week and a summary: incidents per quiet week and per benign week, and
found/injected and false incidents on incident weeks; ``--default-seeds`` adds the unvaried
simulator's weeks (as ``benchmarks/scenario.py``). A found incident overlaps its injected span with
the right kind; an incident on a benign week overlapping a benign event is still a false page.

    python benchmarks/weeks.py --seeds 1 2 3 --default-seeds 1
    python benchmarks/weeks.py --seeds 4 5 6

Figures (2026-12-02 10:19-10:26 UTC, shared 2-core machine at load 1.2-1.7), count tests over scan
windows of 15 min to 4 h and paging on a slice that failed wholesale (``min_share``): quiet weeks 0
incidents each (seeds 1-6); benign weeks 0 each except seed 4 with 1 false page (a 25-minute rise
of card declines on every stage, 402s at 25 % of payments against 10 %, a 1e-7 fluke of the drawn
background, read as payment.succeeded missing after checkout.session_created); incident weeks 36
of 36 found, 0 false, category accuracy 0.778 (seed 1 0.5, seed 5 0.667, seeds 2-4 0.833, seed 6
1.0); median cycle 7.0 s. The previous commit in the same session (10:32-10:36, load 1.1-1.6):
quiet and benign 0 each, 29 of 36 found, 0 false, category accuracy 0.583, median cycle 5.3 s (the
log count tests cost 0.47 -> 0.55 s on quiet seed 3's 562k log events; the rest is load). Seed 1
now finds its 5 failed webhooks (a 10.3 -log10 p two-hour window; 3 merchants whose every webhook
failed) and its 7 lost orders (7 of 13 headless payments) on their own, without the tickets.

Before (2026-12-02 05:12-05:38 UTC, shared 2-core machine at load 6-8): quiet weeks 0 incidents
each (seeds 1-6), benign weeks 0 each; incident weeks (``--modes incidents``) 29 of 36 found, 0
false, category accuracy 0.583 (seed 1 3/6 at 17 sessions/min peak, seed 5 4/6 at 24, seeds 3
and 4 5/6, seeds 2 and 6 6/6). Before a candidate paging on a ticket surge took back its thin
count anomalies the same code found 27 of 36, category accuracy 0.5 (seed 3 4/6, seed 5 3/6: the lost
orders paged as a ticket surge of the wrong kind). Misses: ``webhook_403`` on seeds 1, 3, 4, 5
(5, 16, 25, 28 failed webhooks in 90-115 min, under the error-rate detector's 5 errors per
bucket), ``cart_empty`` on seeds 1 and 5 (19 and 48 affected carts), seed 1
``missing_order_created`` (7 lost orders in 163 min). Before the paging rules a quiet week of
seed 2 (55 sessions/min) had 85 candidate incidents, nearly all p95 latency blips of a handful
of requests.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from opsloop.config import Settings
from opsloop.domain import MaintenanceWindow
from opsloop.packs.checkout.background import MODES, draw_background
from opsloop.packs.checkout.simulator import simulate, write_scenario
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.evaluate import match_ground_truth
from opsloop.pipeline.observe import observe
from opsloop.store import repository as repo
from opsloop.store.session import open_store


def run_week(seed: int, mode: str | None, days: int, workdir: Path) -> dict:
    """One week: ``mode`` None is the unvaried simulator."""
    bg = draw_background(seed, mode, days) if mode else None
    name = f"{mode or 'default'}-{seed}"
    paths = write_scenario(simulate(seed=seed, days=days, background=bg), workdir / name)
    truth = json.loads(paths["ground_truth"].read_text())
    store = open_store(f"sqlite:///{workdir / f'{name}.db'}")
    with store.begin() as s:
        for gt in truth:
            if gt.get("maintenance"):
                repo.add_maintenance(s, MaintenanceWindow(start=gt["start"], end=gt["end"], labels=gt["labels"],
                                                          reason="benchmark: declared"), "benchmark")
    t0 = time.perf_counter()
    signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
    result = run_cycle(signals, store, Settings(home=workdir, pack="checkout"))
    wall = time.perf_counter() - t0
    m = match_ground_truth(result.incidents, truth)
    injected = [g for g in truth if not g.get("benign")]
    return {
        "seed": seed, "mode": mode or "default", "peak_sessions_per_min": round(bg.base.peak_sessions_per_min, 1)
        if bg else 200.0, "merchants": bg.n_merchants if bg else 24, "incidents": len(result.incidents),
        "injected": len(injected), "found": len(m["found"]), "missed": [x["name"] for x in m["missed"]],
        "false_incidents": len(m["false_incidents"]),
        "false_titles": [f["title"] for f in m["false_incidents"]][:5],
        "category_accuracy": round(m["category_accuracy"], 3), "context": result.report.counts.get("context", 0),
        "maintenance_suppressed": result.report.counts.get("maintenance_suppressed", 0),
        "log_events": result.report.counts["log_events"], "cycle_wall_s": round(wall, 2),
    }


def _summary(rows: list[dict]) -> dict:
    def of(mode: str) -> list[dict]:
        return [r for r in rows if r["mode"] == mode]

    out: dict = {"summary": True}
    for mode in ("quiet", "benign"):
        if of(mode):
            per_week = [r["incidents"] for r in of(mode)]
            out[f"{mode}_incidents_per_week"] = per_week
            out[f"{mode}_max_per_week"] = max(per_week)
    for mode in ("incidents", "default"):
        weeks = of(mode)
        if weeks:
            out[mode] = {"found": sum(r["found"] for r in weeks), "injected": sum(r["injected"] for r in weeks),
                         "false_incidents": sum(r["false_incidents"] for r in weeks),
                         "missed": sorted(n for r in weeks for n in r["missed"]),
                         "category_accuracy": round(sum(r["category_accuracy"] * r["injected"] for r in weeks)
                                                    / max(sum(r["injected"] for r in weeks), 1), 3)}
    out["median_cycle_wall_s"] = sorted(r["cycle_wall_s"] for r in rows)[len(rows) // 2] if rows else None
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    ap.add_argument("--default-seeds", type=int, nargs="*", default=[])
    ap.add_argument("--days", type=int, default=7)
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        weeks = [(s, m) for s in args.seeds for m in args.modes] + [(s, None) for s in args.default_seeds]
        for seed, mode in weeks:
            row = run_week(seed, mode, args.days, Path(tmp))
            rows.append(row)
            print(json.dumps(row), flush=True)
    print(json.dumps(_summary(rows)))


if __name__ == "__main__":
    main()
