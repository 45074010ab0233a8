"""The whole cycle on real, labelled NAB series (realKnownCause): incidents overlap the labelled windows."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from opsloop.config import Settings
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import observe
from opsloop.store.session import open_store

from ..conftest import shared_dataset

FILES = ["machine_temperature_system_failure", "ambient_temperature_system_failure", "nyc_taxi",
         "ec2_request_latency_system_failure"]


@pytest.mark.parametrize("name", FILES)
def test_cycle_on_nab_finds_the_labelled_windows(name, sqlite_url, tmp_path):
    nab = shared_dataset("nab")
    runbooks = shared_dataset("runbooks", "prometheus-operator", "content", "runbooks")
    windows = json.loads((nab / "labels" / "combined_windows.json").read_text())[f"realKnownCause/{name}.csv"]
    signals = observe(kpis=[nab / "data" / "realKnownCause" / f"{name}.csv"])
    result = run_cycle(signals, open_store(sqlite_url), Settings(home=tmp_path), runbooks=runbooks)
    assert result.report.counts["quarantined"] == 0
    incidents = result.incidents
    assert incidents, "no incident on a series with known failures"
    spans = [(pd.Timestamp(a, tz="UTC"), pd.Timestamp(b, tz="UTC")) for a, b in windows]
    found = [any(i.first_seen <= b and i.last_seen >= a for i in incidents) for a, b in spans]
    assert sum(found) >= max(1, len(spans) // 2), f"labelled windows found: {found}"
    for inc in incidents:  # every incident is assessed, cites real runbook passages, proposes catalog actions
        assert inc.assessment is not None and inc.assessment.citations
        assert all(c.document.endswith(".md") for c in inc.assessment.citations)
        assert inc.assessment.risk.method.startswith("not computed")
        assert inc.anomalies[0].series.metric == name
