"""series snapshots: the series behind each anomaly of an incident, with its expected band

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

from opsloop.store.models import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "anomaly_series",
        sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.id"), primary_key=True),
        sa.Column("anomaly_key", sa.String(64), primary_key=True),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("unit", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("detector", sa.String(32), nullable=False),
        sa.Column("start", UTCDateTime(), nullable=False),
        sa.Column("end", UTCDateTime(), nullable=False),
        sa.Column("peak", UTCDateTime(), nullable=False),
        sa.Column("points", sa.JSON(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("anomaly_series")
