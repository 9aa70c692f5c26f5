"""de-duplicate runs and check-ins per athlete

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 22:10:00

The uuid was unique across all athletes, so one athlete publishing another's uuid made the
other's real message a `duplicate`. The key is now (athlete_id, uuid) (DESIGN.md, version 2).
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("runs", "checkins")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_uuid", type_="unique")
            batch_op.create_unique_constraint(f"uq_{table}_athlete_uuid", ["athlete_id", "uuid"])


def downgrade() -> None:
    # Fails, as it should, when two athletes' messages share a uuid.
    for table in TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_constraint(f"uq_{table}_athlete_uuid", type_="unique")
            batch_op.create_unique_constraint(f"uq_{table}_uuid", ["uuid"])
