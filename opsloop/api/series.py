"""``GET /incidents/{id}/series``: the series behind each anomaly of an incident, for its chart.

The series are snapshots taken when a cycle stored the incident (:mod:`opsloop.pipeline.series`
builds them, :mod:`opsloop.store.series` keeps them): the values the detector scored from some
hours before the anomaly to a little after it, with the expected band. Response models:
:class:`AnomalySeries` and :class:`SeriesPoint` (parse responses with them).
"""

from __future__ import annotations

from fastapi import APIRouter

from opsloop.api.deps import SessionDep, Viewer
from opsloop.api.schemas import ListOut
from opsloop.store.series import AnomalySeries, SeriesPoint, list_series

__all__ = ["AnomalySeries", "SeriesPoint", "router"]

router = APIRouter()


@router.get("/incidents/{incident_id}/series", tags=["incidents"],
            responses={404: {"description": "no such incident"}})
def incident_series(incident_id: str, session: SessionDep, _: Viewer) -> ListOut[AnomalySeries]:
    """Per anomaly of the incident, the series its detector looked at (``points``: ``ts``, ``observed``
    and the expected band ``expected``, ``lower``..``upper``, in ``unit``; times UTC) around the
    anomaly's ``start``..``end``; empty for an incident stored before series were snapshotted."""
    found = list_series(session, incident_id)
    return ListOut(data=found, count=len(found))
