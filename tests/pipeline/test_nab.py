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


def test_generic_pack_on_two_nab_files_speaks_in_units_and_directions(tmp_path):
    """The README's example as a new user runs it (generic pack, no runbooks): every evidence line
    names its detector and unit, a drop is a drop, no checkout words, no money, severities under
    the generic pack's rules, and nothing but read-only diagnostics runs without a human."""
    nab = shared_dataset("nab")
    files = [nab / "data" / "realKnownCause" / f"{n}.csv"
             for n in ("machine_temperature_system_failure", "ec2_request_latency_system_failure")]
    settings = Settings(home=tmp_path, embedder="tfidf")
    assert settings.pack == "generic"
    result = run_cycle(observe(kpis=files), open_store(f"sqlite:///{tmp_path / 'db.sqlite'}"), settings)
    assert result.incidents
    words = ("checkout", "merchant", "stage", "conversion", "order", "business failure", "robust z 1.0")
    for inc in result.incidents:
        a = inc.assessment
        assert a.risk.revenue_at_risk_per_hour is None and a.risk.lost_orders is None
        text = " ".join([inc.title, a.summary, a.root_cause, *a.evidence]).lower()
        assert not [w for w in words if w in text], text
        for anomaly, line in zip(inc.anomalies, a.evidence):
            assert "-log10 p" in line and "ensemble" in line, line  # the detector's unit, not a robust z
            moved = "fell to" if anomaly.direction == "down" else "rose to"
            assert moved in line and (anomaly.observed < anomaly.expected) == (anomaly.direction == "down")
            assert inc.title.endswith("drop" if inc.anomalies[0].direction == "down" else "rise")
        if len(inc.anomalies) == 1 and inc.anomalies[0].start == inc.anomalies[0].end:
            assert inc.severity.value in ("low", "medium")  # single_point_max
        assert inc.severity.value != "critical"  # evidence alone reaches at most high
        latency = any("latency" in an.series.metric and an.direction == "up" for an in inc.anomalies)
        assert a.category == ("latency" if latency else "kpi_anomaly"), (a.category, inc.title)
        for action in inc.actions:
            ran = action.status.value in ("approved", "executing", "succeeded", "failed")
            assert ran == (action.type == "collect_diagnostics"), (action.type, action.status)
            assert action.type != "collect_diagnostics" or action.status.value == "succeeded"
