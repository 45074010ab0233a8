"""Series snapshots: the series behind each anomaly of an incident, stored at cycle time.

KPI points and log lines are not kept in the store, so the act stage snapshots, per anomaly, the
series its detector looked at with an expected band (built by :mod:`opsloop.pipeline.series`);
``GET /incidents/{id}/series`` reads them back. One row per ``(incident_id, anomaly_key)``
(:meth:`opsloop.domain.Anomaly.key`), replaced when a later cycle updates the incident. Points are
stored column-wise (``{"ts": [...], "observed": [...], ...}``) to keep the JSON small. Times are UTC.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from opsloop.store.models import AnomalySeriesRow, IncidentRow
from opsloop.store.repository import NotFound, now

_COLUMNS = ("ts", "observed", "expected", "lower", "upper")


class SeriesPoint(BaseModel):
    """One point of a series: ``ts`` (UTC), the ``observed`` value and the expected band
    (``expected`` with ``lower``..``upper``), all in the series' unit; ``None`` where undefined
    (no observation in the bucket, or too little history for a baseline)."""

    model_config = ConfigDict(frozen=True)

    ts: datetime
    observed: float | None = None
    expected: float | None = None
    lower: float | None = None
    upper: float | None = None


class AnomalySeries(BaseModel):
    """The series one anomaly's detector looked at, from some hours before the anomaly to a little
    after it, with an expected band.

    ``anomaly_key``: the anomaly's key (:meth:`opsloop.domain.Anomaly.key`); ``metric`` and
    ``labels``: the series as the evidence names it; ``unit``: of every value in ``points``;
    ``direction``: the departure the detector watches (``up``, ``down`` or ``both``); ``detector``:
    its name; ``start``/``end``/``peak``: the anomaly's window (UTC); ``points``: oldest first, at
    most about 500.
    """

    model_config = ConfigDict(frozen=True)

    anomaly_key: str
    metric: str
    labels: dict[str, str]
    unit: str
    direction: Literal["up", "down", "both"]
    detector: str
    start: datetime
    end: datetime
    peak: datetime
    points: list[SeriesPoint]


def _columns(points: list[SeriesPoint]) -> dict[str, list]:
    return {"ts": [p.ts.isoformat() for p in points],
            **{c: [getattr(p, c) for p in points] for c in _COLUMNS[1:]}}


def _points(data: dict[str, list]) -> list[SeriesPoint]:
    return [SeriesPoint(**dict(zip(_COLUMNS, row, strict=True))) for row in zip(*(data[c] for c in _COLUMNS))]


def save_series(session: Session, incident_id: str, series: list[AnomalySeries]) -> None:
    """Store ``series`` for the incident, replacing the snapshot of each anomaly key given (others
    are kept: an anomaly an earlier cycle saw keeps its snapshot). Two anomalies of one key (the same
    problem seen twice in one window) keep the later one's. Runs in the caller's transaction."""
    if not series:
        return
    keys = [s.anomaly_key for s in series]
    rows = {r.anomaly_key: r for r in session.execute(
        select(AnomalySeriesRow).where(AnomalySeriesRow.incident_id == incident_id,
                                       AnomalySeriesRow.anomaly_key.in_(keys))).scalars()}
    t = now()
    for s in sorted(series, key=lambda x: (x.end, x.peak)):
        values = {"metric": s.metric, "labels": dict(s.labels), "unit": s.unit, "direction": s.direction,
                  "detector": s.detector, "start": s.start, "end": s.end, "peak": s.peak,
                  "points": _columns(s.points), "updated_at": t}
        row = rows.get(s.anomaly_key)
        if row is None:
            rows[s.anomaly_key] = AnomalySeriesRow(incident_id=incident_id, anomaly_key=s.anomaly_key, **values)
            session.add(rows[s.anomaly_key])
        else:
            for name, value in values.items():
                setattr(row, name, value)
    session.flush()


def list_series(session: Session, incident_id: str) -> list[AnomalySeries]:
    """The stored series of an incident's anomalies, by anomaly start; empty for an incident stored
    before snapshots existed. Raises ``NotFound`` for an unknown incident."""
    if session.get(IncidentRow, incident_id) is None:
        raise NotFound(f"no incident {incident_id!r}")
    rows = session.execute(select(AnomalySeriesRow).where(AnomalySeriesRow.incident_id == incident_id)
                           .order_by(AnomalySeriesRow.start, AnomalySeriesRow.anomaly_key)).scalars()
    return [AnomalySeries(anomaly_key=r.anomaly_key, metric=r.metric, labels=r.labels, unit=r.unit,
                          direction=r.direction, detector=r.detector, start=r.start, end=r.end, peak=r.peak,
                          points=_points(r.points)) for r in rows]
