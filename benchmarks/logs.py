"""Log templates (drain3): template count, mining speed, and which injected incidents were flagged.

Per seed: simulate ``--days`` days (~460k log lines for 7 days), then

* **speed** -- vectorised masking + mining each distinct masked message once (all lines), against
  drain3's own ``TemplateMiner.add_log_message`` line by line on the first ``--naive-lines`` lines;
  lines per second for both, and templates per service;
* **cycles** -- one ``detect_templates`` call per ``--cycle`` window over days 1..end (a cycle's
  baseline is the 24 h before it), with the miners' state saved to and reloaded from a state
  directory between cycles, as the scheduler would; masks are computed once up front (a cycle's own
  masking cost is measured separately: ``cycle_s_with_masking``);
* **incidents** -- an injected incident counts as flagged when a ``log_template`` anomaly overlaps
  its span (30 min slack either side) and shares a stage or merchant with it; anomalies that overlap
  no incident are false flags. Incidents whose failure leaves no log line of its own (an order that
  is never created, a price shown wrong) can only be found by other detectors; they are listed.

* **loghub** -- grouping accuracy (Zhu et al. 2019, "Tools and Benchmarks for Automated Log
  Parsing": a line is right when the set of lines sharing its template is exactly the set sharing
  its ground-truth event) on each ``loghub_2k`` system (``<System>/<System>_2k.log_structured.csv``,
  column ``Content`` against ``EventId``), for opsloop's masking + Drain and, in the same run, for
  drain3 with its defaults (``TemplateMinerConfig()``: no masks, line by line).

  Figures (``--loghub-only``; one default config for every system: the masks of
  ``opsloop.clustering.masking``, Drain sim_th 0.85, depth 5, max_children 100)::

      system     opsloop  drain3 defaults   events  groups (opsloop / drain3)
      Apache     1.0      1.0                 6       6 /   6
      BGL        0.9955   0.9685            120     116 / 105
      HDFS       1.0      0.9975             14      14 /  17
      Hadoop     0.992    0.9535            114     121 / 100
      HealthApp  1.0      0.5755             75      75 / 315
      Mac        0.7765   0.7145            341     380 / 303
      OpenStack  0.9575   0.3095             43      41 /  72
      Spark      0.9245   0.9225             36      34 /  33
      mean       0.9557   0.8052

  Before the id-path, list, timestamp and MAC/IPv6 masks and the sim_th/depth change (sim_th 0.4,
  depth 4) opsloop's mean was 0.8416 (Mac 0.682, OpenStack 0.2985: below the defaults). loghub_2k
  is the development set (the parameters were chosen on it); published Drain with per-dataset
  settings reports 0.866 on 16 systems (Zhu et al. 2019). What is left: Mac's many one-word
  events (``... Powered On`` / ``Off``) and a variable first token (``com.apple.<*>: scheduler...``)
  that the prefix tree routes apart; Spark's ``stored as bytes`` / ``values`` (one word of 14).

    python benchmarks/logs.py --seeds 7 1 2 3 --days 7
    python benchmarks/logs.py --loghub-only  # grouping accuracy only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from drain3 import TemplateMiner
from drain3.template_miner_config import TemplateMinerConfig

from opsloop.clustering.drain import LogTemplateMiners, detect_templates, grouping_accuracy, template_config
from opsloop.clustering.masking import mask_messages
from opsloop.domain import Window
from opsloop.packs import load_pack
from opsloop.packs.checkout.simulator import simulate

SLACK = pd.Timedelta(minutes=30)
LOGHUB = Path("/work/shared/datasets/loghub_2k")
LABELS = load_pack("checkout").labels


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def speed(logs: pd.DataFrame, naive_lines: int) -> dict:
    t0 = time.perf_counter()
    masked = mask_messages(logs["message"])
    t1 = time.perf_counter()
    mined = LogTemplateMiners().mine(logs, masked)
    t2 = time.perf_counter()
    naive = TemplateMiner(None, template_config())
    sample = logs["message"].iloc[:naive_lines].tolist()
    t3 = time.perf_counter()
    for line in sample:
        naive.add_log_message(line)
    t4 = time.perf_counter()
    per_service = pd.Series(mined.service_of).value_counts().sort_index()
    return {
        "lines": len(logs), "distinct_masked_messages": mined.distinct, "templates": len(mined.templates),
        "templates_per_service": {k: int(v) for k, v in per_service.items()},
        "vectorised": {"mask_s": round(t1 - t0, 2), "mine_s": round(t2 - t1, 3),
                       "lines_per_s": round(len(logs) / (t2 - t0))},
        "drain3_line_by_line": {"lines": len(sample), "seconds": round(t4 - t3, 2),
                                "lines_per_s": round(len(sample) / (t4 - t3)),
                                "templates": len(naive.drain.clusters)},
        "speedup": round((len(logs) / (t2 - t0)) / (len(sample) / (t4 - t3)), 1),
        "_masked": masked,
    }


def cycles(scen, masked: pd.Series, cycle: str, state_dir: Path) -> dict:
    logs = scen.logs
    start, end = pd.Timestamp(scen.start) + pd.Timedelta(days=1), pd.Timestamp(scen.end)
    step = pd.Timedelta(cycle)
    anomalies, seconds = [], []
    t = start
    while t < end:
        miners = LogTemplateMiners(state_dir)  # reloaded from disk every cycle
        t0 = time.perf_counter()
        report = detect_templates(logs, Window(start=t, end=min(t + step, end)), miners, LABELS, masked=masked)
        miners.save()
        seconds.append(time.perf_counter() - t0)
        anomalies.extend(report.anomalies)
        t += step
    # one cycle as the pipeline would run it, masking its own 25 h of lines
    mid = start + (end - start) / 2
    t0 = time.perf_counter()
    detect_templates(logs, Window(start=mid, end=mid + step), LogTemplateMiners(state_dir), LABELS)
    with_masking = time.perf_counter() - t0

    found, used = [], set()
    for g in scen.ground_truth:
        lo, hi = pd.Timestamp(g["start"]) - SLACK, pd.Timestamp(g["end"]) + SLACK
        hits = []
        for i, a in enumerate(anomalies):
            aff = a.evidence.affected
            shares = set(aff.get("stage", [])) & set(g["stages"]) or set(aff.get("merchant_id", [])) & set(g["merchants"])
            if pd.Timestamp(a.start) < hi and pd.Timestamp(a.end) > lo and shares:
                hits.append(a)
                used.add(i)
        first = min((a.start for a in hits), default=None)
        found.append({
            "incident": g["id"], "name": g["name"], "kind": g["kind"], "flagged": bool(hits),
            "templates": sorted({a.evidence.template for a in hits}),
            "new_template": any(a.evidence.new for a in hits),
            "anomaly_kinds": sorted({a.kind.value for a in hits}),
            "anomaly_start_minus_incident_start_min": round((pd.Timestamp(first) - pd.Timestamp(g["start"])).total_seconds() / 60, 1)
            if first is not None else None,
        })
    false = [a for i, a in enumerate(anomalies) if i not in used]
    return {
        "cycle": cycle, "cycles": len(seconds), "cycle_s_mean": round(sum(seconds) / max(len(seconds), 1), 3),
        "cycle_s_with_masking": round(with_masking, 3), "anomalies": len(anomalies),
        "incidents": found, "flagged": sum(f["flagged"] for f in found),
        "false_flags": [{"start": str(a.start), "template": a.evidence.template, "score": round(a.score, 1)}
                        for a in false],
    }


def loghub(root: Path) -> dict:
    """Grouping accuracy per loghub_2k system: opsloop (vectorised masks + Drain per service) and
    drain3 with its defaults, and the mean of each over the systems found."""
    rows = {}
    for csv in sorted(root.glob("*/*_2k.log_structured.csv")):
        system = csv.parent.name
        frame = pd.read_csv(csv, dtype=str, keep_default_na=False)
        content, truth = frame["Content"], frame["EventId"]
        logs = pd.DataFrame({"service": system, "message": content})
        ours = LogTemplateMiners().mine(logs).template_id
        default = TemplateMiner(None, TemplateMinerConfig())
        theirs = pd.Series([default.add_log_message(m)["cluster_id"] for m in content])
        rows[system] = {"opsloop": round(grouping_accuracy(truth, ours), 4),
                        "drain3_default": round(grouping_accuracy(truth, theirs), 4),
                        "events": int(truth.nunique()), "opsloop_groups": int(ours.nunique()),
                        "drain3_default_groups": int(theirs.nunique())}
    mean = {k: round(sum(r[k] for r in rows.values()) / max(len(rows), 1), 4) for k in ("opsloop", "drain3_default")}
    return {"systems": rows, "mean": mean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[7, 1, 2, 3])
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--cycle", default="1h")
    ap.add_argument("--naive-lines", type=int, default=50_000)
    ap.add_argument("--loghub", type=Path, default=LOGHUB, help="loghub_2k directory (skipped if absent)")
    ap.add_argument("--loghub-only", action="store_true", help="only the loghub grouping accuracy")
    args = ap.parse_args()
    hub = loghub(args.loghub) if args.loghub.is_dir() else None
    if hub is not None:
        log(f"loghub_2k grouping accuracy: opsloop {hub['mean']['opsloop']}, "
            f"drain3 defaults {hub['mean']['drain3_default']}")
    if args.loghub_only:
        print(json.dumps({"loghub": hub}, indent=1))
        return
    rows = []
    for seed in args.seeds:
        scen = simulate(seed=seed, days=args.days)
        sp = speed(scen.logs, args.naive_lines)
        masked = sp.pop("_masked")
        with tempfile.TemporaryDirectory() as tmp:
            cy = cycles(scen, masked, args.cycle, Path(tmp) / "drain")
        rows.append({"seed": seed, "days": args.days, "speed": sp, "detection": cy})
        log(f"seed {seed}: {cy['flagged']}/{len(cy['incidents'])} incidents flagged, "
            f"{len(cy['false_flags'])} false flags, {sp['vectorised']['lines_per_s']} lines/s")
    by_name: dict[str, list[bool]] = {}
    for r in rows:
        for f in r["detection"]["incidents"]:
            by_name.setdefault(f["name"], []).append(f["flagged"])
    summary = {
        "flagged_by_incident": {k: f"{sum(v)}/{len(v)}" for k, v in sorted(by_name.items())},
        "false_flags_total": sum(len(r["detection"]["false_flags"]) for r in rows),
        "vectorised_lines_per_s_mean": round(sum(r["speed"]["vectorised"]["lines_per_s"] for r in rows) / len(rows)),
        "drain3_line_by_line_lines_per_s_mean": round(
            sum(r["speed"]["drain3_line_by_line"]["lines_per_s"] for r in rows) / len(rows)),
        "no_own_log_line": ["missing_order_created (an order.created line that never happens)",
                            "conversion_drop (prices look wrong; requests succeed)"],
    }
    print(json.dumps({"seeds": rows, "summary": summary, "loghub": hub}, indent=1, default=str))


if __name__ == "__main__":
    main()
