"""Sending digests: a claim, not a check.

The `digests` row for (coach, period end) is inserted with `ON CONFLICT DO NOTHING`, and only the
transaction that inserted it builds the content and writes the outbox rows, in that same
transaction. A restart, a retried job or a second scheduler finds the period taken and does
nothing, so no coach ever gets one period twice.

Coaches are sent in chunks, one transaction each: the chunk's claims in one statement, its
coaches' rows read together (`build_digests`), the digests and outbox rows written together. A
chunk that fails is sent again coach by coach, each in a transaction of its own, so a failing
coach costs its chunk a second pass and never costs the other coaches their digests.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, bindparam, func, select, update

from db.bulk import insert_or_skip
from db.models import Coach, Delivery, Digest
from notifier.digest.content import build_digests
from notifier.digest.periods import WEEK_DAYS, local_instant, period_ending, require_aware
from notifier.routing import COACH_CHANNELS, parse_channels
from rules.config import RulesConfig

__all__ = ["send_due_digests"]

log = logging.getLogger(__name__)

CHUNK: Final = {"postgresql": 200, "sqlite": 25}
"""Coaches per transaction. On SQLite a transaction holds the one write lock from its claim to
its commit, and the ingest waits for it: 25 coaches of 20 athletes with 30 days of history held
it for 0.13-0.16 s. On PostgreSQL the claims lock only their own rows; larger chunks spread each
transaction's cost over more digests."""


@dataclass(frozen=True, slots=True)
class _Due:
    """A coach's period to send: claimed by `end`, reporting up to `until`."""

    coach: Any
    cadence: str
    start: datetime
    end: datetime
    until: datetime
    channels: tuple[str, ...]


def send_due_digests(
    engine: Engine,
    now: datetime,
    *,
    coach_id: str | None = None,
    force: bool = False,
    available_channels: Collection[str] = COACH_CHANNELS,
    config: RulesConfig | None = None,
) -> list[int]:
    """Claim, build and enqueue every digest due at `now`; returns the ids of new digests.

    A coach's due period is `period_ending(...)` of their settings; coaches with `off` are
    skipped, and so is a period that ended before the coach was created (no digest for a time
    they were not here). `force` sends to any coach (`off` included) a period ending at `now`
    truncated to the minute and starting where their latest digest ended (else one day, or one
    week for weekly coaches, before), so forcing twice in one minute sends once.

    A coach's claim, content and outbox rows (one per coach channel among
    `available_channels`, due now) commit together or not at all. A period already claimed is
    skipped. With `coach_id` an unknown coach raises `LookupError` and any failure propagates;
    without it a failing coach is logged and the others still get theirs (its claim rolls
    back, so the next run tries again). `config` is the rules configuration the digest's
    numbers follow (ACWR windows, pain-trend threshold); defaults when None.
    """
    require_aware(now)
    now = now.astimezone(UTC)
    with engine.connect() as conn:
        query = select(Coach).order_by(Coach.id)
        if coach_id is not None:
            query = query.where(Coach.id == coach_id)
        elif not force:
            query = query.where(Coach.digest != "off")
        coaches = conn.execute(query).all()
        latest: dict[str, datetime] = {}
        if force:
            latest_query = select(Digest.coach_id, func.max(Digest.period_end)).group_by(
                Digest.coach_id
            )
            if coach_id is not None:
                latest_query = latest_query.where(Digest.coach_id == coach_id)
            latest = {row[0]: row[1] for row in conn.execute(latest_query)}
    if coach_id is not None and not coaches:
        raise LookupError(f"unknown coach {coach_id!r}")

    due: list[_Due] = []
    for coach in coaches:
        try:
            item = _due(coach, now, force, latest.get(coach.id), available_channels)
        except Exception:
            if coach_id is not None:
                raise
            log.exception("digest for coach %s failed; the next run tries again", coach.id)
            continue
        if item is not None:
            due.append(item)
    if coach_id is not None:
        return _send(engine, due, now, config)

    created: list[int] = []
    size = CHUNK.get(engine.dialect.name, 1)
    for first in range(0, len(due), size):
        chunk = due[first : first + size]
        try:
            created += _send(engine, chunk, now, config)
        except Exception:
            if len(chunk) == 1:
                log.exception(
                    "digest for coach %s failed; the next run tries again", chunk[0].coach.id
                )
                continue
            log.warning(
                "digests for coaches %s to %s failed together; sending them one by one",
                chunk[0].coach.id,
                chunk[-1].coach.id,
                exc_info=True,
            )
            created += _one_by_one(engine, chunk, now, config)
    return created


def _one_by_one(
    engine: Engine, due: Sequence[_Due], now: datetime, config: RulesConfig | None
) -> list[int]:
    """Each coach in a transaction of its own: a failing one is logged and the others sent."""
    created: list[int] = []
    for item in due:
        try:
            created += _send(engine, [item], now, config)
        except Exception:
            log.exception("digest for coach %s failed; the next run tries again", item.coach.id)
    return created


