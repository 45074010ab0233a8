"""Alerts as anomalies: kind, severity, span and labels, and correlation with KPI anomalies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from opsloop.config import Settings
from opsloop.domain import Alert, Anomaly, Kind, Severity, Window
from opsloop.evidence import AlertEvidence
from opsloop.packs import load_pack
from opsloop.packs.model import Pack
from opsloop.pipeline.cycle import run_cycle
from opsloop.pipeline.observe import Signals, combine
from opsloop.sources.alerts import alert_anomalies, alert_severity
from opsloop.sources.push import firing_during
from opsloop.store.session import open_store
from tests.sources.conftest import failing_kpis

END = datetime(2026, 11, 7, 15, 0, tzinfo=UTC)
WINDOW = Window(start=END - timedelta(hours=1), end=END)


def _alert(stage: str, starts: datetime, ends: datetime | None = None, severity: str = "critical",
           name: str = "CheckoutFailing", fp: str | None = None) -> Alert:
    return Alert(fingerprint=fp or f"fp-{stage}", status="resolved" if ends else "firing",
                 labels={"alertname": name, "severity": severity, "stage": stage, "team": "pay"},
                 annotations={"summary": "checkout 5xx above 5%"}, starts_at=starts, ends_at=ends)


def test_alert_anomaly_fields():
    pack = load_pack("checkout")
    starts = END - timedelta(minutes=30)
    (a,) = alert_anomalies([_alert("headless", starts)], WINDOW, pack)
    assert (a.kind, a.severity, a.start, a.end, a.peak) == (Kind.hard, Severity.critical, starts, END, starts)
    ev = a.evidence
    assert isinstance(ev, AlertEvidence) and ev.metric == "CheckoutFailing"
    assert ev.labels == {"stage": "headless", "team": "pay"}
    assert ev.score == 30.0 and ev.unit == "minutes firing"
    assert a.headline() == "alert CheckoutFailing (headless, pay)"
    assert "30 min firing" in a.line() and ev.example_lines() == ["checkout 5xx above 5%"]
    assert Anomaly.model_validate_json(a.model_dump_json()) == a  # registered in the evidence union

    # span clipped at the end; before or after the window: none
    ended = alert_anomalies([_alert("headless", starts, END - timedelta(minutes=10))], WINDOW, pack)[0]
    assert ended.end == END - timedelta(minutes=10) and ended.evidence.score == 20.0
    before = _alert("headless", WINDOW.start - timedelta(hours=2), WINDOW.start)
    assert alert_anomalies([before], WINDOW, pack) == []
    assert alert_anomalies([_alert("headless", END)], WINDOW, pack) == []


def test_severity_and_kind_mapping():
    assert [alert_severity(s) for s in ("CRITICAL", "warning", "info", "error", "", None, "sev2")] == \
        [Severity.critical, Severity.medium, Severity.low, Severity.high, Severity.medium, Severity.medium,
         Severity.medium]
    base = load_pack("checkout").model_dump(exclude={"root"})
    pack = Pack.model_validate({**base, "alerts": [{"match": "*Conversion*", "kind": "business"}]})
    starts = END - timedelta(minutes=5)
    kinds = [a.kind for a in alert_anomalies([_alert("x", starts, name="ConversionLow"),
                                              _alert("y", starts, name="Other")], WINDOW, pack)]
    assert kinds == [Kind.business, Kind.hard]


def test_firing_during_latest_status_wins():
    t = WINDOW.start
    rows = [_alert("a", t - timedelta(hours=3), fp="f"),  # an episode whose resolution was lost
            _alert("a", t - timedelta(hours=1), fp="f"),
            _alert("a", t - timedelta(hours=1), t - timedelta(minutes=5), fp="f"),  # resolved before
            _alert("b", t - timedelta(minutes=30), fp="g"),
            _alert("b", t - timedelta(minutes=30), t + timedelta(minutes=10), fp="g"),
            _alert("c", t + timedelta(minutes=20), fp="h")]
    got = firing_during(rows, WINDOW)
    assert [(a.fingerprint, a.status) for a in got] == [("g", "resolved"), ("h", "firing")]
    lost = firing_during(rows[:1] + [_alert("a", t + timedelta(minutes=1), fp="f")],
                         Window(start=t - timedelta(hours=4), end=END))
    assert [(a.status, a.ends_at) for a in lost] == [("resolved", t + timedelta(minutes=1)), ("firing", None)]


@pytest.fixture
def settings(tmp_path, sqlite_url):
    return Settings(home=tmp_path, database_url=sqlite_url, pack="checkout", embedder="tfidf")


def test_alert_and_kpi_anomaly_on_the_same_stage_make_one_incident(settings, sqlite_url):
    onset = END - timedelta(minutes=40)
    kpis = failing_kpis(END, "headless", onset)
    alerts = [_alert("headless", onset + timedelta(minutes=2)),
              _alert("legacy", onset + timedelta(minutes=5))]
    signals = combine([Signals(window=WINDOW, kpis=kpis), Signals(window=WINDOW, alerts=alerts)], WINDOW)
    result = run_cycle(signals, open_store(sqlite_url), settings)
    by_stage = {tuple(i.affected.get("stage", [])): i for i in result.incidents}
    assert set(by_stage) == {("headless",), ("legacy",)}
    both = by_stage[("headless",)]
    assert sorted(a.detector for a in both.anomalies) == ["alert", "robust_z"]
    assert both.title == "alert CheckoutFailing (headless, pay)" and both.kind == Kind.hard
    assert [a.detector for a in by_stage[("legacy",)].anomalies] == ["alert"]


def test_a_lone_short_alert_pages_its_rule_already_required_it_to_hold():
    from opsloop.pipeline.correlate import correlate
    from opsloop.pipeline.paging import PagingJudge, page
    from opsloop.pipeline.observe import empty_frame
    from opsloop.data.contracts import KPIS, LOGS, TICKETS

    pack = load_pack("checkout")  # min_seconds 1200: a 5-minute anomaly of a detector would be a blip
    anomalies = alert_anomalies([_alert("headless", END - timedelta(minutes=5))], WINDOW, pack)
    candidates = correlate(anomalies, [], empty_frame(TICKETS), pack.labels, pack.correlation_labels)
    judge = PagingJudge(pack, empty_frame(KPIS), empty_frame(LOGS), [])
    pages, context = page(candidates, judge, pack.labels)
    assert [p.title for p in pages] == ["alert CheckoutFailing (headless, pay)"] and context == []
