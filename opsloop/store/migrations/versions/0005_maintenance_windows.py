"""maintenance windows: declared spans whose anomalies are context, not incidents

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.models import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "maintenance_windows",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_maintenance_windows_start", "maintenance_windows", ["start"])
    op.create_index("ix_maintenance_windows_end", "maintenance_windows", ["end"])


def downgrade() -> None:
    op.drop_index("ix_maintenance_windows_end", "maintenance_windows")
    op.drop_index("ix_maintenance_windows_start", "maintenance_windows")
    op.drop_table("maintenance_windows")
