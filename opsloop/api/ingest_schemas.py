"""Request and response bodies of the ingest endpoints (:mod:`opsloop.api.ingest`).

* :class:`AlertmanagerWebhook` -- Alertmanager's webhook payload, version 4
  (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config).
* :class:`TicketIn` (a ticket system's webhook) and :class:`SimpleTicketIn` (a form's
  ``title, description, email, priority``), both mapped to the tickets contract by ``record()``.
* :class:`IngestCounts` -- what a push stored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from opsloop.api.schemas import IsoDateTime
from opsloop.data.contracts import TICKETS
from opsloop.domain import Alert, stable_hash, utc
from opsloop.store.ingest import MAX_EXTERNAL_ID

#: Keys a ticket's ``labels`` may not use: the tickets contract's columns and ``requester``.
RESERVED_LABELS = frozenset({*TICKETS.columns, "requester"})
LabelValue = str | int | float | bool


class IngestCounts(BaseModel):
    """What one push did: ``received`` items, of which ``stored`` were new and ``duplicates`` had
    been stored before (or came twice in the request)."""

    received: int
    stored: int
    duplicates: int


class AlertmanagerAlert(BaseModel):
    """One alert of an Alertmanager webhook. ``endsAt`` is ``0001-01-01T00:00:00Z`` while an alert
    fires (Alertmanager's zero time): read as no end."""

    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: IsoDateTime
    endsAt: IsoDateTime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=128)

    def alert(self, group_key: str) -> Alert:
        """As a :class:`~opsloop.domain.Alert` (UTC times, the zero end time as ``None``)."""
        ends = self.endsAt if self.endsAt is not None and self.endsAt.year > 1 else None
        return Alert(fingerprint=self.fingerprint, status=self.status, labels=dict(self.labels),
                     annotations=dict(self.annotations), starts_at=self.startsAt, ends_at=ends,
                     group_key=group_key)


class AlertmanagerWebhook(BaseModel):
    """Alertmanager's webhook payload, ``version`` ``"4"``; unknown keys are ignored (Alertmanager
    adds some, e.g. ``truncatedAlerts``)."""

    model_config = ConfigDict(extra="ignore")
    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = ""
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    truncatedAlerts: StrictInt = 0
    alerts: list[AlertmanagerAlert]


def _created(value: datetime | None) -> str:
    return utc(value or datetime.now(UTC)).isoformat()


class TicketIn(BaseModel):
    """A ticket system's webhook: ``external_id`` (unique in that system: pushing it again stores
    nothing), ``title``, ``description`` (the title when empty), ``requester``, ``priority``,
    ``channel``, ``labels`` (label -> value, kept as ticket label columns, e.g. a customer or a
    region the pack's blast radius names) and ``created_at`` (default: now, UTC)."""

    model_config = ConfigDict(extra="forbid")
    external_id: str = Field(min_length=1, max_length=MAX_EXTERNAL_ID)
    title: str = Field(min_length=1)
    description: str = ""
    requester: str | None = None
    priority: str | None = None
    channel: str | None = None
    labels: dict[str, LabelValue] = Field(default_factory=dict)
    created_at: IsoDateTime | None = None

    @field_validator("labels")
    @classmethod
    def _not_reserved(cls, v: dict[str, LabelValue]) -> dict[str, LabelValue]:
        clash = sorted(k for k in v if k in RESERVED_LABELS or not k.strip())
        if clash:
            raise ValueError(f"label name(s) {clash} are empty or reserved (ticket columns: "
                             f"{', '.join(sorted(RESERVED_LABELS))})")
        return v

    def record(self) -> dict[str, Any]:
        """The ticket in the tickets contract's columns (labels as extra columns)."""
        row: dict[str, Any] = {"id": self.external_id, "created_at": _created(self.created_at),
                               "subject": self.title, "body": self.description.strip() or self.title,
                               "priority": self.priority, "channel": self.channel,
                               "requester": self.requester}
        row.update({k: str(v) for k, v in self.labels.items()})
        return {k: v for k, v in row.items() if v is not None}


class SimpleTicketIn(BaseModel):
    """A simple ticket (a web form): ``title``, ``description``, ``email`` (kept as the
    ``requester`` label), ``priority`` and optionally ``created_at`` (default now, UTC). Its
    external id is a hash of title, description, email and priority, so pushing it again stores
    nothing (two identical submissions are one ticket)."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1)
    description: str = ""
    email: str | None = None
    priority: str | None = None
    created_at: IsoDateTime | None = None

    def record(self) -> dict[str, Any]:
        """The ticket in the tickets contract's columns."""
        ext = "sha256:" + stable_hash([self.title, self.description, self.email, self.priority], 32)
        row = {"id": ext, "created_at": _created(self.created_at), "subject": self.title,
               "body": self.description.strip() or self.title, "priority": self.priority,
               "requester": self.email}
        return {k: v for k, v in row.items() if v is not None}


def inline_schema(model: type[BaseModel]) -> dict[str, Any]:
    """``model``'s JSON schema with its nested models' definitions (``$defs``) inlined, so that it
    can stand alone in an OpenAPI request body."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(defs[ref.removeprefix("#/$defs/")])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def body_schema(*models: type[BaseModel]) -> dict[str, Any]:
    """An OpenAPI request-body schema: one of ``models`` or a JSON array of them."""
    one = {"anyOf": [inline_schema(m) for m in models]}
    return {"anyOf": [*one["anyOf"], {"type": "array", "items": one}]}


#: Input field names of a ticket by the tickets contract column they fill.
TICKET_FIELDS = {"id": "external_id", "subject": "title", "body": "description", "created_at": "created_at"}
