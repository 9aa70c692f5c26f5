"""deliveries.claimed_by: which service instance claimed a delivery

A service that crashes mid-send leaves its claimed deliveries `sending`; with the claimer
recorded, the same instance takes its own back as soon as it restarts instead of waiting for
the claim to go stale.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 22:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("deliveries", sa.Column("claimed_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("claimed_by")
