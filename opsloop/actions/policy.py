"""The approval policy: what may run by itself, how many approvers the rest need, and for how long
an approval stays valid. Enforced by :mod:`opsloop.store.repository`, never by a UI."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from opsloop.domain import Risk


class Policy(BaseModel):
    """``auto_execute_confidence``: a ``low``-risk action whose assessment confidence is at least this
    runs without approval. ``approvers``: distinct approvers needed per risk (``critical`` needs two).
    ``approval_ttl_seconds``: an approval older than this no longer allows execution, and a proposal
    older than this expires. Nobody may approve an action they proposed by hand; a rejection needs a
    reason."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    auto_execute_confidence: float = 0.7
    approvers: dict[Risk, int] = {Risk.low: 1, Risk.medium: 1, Risk.high: 1, Risk.critical: 2}
    approval_ttl_seconds: float = 4 * 3600.0

    def auto_executes(self, risk: Risk, confidence: float) -> bool:
        return risk == Risk.low and confidence >= self.auto_execute_confidence

    def approvers_needed(self, risk: Risk) -> int:
        return self.approvers[risk]


class PolicyViolation(PermissionError):
    """The actor may not make this change (e.g. approving their own proposal)."""
