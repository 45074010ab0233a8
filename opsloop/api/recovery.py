"""Recovery of interrupted executions: an operator resolves or retries an ``unknown`` action.

An action is ``unknown`` when its execution was claimed and never recorded within its executor's
deadline plus the margin (a crash between claim and outcome; see :mod:`opsloop.actions.outbox`).
Both routes act as the calling token's owner (Operator role) and are audited; a claim already overdue
but not yet marked is marked ``unknown`` first.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from opsloop.actions import service
from opsloop.api.deps import Operator, SettingsDep, StoreDep
from opsloop.api.schemas import ErrorOut
from opsloop.domain import ActionStatus, ProposedAction

router = APIRouter(tags=["actions"])

_ERRORS = {
    401: {"model": ErrorOut, "description": "missing, invalid or revoked token"},
    403: {"model": ErrorOut, "description": "the token's role is below operator"},
    404: {"model": ErrorOut, "description": "no such action"},
    409: {"model": ErrorOut, "description": "the action is not `unknown` (the detail names its status)"},
}


class ResolveIn(BaseModel):
    """How an operator found an interrupted execution: ``outcome`` and what they checked (``note``)."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal["succeeded", "failed"]
    note: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)] = Field(
        description="What was checked, e.g. 'checked the webhook console: the secret was rotated'.")


@router.post("/actions/{action_id}/resolve", responses=_ERRORS)
def resolve(action_id: str, body: ResolveIn, store: StoreDep, settings: SettingsDep, caller: Operator) -> ProposedAction:
    """Resolve an `unknown` action as `succeeded` or `failed` after checking what happened; the note
    is kept in the action's result and the audit trail. 409 when the action is not `unknown`."""
    return service.resolve(store, action_id, caller.name, ActionStatus(body.outcome), body.note, settings)


@router.post("/actions/{action_id}/retry",
             responses={**_ERRORS, 422: {"model": ErrorOut, "description": "the action's executor cannot be built"}})
def retry(action_id: str, store: StoreDep, settings: SettingsDep, caller: Operator) -> ProposedAction:
    """Run an `unknown` action again on the claimed execution path, with the same idempotency key (a
    receiver that deduplicates by it acts once); returns it `succeeded` or `failed`. Of racing
    retries one runs, the others get 409."""
    return service.retry(store, action_id, caller.name, settings.policy(), settings)
