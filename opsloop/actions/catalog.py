"""The action catalog (a domain pack's ``catalog.yaml``), validated at load, and the proposal of
catalog actions for an incident.

Only catalog actions can ever be proposed; whether one needs approval is the :class:`Policy`'s call,
and only the pack's ``actions.auto_execute`` types may run without a human.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from opsloop.domain import ActionStatus, Incident, Policy, ProposedAction, Risk, stable_hash


class ParamSpec(BaseModel):
    """One action parameter. ``label``: filled from the incident's blast radius for that label (an
    ``array`` gets the values, a ``string`` them comma-joined); otherwise parameters named
    ``start``, ``end``, ``summary``, ``message`` or ``incident_id`` are filled from the incident."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: Literal["string", "array", "integer", "number", "boolean"]
    description: str = ""
    required: bool = False
    label: str | None = None


class ActionSpec(BaseModel):
    """One catalog entry. ``read_only``: it changes nothing (e.g. collecting diagnostics), so when the
    pack allows it to run alone, it does so at any assessment confidence. ``idempotent``: running it
    twice with one idempotency key acts once (read-only diagnostics, or a receiver that deduplicates
    by the key), so the outbox may retry an interrupted (``unknown``) execution of it once by itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    type: str
    description: str
    risk: Risk
    reversible: bool
    rollback: str | None = None
    executor: Literal["simulated", "webhook"] = "simulated"
    read_only: bool = False
    idempotent: bool = False
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


@lru_cache(maxsize=8)
def load_catalog(path: Path) -> Catalog:
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


def spec_for(action_type: str, pack: str | Path) -> ActionSpec:
    """The catalog entry of ``action_type`` in the catalog of ``pack`` (a built-in pack name or a
    pack directory), else in a built-in pack's catalog (an action a cycle of another pack stored).
    Raises ``KeyError`` if no catalog has it."""
    for spec in all_specs(pack):
        if spec.type == action_type:
            return spec
    raise KeyError(f"action type {action_type!r} is in no catalog (pack {pack}, or a built-in pack)")


def all_specs(pack: str | Path) -> list[ActionSpec]:
    """Every catalog entry of ``pack`` and of the built-in packs (each type once, ``pack``'s first)."""
    from opsloop.packs import BUILTIN, load_pack

    out: dict[str, ActionSpec] = {}
    for name in dict.fromkeys([str(pack), *BUILTIN]):
        for spec in load_catalog(load_pack(name).catalog_path).actions:
            out.setdefault(spec.type, spec)
    return list(out.values())


def _fill_params(spec: ActionSpec, incident: Incident) -> dict[str, Any]:
    """Parameters from the incident's computed facts (never from free text)."""
    facts: dict[str, Any] = {
        "start": incident.first_seen.isoformat(),
        "end": incident.last_seen.isoformat(),
        "summary": incident.title,
        "message": f"We are investigating: {incident.title}",
        "incident_id": incident.id,
    }
    out: dict[str, Any] = {}
    for name, p in spec.params.items():
        if p.label is not None:
            values = incident.affected.get(p.label, [])
            value: Any = list(values) if p.type == "array" else ",".join(values)
        else:
            value = facts.get(name)
        if value not in (None, [], ""):
            out[name] = value
    return out


def escalation_action(incident: Incident, catalog: Catalog, action_type: str, age_hours: float,
                      policy: Policy) -> ProposedAction | None:
    """The catalog action ``action_type`` proposed to escalate ``incident``, open and unacknowledged
    for ``age_hours`` hours; ``None`` when the catalog lacks the type or its required parameters
    cannot be filled. Its idempotency key hashes incident, type and "escalation", so an incident is
    escalated once; approval follows the policy as for any proposal."""
    try:
        spec = catalog.get(action_type)
    except KeyError:
        return None
    params = _fill_params(spec, incident)
    if "summary" in spec.params:
        params["summary"] = f"Escalation: {incident.title} ({incident.severity.value}) open and unacknowledged " \
                            f"for {age_hours:.0f} h"
    if any(p.required and name not in params for name, p in spec.params.items()):
        return None
    key = stable_hash([incident.id, spec.type, "escalation"], 32)
    confidence = incident.assessment.confidence if incident.assessment else 0.3
    auto = policy.auto_executes(spec.risk, confidence, spec.type, read_only=spec.read_only)
    return ProposedAction(
        id="act-" + key[:12], incident_id=incident.id, type=spec.type, params=params,
        rationale=f"{spec.description} (escalation: open and unacknowledged for {age_hours:.0f} h)",
        risk=spec.risk, confidence=confidence, requires_approval=not auto, status=ActionStatus.proposed,
        idempotency_key=key,
    )


def propose_actions(incident: Incident, catalog: Catalog, policy: Policy, max_actions: int = 3) -> list[ProposedAction]:
    """Catalog actions for the incident's category: at most ``max_actions``, the most specific to the
    category first (fewest categories), then lowest risk. An action may run without approval only
    if the policy allows its type (the pack's ``auto_execute`` list), risk and confidence.

    Actions whose required parameters cannot be filled from the incident's facts are skipped. The
    idempotency key hashes incident id, type and parameters, so re-proposing is a no-op.
    """
    category = incident.assessment.category if incident.assessment else ""
    confidence = incident.assessment.confidence if incident.assessment else 0.3
    order = {Risk.low: 0, Risk.medium: 1, Risk.high: 2, Risk.critical: 3}
    out = []
    for spec in sorted(catalog.for_category(category), key=lambda s: (len(s.categories), order[s.risk])):
        params = _fill_params(spec, incident)
        if any(p.required and name not in params for name, p in spec.params.items()):
            continue
        key = stable_hash([incident.id, spec.type, params], 32)
        auto = policy.auto_executes(spec.risk, confidence, spec.type, read_only=spec.read_only)
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