def _due(
    coach: Any,
    now: datetime,
    force: bool,
    latest_end: datetime | None,
    available: Collection[str],
) -> _Due | None:
    """The coach's period due at `now` with the channels it goes out on, or None."""
    period = _due_period(coach, now, force, latest_end)
    if period is None:
        return None
    cadence, start, end = period
    channels = tuple(
        channel
        for channel in parse_channels(coach.channels, COACH_CHANNELS)
        if channel in available and (channel != "webhook" or coach.webhook_url)
    )
    # A forced period is claimed by the minute (two `--now` runs in one minute send one
    # digest) but reports up to this instant; the next period starts at the claimed minute,
    # so an alert of the last seconds may show twice, never not at all.
    return _Due(coach, cadence, start, end, now if force else end, channels)


def _due_period(
    coach: Any, now: datetime, force: bool, latest_end: datetime | None
) -> tuple[str, datetime, datetime] | None:
    """(cadence, start, end) of the coach's period due at `now`, or None."""
    cadence = "weekly" if coach.digest == "weekly" else "daily"
    if not force:
        period = period_ending(coach.timezone, coach.digest, coach.digest_hour, now)
        if period is None or period[1] < coach.created_at:
            return None
        return cadence, period[0], period[1]
    end = now.replace(second=0, microsecond=0)
    if latest_end is not None and latest_end < end:
        return cadence, latest_end, end
    zone = ZoneInfo(coach.timezone)
    local_end = end.astimezone(zone)
    step = timedelta(days=WEEK_DAYS if cadence == "weekly" else 1)
    # One local day (week) back on the wall clock, for the same reason as period_ending.
    start = local_instant(local_end.date() - step, local_end.time(), zone)
    return cadence, start, end


def _send(
    engine: Engine, due: Sequence[_Due], now: datetime, config: RulesConfig | None
) -> list[int]:
    """Claim these coaches' periods in one transaction; build and store the digests and their
    deliveries of the periods won. All or nothing: an error rolls back every claim."""
    if not due:
        return []
    with engine.begin() as conn:
        # The claims are the transaction's first statement: on SQLite it takes the write lock
        # before anything is read, so a second writer waits instead of failing on a stale read.
        won = {
            row.coach_id: row.id
            for row in conn.execute(
                insert_or_skip(conn, Digest, "coach_id", "period_end").returning(
                    Digest.id, Digest.coach_id
                ),
                [
                    {
                        "coach_id": item.coach.id,
                        "period": item.cadence,
                        "period_start": item.start,
                        "period_end": item.end,
                        "created_at": now,
                        "subject": "",
                        "text": "",
                        "html": "",
                        "data": {},
                    }
                    for item in due
                ],
            )
        }
        for item in due:
            if item.coach.id not in won:
                log.debug(
                    "digest of coach %s ending %s already claimed",
                    item.coach.id,
                    item.end.isoformat(),
                )
        mine = [item for item in due if item.coach.id in won]
        if not mine:
            return []
        contents = build_digests(
            conn, {item.coach.id: (item.start, item.until) for item in mine}, now, config
        )
        conn.execute(
            update(Digest).where(Digest.id == bindparam("digest_id")),
            [
                {
                    "digest_id": won[item.coach.id],
                    "subject": content.subject,
                    "text": content.text,
                    "html": content.html,
                    "data": {
                        **content.data,
                        "digest_id": won[item.coach.id],
                        "period": item.cadence,
                    },
                }
                for item in mine
                for content in (contents[item.coach.id],)
            ],
        )
        # Without RETURNING, psycopg sends the rows as one prepared statement in a pipeline;
        # with it, SQLAlchemy writes them into one statement whose text psycopg parses again
        # for every chunk.
        deliveries = [
            {
                "dedup_key": f"digest:{won[item.coach.id]}:{channel}",
                "alert_id": None,
                "digest_id": won[item.coach.id],
                "reason": "digest",
                "recipient_kind": "coach",
                "recipient_id": item.coach.id,
                "athlete_id": None,
                "channel": channel,
                "status": "pending",
                "attempts": 0,
                "created_at": now,
                "due_at": now,
            }
            for item in mine
            for channel in item.channels
        ]
        if deliveries:
            conn.execute(insert_or_skip(conn, Delivery, "dedup_key"), deliveries)
    for item in mine:
        log.info(
            "digest %d for coach %s (%s to %s) queued on %s",
            won[item.coach.id],
            item.coach.id,
            item.start.isoformat(),
            item.end.isoformat(),
            ", ".join(item.channels) or "no channel",
        )
    return [int(won[item.coach.id]) for item in mine]
