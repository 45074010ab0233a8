"""The action catalog (``catalog.yaml``), validated at load, and the policy that decides what needs
approval.

Only catalog actions can ever be proposed; whether one needs approval is the :class:`Policy`'s call.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.domain import Policy
from opsloop.domain import ActionStatus, Incident, ProposedAction, Risk, stable_hash

CATALOG_PATH = Path(__file__).resolve().parent / "catalog.yaml"


class ParamSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["string", "array", "integer", "number", "boolean"]
    description: str = ""
    required: bool = False


class ActionSpec(BaseModel):
    """One catalog entry."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    description: str
    risk: Risk
    reversible: bool
    rollback: str | None = None
    executor: Literal["simulated", "webhook"] = "simulated"
    categories: list[str]
    params: dict[str, ParamSpec] = Field(default_factory=dict)


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    actions: list[ActionSpec]

    def for_category(self, category: str) -> list[ActionSpec]:
        return [a for a in self.actions if category in a.categories]

    def get(self, action_type: str) -> ActionSpec:
        for a in self.actions:
            if a.type == action_type:
                return a
        raise KeyError(f"action type {action_type!r} is not in the catalog")


@lru_cache(maxsize=4)
def load_catalog(path: Path = CATALOG_PATH) -> Catalog:
    """Load and validate the catalog; ``ValueError`` naming the file and the bad entry otherwise."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        catalog = Catalog.model_validate(raw)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ValueError(f"{path}: invalid action catalog: {exc}") from exc
    types = {a.type for a in catalog.actions}
    for a in catalog.actions:
        if a.rollback and a.rollback not in types:
            raise ValueError(f"{path}: action {a.type!r} names unknown rollback {a.rollback!r}")
    return catalog


def _fill_params(spec: ActionSpec, incident: Incident) -> dict[str, Any]:
    """Parameters from the incident's computed facts (never from free text)."""
    aff = incident.affected
    facts: dict[str, Any] = {
        "merchants": aff.get("merchant_id", []),
        "stage": ",".join(aff.get("stage", [])) or None,
        "start": incident.first_seen.isoformat(),
        "end": incident.last_seen.isoformat(),
        "summary": incident.title,
        "message": f"We are investigating: {incident.title}",
        "incident_id": incident.id,
    }
    return {name: facts[name] for name in spec.params if facts.get(name) not in (None, [], "")}


def propose_actions(incident: Incident, catalog: Catalog, policy: Policy, max_actions: int = 3) -> list[ProposedAction]:
    """Catalog actions for the incident's category: at most ``max_actions``, the most specific to the
    category first (fewest categories), then lowest risk.

    Actions whose required parameters cannot be filled from the incident's facts are skipped. The
    idempotency key hashes incident id, type and parameters, so re-proposing is a no-op.
    """
    category = incident.assessment.category if incident.assessment else "kpi_anomaly"
    confidence = incident.assessment.confidence if incident.assessment else 0.3
    order = {Risk.low: 0, Risk.medium: 1, Risk.high: 2, Risk.critical: 3}
    out = []
    for spec in sorted(catalog.for_category(category), key=lambda s: (len(s.categories), order[s.risk])):
        params = _fill_params(spec, incident)
        if any(p.required and name not in params for name, p in spec.params.items()):
            continue
        key = stable_hash([incident.id, spec.type, params], 32)
        auto = policy.auto_executes(spec.risk, confidence, spec.type)
        out.append(
            ProposedAction(
                id="act-" + key[:12], incident_id=incident.id, type=spec.type, params=params,
                rationale=f"{spec.description} (runbook category {category}; assessment confidence "
                f"{confidence:.2f})",
                risk=spec.risk, confidence=confidence, requires_approval=not auto, status=ActionStatus.proposed,
                idempotency_key=key,
            )
        )
        if len(out) >= max_actions:
            break
    return out
