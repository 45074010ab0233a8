"""GET /incidents/{id}/series: a viewer reads the snapshots a cycle stored, typed; an incident stored
before snapshots has none; an unknown incident is 404; no token is 401 (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from opsloop.api import series
from opsloop.api.app import create_app
from opsloop.api.schemas import ListOut
from opsloop.config import Settings
from opsloop.store.models import IncidentRow
from opsloop.store.series import AnomalySeries, SeriesPoint, save_series
from opsloop.store.session import open_store

from .conftest import T0, auth, seed_store

PATH = "/incidents/{}/series"


@pytest.fixture
def client(store_url, tmp_path):
    """(client, tokens, incident id, store) on an app with the series router (included here until
    the app includes it)."""
    tokens = seed_store(store_url)
    app = create_app(Settings(home=tmp_path, database_url=store_url, pack="checkout"))
    if not any(getattr(r, "path", "") == PATH.format("{incident_id}") for r in app.routes):
        app.include_router(series.router)
    store = open_store(store_url)
    with store() as s:
        incident_id = s.query(IncidentRow.id).scalar()
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c, tokens, incident_id, store


def _snapshot() -> AnomalySeries:
    points = [SeriesPoint(ts=T0 + timedelta(minutes=5 * i), observed=0.001 if i < 70 else 0.2,
                          expected=0.001 if i > 0 else None, lower=0.0 if i > 0 else None,
                          upper=0.004 if i > 0 else None) for i in range(90)]
    points[80] = points[80].model_copy(update={"observed": None})  # a bucket without calls
    return AnomalySeries(anomaly_key="k-403", metric="http_errors", labels={"endpoint": "POST /hooks", "status": "403"},
                         unit="share of calls", direction="up", detector="error_rate", start=points[70].ts,
                         end=points[85].ts, peak=points[72].ts, points=points)


def test_incident_without_snapshots_has_an_empty_list(client):
    c, tokens, incident_id, _ = client
    r = c.get(PATH.format(incident_id), headers=auth(tokens["viewer"]))
    assert r.status_code == 200 and r.json() == {"data": [], "count": 0}


def test_viewer_reads_the_stored_series_typed(client):
    c, tokens, incident_id, store = client
    snap = _snapshot()
    with store.begin() as s:
        save_series(s, incident_id, [snap])
    r = c.get(PATH.format(incident_id), headers=auth(tokens["viewer"]))
    assert r.status_code == 200
    page = ListOut[AnomalySeries].model_validate(r.json())
    assert page.count == 1 and page.data == [snap]
    got = page.data[0]
    assert got.points[80].observed is None and got.points[0].expected is None
    assert got.points[72].observed > got.points[72].upper  # the spike leaves the band, as stored
    assert r.json()["data"][0]["points"][0]["ts"].endswith(("Z", "+00:00"))  # UTC on the wire


def test_unknown_incident_is_404_and_no_token_is_401(client):
    c, tokens, incident_id, _ = client
    r = c.get(PATH.format("inc-nope"), headers=auth(tokens["viewer"]))
    assert r.status_code == 404 and "inc-nope" in r.json()["detail"]
    r = c.get(PATH.format(incident_id))
    assert r.status_code == 401 and r.json()["detail"] == "missing bearer token"
    r = c.get(PATH.format(incident_id), headers=auth("not-a-token"))
    assert r.status_code == 401
