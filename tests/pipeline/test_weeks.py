"""Whole cycles on weeks whose background is drawn (traffic, 5xx, deploys, consumer lag, GC-pause
tails): a quiet week and a benign week page at most once, an incident week finds its incidents."""

from __future__ import annotations

import json

import pytest

from opsloop.config import Settings
from opsloop.domain import MaintenanceWindow
from opsloop.packs.checkout.background import draw_background
from opsloop.packs.checkout.simulator import simulate, write_scenario
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.evaluate import match_ground_truth
from opsloop.pipeline.observe import observe
from opsloop.store import repository as repo
from opsloop.store.session import open_store

SEED = 2  # about 55 sessions/min at peak: p95s of a handful of requests, GC pauses, consumer lag


@pytest.fixture(scope="session")
def weeks(tmp_path_factory) -> dict:
    """mode -> (cycle result, ground truth, store): one cycle per mode, shared by the tests."""
    out = {}
    for mode in ("quiet", "benign", "incidents"):
        root = tmp_path_factory.mktemp(mode)
        paths = write_scenario(simulate(seed=SEED, days=7, background=draw_background(SEED, mode)), root)
        truth = json.loads(paths["ground_truth"].read_text())
        store = open_store(f"sqlite:///{root / 'opsloop.db'}")
        with store.begin() as s:  # the operator declared the maintenance beforehand
            for gt in truth:
                if gt.get("maintenance"):
                    repo.add_maintenance(s, MaintenanceWindow(start=gt["start"], end=gt["end"], labels=gt["labels"]),
                                         "test")
        signals = observe(tickets=paths["tickets"], logs=paths["logs"], kpis=[paths["kpis"]])
        out[mode] = (run_cycle(signals, store, Settings(home=root, pack="checkout")), truth)
    return out


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["quiet", "benign"])
def test_ordinary_and_benign_weeks_page_at_most_once(weeks, mode):
    result, truth = weeks[mode]
    assert len(result.incidents) <= 1, [(i.title, i.first_seen.isoformat()) for i in result.incidents]
    assert all(gt.get("benign") for gt in truth) and (mode == "quiet") == (truth == [])
    assert result.report.counts["context"] == len(result.report.context)


@pytest.mark.slow
def test_benign_week_declares_its_maintenance_and_names_its_events(weeks):
    _, truth = weeks["benign"]
    assert sorted(g["name"] for g in truth) == ["holiday_dip", "maintenance", "merchant_go_live", "traffic_surge"]
    assert weeks["benign"][0].report.parameters["maintenance_windows"] == 1


@pytest.mark.slow
def test_incident_week_on_a_drawn_background_finds_its_incidents(weeks):
    result, truth = weeks["incidents"]
    match = match_ground_truth(result.incidents, truth)
    assert len(truth) == 6 and match["missed"] == [], match["missed"]
    assert len(match["false_incidents"]) <= 1, match["false_incidents"]
