"""triage v2: check-in signs, the coach's alert text, reopened alerts

RULES.md version 2 adds three optional check-in fields (absent = false), a coach text in the
third person for every alert, and the instant an acknowledged red-flag alert opened again
(its escalation period starts there). Recommendations are stored as text without a check
constraint, so the new `emergency` needs no change here.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 21:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import db.types

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SIGNS = ("redness_warmth", "numbness", "stopped_run")


def upgrade() -> None:
    for name in _SIGNS:
        op.add_column(
            "checkins",
            sa.Column(name, sa.Boolean(), nullable=False, server_default=sa.false()),
        )
    op.add_column("alerts", sa.Column("coach_message", sa.Text(), nullable=True))
    op.add_column(
        "alerts", sa.Column("reopened_at", db.types.UTCDateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    with op.batch_alter_table("alerts") as batch:
        batch.drop_column("reopened_at")
        batch.drop_column("coach_message")
    with op.batch_alter_table("checkins") as batch:
        for name in reversed(_SIGNS):
            batch.drop_column(name)
