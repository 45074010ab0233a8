"""Series snapshots in the store: one row per (incident, anomaly key), the latest sighting kept."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opsloop.domain import Incident, Kind, Severity
from opsloop.store import repository as repo
from opsloop.store.series import AnomalySeries, SeriesPoint, list_series, save_series
from opsloop.store.session import open_store

T0 = datetime(2026, 11, 6, 12, 0, tzinfo=UTC)


def _series(end_h: int, value: float) -> AnomalySeries:
    pts = [SeriesPoint(ts=T0 + timedelta(minutes=5 * i), observed=value, expected=1.0, lower=0.5, upper=1.5)
           for i in range(12)]
    return AnomalySeries(anomaly_key="k1", metric="m", labels={"stage": "all"}, unit="ratio", direction="down",
                         detector="ratio", start=T0, end=T0 + timedelta(hours=end_h), peak=T0, points=pts)


def test_two_sightings_of_one_key_in_a_window_keep_the_later(store_url):
    store = open_store(store_url)
    with store.begin() as s:
        inc, _ = repo.upsert_incident(s, Incident(id="cand", fingerprint="fp", kind=Kind.soft, first_seen=T0,
                                                  last_seen=T0 + timedelta(hours=3), severity=Severity.high),
                                      timedelta(hours=6))
        save_series(s, inc.id, [_series(3, 0.2), _series(1, 0.9)])
    with store() as s:
        (only,) = list_series(s, inc.id)
    assert only.end == T0 + timedelta(hours=3) and only.points[0].observed == 0.2
