"""Score incidents against a scenario's ground truth (used by the demo, tests and benchmarks)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opsloop.domain import Incident, utc


def _ts(v: Any) -> datetime:
    return utc(v if isinstance(v, datetime) else datetime.fromisoformat(str(v).replace("Z", "+00:00")))


def match_ground_truth(incidents: list[Incident], truth: list[dict[str, Any]]) -> dict[str, Any]:
    """Which injected incidents were found, and which incidents match nothing.

    An injected incident is *found* when some incident overlaps its ``[start, end]`` span and has
    its ``kind``; *category_correct* when that incident's assessment also names its ``category``.
    An incident overlapping no injected span is a false incident. Entries marked ``benign`` (the
    expected events of a varied background) are not injected incidents: an incident overlapping
    only them is false. Returns
    ``{"found": [...], "missed": [...], "false_incidents": [...], "recall": float, "precision": float,
    "category_accuracy": float}``.
    """
    found, missed, used = [], [], set()
    truth = [gt for gt in truth if not gt.get("benign")]
    for gt in truth:
        start, end = _ts(gt["start"]), _ts(gt["end"])
        overlapping = [i for i in incidents if i.first_seen <= end and i.last_seen >= start]
        hits = [i for i in overlapping if i.kind.value == gt["kind"]]
        used.update(i.id for i in overlapping)
        if hits:
            cat_ok = any(i.assessment and i.assessment.category == gt.get("category") for i in hits)
            found.append({"truth": gt["id"], "name": gt.get("name"), "incidents": [i.id for i in hits],
                          "category_correct": cat_ok})
        else:
            missed.append({"truth": gt["id"], "name": gt.get("name"),
                           "overlapping_kinds": sorted({i.kind.value for i in overlapping})})
    false = [{"id": i.id, "title": i.title, "kind": i.kind.value, "first_seen": i.first_seen.isoformat()}
             for i in incidents if i.id not in used]
    n = len(incidents)
    return {
        "found": found, "missed": missed, "false_incidents": false,
        "recall": len(found) / len(truth) if truth else 1.0,
        "precision": (n - len(false)) / n if n else 1.0,
        "category_accuracy": sum(f["category_correct"] for f in found) / len(truth) if truth else 1.0,
    }
