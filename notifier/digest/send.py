"""Sending digests: a claim, not a check.

The `digests` row for (coach, period end) is inserted with `ON CONFLICT DO NOTHING`, and only the
transaction that inserted it builds the content and writes the outbox rows, in that same
transaction. A restart, a retried job or a second scheduler finds the period taken and does
nothing, so no coach ever gets one period twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, func, select, update

from db.bulk import insert_or_skip
from db.models import Coach, Digest
from notifier.digest.content import build_digest
from notifier.digest.periods import WEEK_DAYS, local_instant, period_ending, require_aware
from notifier.routing import COACH_CHANNELS, insert_deliveries, parse_channels
from rules.config import RulesConfig

__all__ = ["send_due_digests"]

log = logging.getLogger(__name__)


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

    Each coach gets its own transaction: the claim, the content and the outbox rows (one per
    coach channel among `available_channels`, due now) commit together or not at all. A period
    already claimed is skipped. With `coach_id` an unknown coach raises `LookupError` and any
    failure propagates; without it a failing coach is logged and the others still get theirs
    (its claim rolls back, so the next run tries again). `config` is the rules configuration
    the digest's numbers follow (ACWR windows, pain-trend threshold); defaults when None.
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

    created: list[int] = []
    for coach in coaches:
        try:
            digest_id = _send_one(
                engine, coach, now, force, latest.get(coach.id), available_channels, config
            )
        except Exception:
            if coach_id is not None:
                raise
            log.exception("digest for coach %s failed; the next run tries again", coach.id)
            continue
        if digest_id is not None:
            created.append(digest_id)
    return created


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


def _send_one(
    engine: Engine,
    coach: Any,
    now: datetime,
    force: bool,
    latest_end: datetime | None,
    available: Collection[str],
    config: RulesConfig | None = None,
) -> int | None:
    """Claim one coach's period; if won, build and store the digest and its deliveries."""
    due = _due_period(coach, now, force, latest_end)
    if due is None:
        return None
    cadence, start, end = due
    channels = [
        channel
        for channel in parse_channels(coach.channels, COACH_CHANNELS)
        if channel in available and (channel != "webhook" or coach.webhook_url)
    ]
    with engine.begin() as conn:
        # The claim is the transaction's first statement: on SQLite it takes the write lock
        # before anything is read, so a second writer waits instead of failing on a stale read.
        digest_id = conn.execute(
            insert_or_skip(conn, Digest, "coach_id", "period_end")
            .values(
                coach_id=coach.id,
                period=cadence,
                period_start=start,
                period_end=end,
                created_at=now,
                subject="",
                text="",
                html="",
                data={},
            )
            .returning(Digest.id)
        ).scalar_one_or_none()
        if digest_id is None:
            log.debug("digest of coach %s ending %s already claimed", coach.id, end.isoformat())
            return None
        # A forced period is claimed by the minute (two `--now` runs in one minute send one
        # digest) but reports up to this instant; the next period starts at the claimed minute,
        # so an alert of the last seconds may show twice, never not at all.
        content = build_digest(conn, coach.id, start, now if force else end, now, config)
        conn.execute(
            update(Digest)
            .where(Digest.id == digest_id)
            .values(
                subject=content.subject,
                text=content.text,
                html=content.html,
                data={**content.data, "digest_id": digest_id, "period": cadence},
            )
        )
        insert_deliveries(
            conn,
            [
                {
                    "dedup_key": f"digest:{digest_id}:{channel}",
                    "alert_id": None,
                    "digest_id": digest_id,
                    "reason": "digest",
                    "recipient_kind": "coach",
                    "recipient_id": coach.id,
                    "athlete_id": None,
                    "channel": channel,
                    "status": "pending",
                    "attempts": 0,
                    "created_at": now,
                    "due_at": now,
                }
                for channel in channels
            ],
        )
    log.info(
        "digest %d for coach %s (%s to %s) queued on %s",
        digest_id,
        coach.id,
        start.isoformat(),
        end.isoformat(),
        ", ".join(channels) or "no channel",
    )
    return int(digest_id)
