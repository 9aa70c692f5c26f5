"""Retention: dead letters and finished delivery records are kept for a limited time.

`purge` deletes dead letters received more than `dead_letter_days` ago
(KNEEGUARD_DEAD_LETTER_RETENTION_DAYS, default 30) and delivery records created more than
`delivery_days` ago (KNEEGUARD_DELIVERY_RETENTION_DAYS, default 180). Only finished deliveries
go: `sent`, `dead`, and `failed` with no next attempt (a permanent failure). A delivery still
`pending`, `sending` or `failed` awaiting a retry is kept however old, so the purge can never
lose an alert on its way out.

Rows go in batches of `batch_size`, one short transaction each, so a first purge of a large
backlog never holds a long transaction or a lock on the whole table. Running it twice, or from
two replicas at once, deletes each row once: the job needs no claim.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Engine, Table, and_, delete, or_, select

from db.models import Base

DEAD_LETTERS = Base.metadata.tables["dead_letters"]
DELIVERIES = Base.metadata.tables["deliveries"]
DEFAULT_BATCH_SIZE = 1000


@dataclass(frozen=True, slots=True)
class Purged:
    """How many rows `purge` deleted."""

    dead_letters: int
    deliveries: int

    @property
    def total(self) -> int:
        return self.dead_letters + self.deliveries

    def summary(self) -> str:
        return (
            f"retention purged {self.dead_letters} dead letters "
            f"and {self.deliveries} delivery records"
        )


def finished_delivery() -> ColumnElement[bool]:
    """A delivery nothing will touch again."""
    return or_(
        DELIVERIES.c.status.in_(("sent", "dead")),
        and_(DELIVERIES.c.status == "failed", DELIVERIES.c.due_at.is_(None)),
    )


def purge(
    engine: Engine,
    now: datetime,
    dead_letter_days: int,
    delivery_days: int,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Purged:
    """Delete dead letters older than `dead_letter_days` and finished deliveries older than
    `delivery_days`, as of `now` (timezone-aware). A row exactly at the limit is kept."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if dead_letter_days < 1 or delivery_days < 1 or batch_size < 1:
        raise ValueError("retention days and batch size must be positive")
    dead_letters = _delete_in_batches(
        engine,
        DEAD_LETTERS,
        DEAD_LETTERS.c.received_at < now - timedelta(days=dead_letter_days),
        batch_size,
    )
    deliveries = _delete_in_batches(
        engine,
        DELIVERIES,
        and_(DELIVERIES.c.created_at < now - timedelta(days=delivery_days), finished_delivery()),
        batch_size,
    )
    return Purged(dead_letters, deliveries)


def _delete_in_batches(
    engine: Engine, table: Table, condition: ColumnElement[bool], batch_size: int
) -> int:
    total = 0
    while True:
        batch = select(table.c.id).where(condition).order_by(table.c.id).limit(batch_size)
        with engine.begin() as conn:
            # The condition is repeated outside the subquery so that PostgreSQL re-checks it
            # on a row another transaction changed meanwhile (a failed delivery re-queued).
            deleted = int(
                conn.execute(delete(table).where(table.c.id.in_(batch), condition)).rowcount
            )
        total += deleted
        if deleted < batch_size:
            return total
