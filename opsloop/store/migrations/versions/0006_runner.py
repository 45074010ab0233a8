"""unattended running: cycle outcome and attempts, incident lifecycle, leases, watermarks,
pushed tickets and logs, Alertmanager alerts, the LLM answer cache

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cycles") as t:
        t.add_column(sa.Column("trigger", sa.String(16), nullable=False, server_default="cli"))
        t.add_column(sa.Column("outcome", sa.String(16), nullable=False, server_default="ok"))
        t.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="1"))
        t.add_column(sa.Column("finished_at", UTCDateTime(), nullable=True))
    with op.batch_alter_table("incidents") as t:
        t.add_column(sa.Column("acknowledged_by", sa.String(128), nullable=True))
        t.add_column(sa.Column("acknowledged_at", UTCDateTime(), nullable=True))
        t.add_column(sa.Column("resolved_at", UTCDateTime(), nullable=True))
        t.add_column(sa.Column("clear_windows", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("escalated_at", UTCDateTime(), nullable=True))
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("acquired_at", UTCDateTime(), nullable=False),
        sa.Column("renewed_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "watermarks",
        sa.Column("name", sa.String(256), primary_key=True),
        sa.Column("value", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
    )
    op.create_table(
        "pushed_signals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False, index=True),
        sa.Column("external_id", sa.String(256), nullable=True),
        sa.Column("ts", UTCDateTime(), nullable=False, index=True),
        sa.Column("row", sa.JSON(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "external_id"),
    )
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(128), nullable=False, index=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False, index=True),
        sa.Column("ends_at", UTCDateTime(), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("fingerprint", "status", "starts_at"),
    )
    op.create_table(
        "llm_cache",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("value", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for name in ("llm_cache", "alerts", "pushed_signals", "watermarks", "leases"):
        op.drop_table(name)
    with op.batch_alter_table("incidents") as t:
        for col in ("escalated_at", "clear_windows", "resolved_at", "acknowledged_at", "acknowledged_by"):
            t.drop_column(col)
    with op.batch_alter_table("cycles") as t:
        for col in ("finished_at", "attempts", "outcome", "trigger"):
            t.drop_column(col)
