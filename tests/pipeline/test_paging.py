"""The paging rules, one at a time, on small frames: what pages and what stays context."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from opsloop.domain import Anomaly, Kind, MaintenanceWindow, Severity
from opsloop.evidence import (
    ErrorRateEvidence,
    EventRatioEvidence,
    LogTemplateEvidence,
    RobustZEvidence,
    TicketSurgeEvidence,
)
from opsloop.packs.model import CategorySpec, MetricSpec, Pack, PagingRules
from opsloop.pipeline.correlate import incident_of
from opsloop.pipeline.paging import PagingJudge, page

T0 = datetime(2026, 3, 2, tzinfo=UTC)
DAYS = 4
LATE = T0 + timedelta(days=3, hours=14)  # day 3, 14:00: three earlier days at that hour
RULES = PagingRules(min_seconds=1200, min_events=10, min_volume=200, min_history_seconds=12 * 3600,
                    seasonal_days=7, seasonal_minutes=30, seasonal_quantile=0.99)
PACK = Pack(
    name="t", labels=["region"], categories=[CategorySpec(name="other", title="Other", root_cause="-", confidence=0.4)],
    metrics=[MetricSpec(match="latency_p95", bad="up", detector="robust_z", kind=Kind.hard, volume="requests"),
             MetricSpec(match="requests", bad="none", volume_only=True)],
    paging=RULES)


def _kpis(volume: float = 50.0, spike_hour: int | None = None, start: datetime = T0, days: int = DAYS,
          rise_minutes: int = 60) -> pd.DataFrame:
    """Per-minute ``latency_p95`` (300 ms; 2300 ms for ``rise_minutes`` from ``LATE`` and each day
    at ``spike_hour`` for 20 min) and ``requests``."""
    ts = pd.date_range(start, T0 + timedelta(days=days), freq="1min", tz="UTC", inclusive="left")
    lat = np.full(ts.size, 300.0)
    lat[(ts >= LATE) & (ts < LATE + timedelta(minutes=rise_minutes))] = 2300.0
    if spike_hour is not None:
        lat[(ts.hour == spike_hour) & (ts.minute < 20)] = 2300.0
    return pd.concat([pd.DataFrame({"ts": ts, "metric": "latency_p95", "value": lat, "region": "eu"}),
                      pd.DataFrame({"ts": ts, "metric": "requests", "value": volume, "region": "eu"})],
                     ignore_index=True)


def _latency(start: datetime, minutes: int, observed: float = 2300.0, severity=Severity.high) -> Anomaly:
    return Anomaly(kind=Kind.hard, start=start, end=start + timedelta(minutes=minutes), peak=start, severity=severity,
                   evidence=RobustZEvidence(metric="latency_p95", labels={"region": "eu"}, score=12.0,
                                            observed=observed, expected=300.0, direction="up", points=minutes))


def _errors(start: datetime, minutes: int, errors: int, requests: int = 5000, endpoint: str = "GET /a") -> Anomaly:
    return Anomaly(kind=Kind.hard, start=start, end=start + timedelta(minutes=minutes), peak=start,
                   severity=Severity.high,
                   evidence=ErrorRateEvidence(metric="http_errors", labels={"endpoint": endpoint, "status": "503"},
                                              score=20.0, observed=errors / requests, expected=0.0005,
                                              direction="up", endpoint=endpoint, status=503, errors=errors,
                                              requests=requests))


def _logs(endpoint: str = "GET /a", first: datetime = T0) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.to_datetime([first], utc=True), "endpoint": [endpoint]})


def _judge(kpis=None, logs=None, windows=(), pack=PACK) -> PagingJudge:
    return PagingJudge(pack, _kpis() if kpis is None else kpis, _logs() if logs is None else logs, windows)


def test_a_sustained_sized_unusual_latency_rise_is_evidence():
    assert _judge().reason(_latency(LATE, 40)) is None


def test_maintenance_window_on_matching_labels_is_context_others_are_not():
    window = MaintenanceWindow(start=LATE - timedelta(minutes=5), end=LATE + timedelta(hours=1),
                               labels={"endpoint": "GET /a"}, reason="db upgrade")
    judge = _judge(windows=[window])
    assert judge.reason(_errors(LATE, 30, errors=400)) == "maintenance"
    assert judge.reason(_errors(LATE, 30, errors=400, endpoint="GET /b")) is None  # another endpoint
    assert judge.reason(_errors(LATE + timedelta(hours=2), 30, errors=400)) is None  # after the window


def test_a_volume_alone_is_an_expected_event():
    surge = Anomaly(kind=Kind.business, start=LATE, end=LATE + timedelta(hours=2), peak=LATE, severity=Severity.high,
                    evidence=RobustZEvidence(metric="requests", labels={"region": "eu"}, score=9.0, observed=300.0,
                                             expected=50.0, direction="up"))
    assert _judge().reason(surge) == "expected_volume"


def test_a_new_series_has_no_baseline():
    young = _kpis(start=LATE - timedelta(hours=2))
    assert _judge(kpis=young).reason(_latency(LATE, 40)) == "new_series"
    new_endpoint = _logs(first=LATE - timedelta(hours=1))
    assert _judge(logs=new_endpoint).reason(_errors(LATE, 30, errors=400)) == "new_series"


def test_a_percentile_of_a_handful_of_requests_is_thin():
    assert _judge(kpis=_kpis(volume=3.0)).reason(_latency(LATE, 40)) == "thin"  # 120 requests in 40 min
    assert _judge(kpis=_kpis(volume=6.0)).reason(_latency(LATE, 40)) is None  # 240


def test_counts_need_enough_events_above_baseline():
    assert _judge().reason(_errors(LATE, 30, errors=8)) == "thin"
    assert _judge().reason(_errors(LATE, 30, errors=40)) is None
    lagging = Anomaly(kind=Kind.soft, start=LATE, end=LATE + timedelta(minutes=30), peak=LATE, severity=Severity.high,
                      evidence=EventRatioEvidence(metric="b/a", score=15.0, observed=0.8, expected=1.0,
                                                  direction="down", upstream_event="a", downstream_event="b",
                                                  upstream=100, downstream=80, missing=0, late=20))
    assert _judge().reason(lagging) == "thin"  # the events came, late: a lagging consumer, not a loss


def _slice_logs(eu_every: int, eu_failing: int) -> pd.DataFrame:
    """Calls to ``GET /a`` for four days: region ``us`` 5 a minute, all 200; region ``eu`` one every
    ``eu_every`` minutes, the first ``eu_failing`` of them from ``LATE`` on returning 503."""
    ts = pd.date_range(T0, T0 + timedelta(days=DAYS), freq="1min", tz="UTC", inclusive="left")
    us = pd.DataFrame({"ts": ts.repeat(5), "region": "us", "status": 200})
    eu = pd.DataFrame({"ts": ts[::eu_every], "region": "eu", "status": 200})
    failing = np.flatnonzero(eu["ts"] >= pd.Timestamp(LATE))[:eu_failing]
    eu.loc[failing, "status"] = 503
    logs = pd.concat([us, eu], ignore_index=True).assign(endpoint="GET /a")
    return logs.sort_values("ts", ignore_index=True)


def test_a_slice_that_fails_wholesale_pages_below_min_events():
    pack = PACK.model_copy(update={"paging": RULES.model_copy(update={"min_share": 0.5})})
    # eu calls once every 10 minutes and every call fails for an hour: 6 errors among 306 calls
    outage = _judge(logs=_slice_logs(eu_every=10, eu_failing=6), pack=pack)
    hour = _errors(LATE, 60, errors=6, requests=306)
    assert outage.reason(hour) is None
    assert len(page([incident_of([hour], [], ["region"])], outage, ["region"])[0]) == 1
    assert _judge(logs=_slice_logs(eu_every=10, eu_failing=6)).reason(hour) == "thin"  # min_share off
    # the same 6 errors among eu calling every minute (60 calls): a tenth of the slice, thin
    assert _judge(logs=_slice_logs(eu_every=1, eu_failing=6), pack=pack).reason(
        _errors(LATE, 60, errors=6, requests=360)) == "thin"
    # a blip of 3 failed calls in 3 minutes, the slice's every call: not sustained, context
    blip = _errors(LATE, 3, errors=3, requests=18)
    pages, context = page([incident_of([blip], [], ["region"])], _judge(logs=_slice_logs(1, 3), pack=pack),
                          ["region"])
    assert pages == [] and [c.reason for c in context] == ["blip"]
    lost_half = _lost(9)  # 9 of the group's 17 expected events missing: over half of the slice
    assert _judge(pack=pack).reason(lost_half) is None and _judge().reason(lost_half) == "thin"


def test_what_the_series_does_at_that_hour_every_day_is_seasonal():
    daily = _kpis(spike_hour=14)
    assert _judge(kpis=daily).reason(_latency(LATE, 20)) == "seasonal"
    assert _judge().reason(_latency(LATE, 20)) is None  # the same hour without the daily spikes


def test_a_short_lone_anomaly_is_a_blip_a_corroborated_one_pages():
    judge = _judge(kpis=_kpis(rise_minutes=10))
    blip = _latency(LATE, 10)
    pages, context = page([incident_of([blip], [], ["region"])], judge, ["region"])
    assert pages == [] and [c.reason for c in context] == ["blip"]
    errors = _errors(LATE, 10, errors=200)
    pages, context = page([incident_of([blip, errors], [], ["region"])], judge, ["region"])
    assert len(pages) == 1 and context == []
    pages, _ = page([incident_of([_latency(LATE, 30)], [], ["region"])], _judge(), ["region"])
    assert len(pages) == 1
    onset = _latency(LATE, 1)  # a detector flagging only the onset of a lasting shift: the series says how long
    assert page([incident_of([onset], [], ["region"])], _judge(kpis=_kpis(volume=150.0)), ["region"])[0]


def test_a_paged_incident_is_built_from_its_evidence_only():
    evidence = _latency(LATE, 40, severity=Severity.medium)
    thin_errors = _errors(LATE, 30, errors=5)  # high, but thin: it neither names nor raises the page
    cand = incident_of([evidence, thin_errors], [], ["region"])
    assert cand.severity == Severity.high
    (inc,), context = page([cand], _judge(), ["region"])
    assert context == [] and inc.severity == Severity.medium and inc.anomalies == [evidence]
    assert inc.title == evidence.headline()


def test_few_lost_events_page_when_most_of_what_was_expected_failed():
    wholesale = _judge(pack=PACK.model_copy(update={"paging": RULES.model_copy(update={"min_share": 0.5})}))
    assert _judge().reason(_lost(9)) == "thin"  # under min_events, and no min_share in RULES
    assert wholesale.reason(_lost(9)) is None  # 9 of the 0.999 x 17 expected: 53% lost
    assert wholesale.reason(_lost(8)) == "thin"  # 47%: under half
    lines = Anomaly(kind=Kind.hard, start=LATE, end=LATE + timedelta(minutes=30), peak=LATE, severity=Severity.high,
                    evidence=LogTemplateEvidence(metric="log_template", score=30.0, template_id="t1",
                                                 template="pool exhausted", service="db", count=6,
                                                 baseline_count=0, baseline_hours=24.0))
    assert wholesale.reason(lines) == "thin"  # log lines have no denominator: never wholesale


def _lost(missing: int) -> Anomaly:
    return Anomaly(kind=Kind.soft, start=LATE, end=LATE + timedelta(minutes=20), peak=LATE, severity=Severity.high,
                   evidence=EventRatioEvidence(metric="b/a", score=20.0, observed=0.5, expected=0.999,
                                               direction="down", upstream_event="a", downstream_event="b",
                                               upstream=17, downstream=9, missing=missing))


def _surge() -> Anomaly:
    return Anomaly(kind=Kind.business, start=LATE, end=LATE + timedelta(hours=2), peak=LATE,
                   severity=Severity.medium,
                   evidence=TicketSurgeEvidence(metric="ticket_volume", score=25.0, observed=11.0, expected=0.01,
                                                cluster_id="c1", label="orders missing", tickets=26))


def test_a_thin_count_corroborated_by_customers_names_the_page():
    lost, surge = _lost(8), _surge()
    assert _judge().reason(lost) == "thin"
    pages, context = page([incident_of([lost], [], ["region"])], _judge(), ["region"])
    assert pages == [] and [c.reason for c in context] == ["thin"]  # alone: too few events
    (inc,), _ = page([incident_of([lost, surge], [], ["region"])], _judge(), ["region"])
    assert inc.kind == Kind.soft and inc.title == lost.headline() and lost in inc.anomalies
    few = _latency(LATE, 30)  # a percentile of a handful of requests is not taken back
    (inc,), _ = page([incident_of([few, surge], [], ["region"])], _judge(kpis=_kpis(volume=1.0)), ["region"])
    assert inc.anomalies == [surge] and inc.kind == Kind.business


def test_an_end_before_start_is_rejected():
    with pytest.raises(ValueError, match="not after start"):
        MaintenanceWindow(start=LATE, end=LATE)
