"""approval gate: who proposed an action, per-approver approvals, API tokens

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("actions") as batch:
        batch.add_column(sa.Column("proposed_by", sa.String(128), nullable=False, server_default="opsloop"))
        batch.add_column(sa.Column("approved_at", UTCDateTime(), nullable=True))
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("action_id", sa.String(64), sa.ForeignKey("actions.id"), nullable=False, index=True),
        sa.Column("approver", sa.String(128), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("action_id", "approver"),
    )
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tokens")
    op.drop_table("approvals")
    with op.batch_alter_table("actions") as batch:
        batch.drop_column("approved_at")
        batch.drop_column("proposed_by")
