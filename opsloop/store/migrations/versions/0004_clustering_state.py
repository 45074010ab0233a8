"""clustering state: embedding cache, ticket themes, drain3 snapshots

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "embedding_cache",
        sa.Column("key", sa.String(128), primary_key=True),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "ticket_themes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("centroid", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("last_seen", UTCDateTime(), nullable=True),
    )
    op.create_table(
        "drain_state",
        sa.Column("service", sa.String(128), primary_key=True),
        sa.Column("snapshot", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    for table in ("drain_state", "ticket_themes", "embedding_cache"):
        op.drop_table(table)
