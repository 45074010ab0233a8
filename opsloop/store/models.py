"""SQLAlchemy 2.0 table models of the store (cycles, incidents, actions, audit, quarantine).

Timestamps are stored as UTC (naive in SQLite, ``timestamptz`` in PostgreSQL) and always returned
as aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """A ``DateTime`` that stores UTC and returns aware UTC datetimes on every backend."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class CycleRow(Base):
    __tablename__ = "cycles"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    window_start: Mapped[datetime]
    window_end: Mapped[datetime]
    started_at: Mapped[datetime]
    report: Mapped[dict[str, Any]]
    trigger: Mapped[str] = mapped_column(String(16), default="cli")
    outcome: Mapped[str] = mapped_column(String(16), default="ok")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IncidentRow(Base):
    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(16))
    category: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    first_seen: Mapped[datetime]
    last_seen: Mapped[datetime]
    times_seen: Mapped[int] = mapped_column(Integer, default=1)
    data: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    acknowledged_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    clear_windows: Mapped[int] = mapped_column(Integer, default=0)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ActionRow(Base):
    __tablename__ = "actions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), index=True)
    type: Mapped[str] = mapped_column(String(64))
    params: Mapped[dict[str, Any]]
    rationale: Mapped[str] = mapped_column(Text)
    risk: Mapped[str] = mapped_column(String(16))
    confidence: Mapped[float] = mapped_column(Float)
    requires_approval: Mapped[bool] = mapped_column(Boolean)
    status: Mapped[str] = mapped_column(String(16), index=True)
    idempotency_key: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    proposed_by: Mapped[str] = mapped_column(String(128), default="opsloop")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class ApprovalRow(Base):
    """One approver's approval of one action (critical actions need two distinct approvers)."""

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("action_id", "approver"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action_id: Mapped[str] = mapped_column(ForeignKey("actions.id"), index=True)
    approver: Mapped[str] = mapped_column(String(128))
    at: Mapped[datetime]


class TokenRow(Base):
    """An API token: only its SHA-256 is stored."""

    __tablename__ = "tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditRow(Base):
    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    verb: Mapped[str] = mapped_column(String(32))
    subject: Mapped[str] = mapped_column(String(128))
    detail: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class QuarantineRow(Base):
    __tablename__ = "quarantine"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    cycle_id: Mapped[str] = mapped_column(String(64), index=True)
    file: Mapped[str] = mapped_column(Text)
    line: Mapped[int] = mapped_column(Integer)
    field: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reason: Mapped[str] = mapped_column(Text)


class RagDocumentRow(Base):
    """One ingested retrieval document (see :class:`opsloop.rag.store.KnowledgeBase`).

    ``path`` is the document's name as cited (relative to the ingested root); ``content_hash`` hashes
    its bytes and the chunking parameters, so re-ingesting an unchanged document is a no-op.
    """

    __tablename__ = "rag_documents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024), unique=True)
    source: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(64), nullable=True)
    meta: Mapped[dict[str, Any]]
    n_chunks: Mapped[int] = mapped_column(Integer)
    ingested_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class RagChunkRow(Base):
    """One chunk of a retrieval document; ``content_hash`` hashes the text that is embedded."""

    __tablename__ = "rag_chunks"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("rag_documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    section: Mapped[str] = mapped_column(Text)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]]


class EmbeddingCacheRow(Base):
    """A sentence embedding by ``<embedder>:<sha256 of text>``; ``vector`` is float32 bytes."""

    __tablename__ = "embedding_cache"
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    vector: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]


class ThemeRow(Base):
    """A ticket theme remembered across cycles (centroid as float32 bytes) for stable cluster ids."""

    __tablename__ = "ticket_themes"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    centroid: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    label: Mapped[str] = mapped_column(Text)
    last_seen: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class DrainStateRow(Base):
    """A drain3 template-miner snapshot per log service."""

    __tablename__ = "drain_state"
    service: Mapped[str] = mapped_column(String(128), primary_key=True)
    snapshot: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]


class MaintenanceRow(Base):
    """A declared maintenance window (see :class:`opsloop.domain.MaintenanceWindow`)."""

    __tablename__ = "maintenance_windows"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    start: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    end: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    labels: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]


class LeaseRow(Base):
    """A named lease (e.g. the cycle runner's): one holder at a time until ``expires_at``."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(256))
    acquired_at: Mapped[datetime]
    renewed_at: Mapped[datetime]
    expires_at: Mapped[datetime]


class WatermarkRow(Base):
    """How far a named stream has been processed: the runner's last completed window end, or a
    source's newest complete event time."""

    __tablename__ = "watermarks"
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[datetime]
    updated_at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class PushedSignalRow(Base):
    """A ticket or log line pushed to the API (``kind`` ``tickets`` or ``logs``), in its contract's
    columns (``row``); ``ts`` is its event time. Tickets are unique by external id."""

    __tablename__ = "pushed_signals"
    __table_args__ = (UniqueConstraint("kind", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    external_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    ts: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    row: Mapped[dict[str, Any]]
    received_at: Mapped[datetime]


class AlertRow(Base):
    """An Alertmanager alert as received, unique by (fingerprint, status, starts_at)."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("fingerprint", "status", "starts_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    fingerprint: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    labels: Mapped[dict[str, Any]]
    annotations: Mapped[dict[str, Any]]
    group_key: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime]


class LLMCacheRow(Base):
    """An LLM answer by ``<incident fingerprint>:<evidence hash>`` (see :mod:`opsloop.llm`)."""

    __tablename__ = "llm_cache"
    key: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class AnomalySeriesRow(Base):
    """The series behind one anomaly of an incident, snapshotted at cycle time (see
    :mod:`opsloop.store.series`); ``points`` column-wise: ``{"ts": [...], "observed": [...], ...}``."""

    __tablename__ = "anomaly_series"
    incident_id: Mapped[str] = mapped_column(ForeignKey("incidents.id"), primary_key=True)
    anomaly_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    metric: Mapped[str] = mapped_column(Text)
    labels: Mapped[dict[str, Any]]
    unit: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(8))
    detector: Mapped[str] = mapped_column(String(32))
    start: Mapped[datetime]
    end: Mapped[datetime]
    peak: Mapped[datetime]
    points: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
