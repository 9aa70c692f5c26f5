"""Who hears about an alert, on which channels, and when (RULES.md severities).

- `info`: nobody now; it goes into the coach's next digest.
- `warning`: the athlete, on their channels, held until their quiet hours end; the coach reads
  it in the digest.
- `urgent`: the athlete and the coach at once, quiet hours or not.
- escalation (urgent, unacknowledged after `lifecycle.escalation_hours`, default 2): the athlete
  again and the coach, once; a red flag reported again after acknowledgement re-arms it.

`enqueue_alerts` writes outbox rows in the caller's transaction, so an alert and the deliveries
it needs are committed together or not at all.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, func, insert, select, update

from db.bulk import insert_or_skip
from db.models import Alert, AlertEvent, Athlete, Coach, Delivery
from notifier.base import CHANNELS

ATHLETE_CHANNELS = ("email", "push", "inapp")
COACH_CHANNELS = ("email", "webhook")
DEFAULT_QUIET_HOURS = "22:00-07:00"


class PreferenceError(ValueError):
    """A channel list or quiet-hours value that cannot be used."""


def parse_channels(value: str, allowed: Sequence[str]) -> tuple[str, ...]:
    """`email,push` → ("email", "push"); every name must be one of `allowed`."""
    names = tuple(dict.fromkeys(part.strip() for part in value.split(",") if part.strip()))
    unknown = [name for name in names if name not in allowed]
    if unknown:
        raise PreferenceError(f"unknown channel {unknown[0]!r}: choose from {', '.join(allowed)}")
    return names


def parse_quiet_hours(value: str | None) -> tuple[time, time] | None:
    """`22:00-07:00` → (22:00, 07:00); empty, `off` or None → no quiet hours."""
    if value is None or value.strip().lower() in ("", "off", "none"):
        return None
    try:
        start_text, end_text = value.split("-")
        start, end = time.fromisoformat(start_text.strip()), time.fromisoformat(end_text.strip())
    except ValueError:
        raise PreferenceError(
            f"quiet hours must look like 22:00-07:00 (or 'off'), not {value!r}"
        ) from None
    if start == end:
        raise PreferenceError("quiet hours must not start and end at the same time")
    return start, end


def quiet_until(now: datetime, timezone: str, quiet_hours: str | None) -> datetime | None:
    """If `now` falls in the recipient's quiet hours, the instant they end; else None."""
    window = parse_quiet_hours(quiet_hours)
    if window is None:
        return None
    start, end = window
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    inside = start <= clock < end if start < end else clock >= start or clock < end
    if not inside:
        return None
    end_day = local.date() if clock < end else local.date() + timedelta(days=1)
    # Built from the local wall clock, so the quiet hours end at 07:00 on DST days too.
    return datetime.combine(end_day, end, tzinfo=zone).astimezone(now.tzinfo)


@dataclass(frozen=True, slots=True)
class AthletePrefs:
    id: str
    timezone: str
    quiet_hours: str | None
    channels: str
    ntfy_topic: str | None


@dataclass(frozen=True, slots=True)
class CoachPrefs:
    id: str
    channels: str
    webhook_url: str | None


@dataclass(frozen=True, slots=True)
class Plan:
    recipient_kind: str
    recipient_id: str
    channel: str
    due_at: datetime


def plan_alert(
    severity: str,
    reason: str,
    athlete: AthletePrefs,
    coach: CoachPrefs | None,
    now: datetime,
    available: Collection[str],
) -> list[Plan]:
    """The deliveries one alert change needs. `available`: channels configured on this server."""
    if severity == "info":
        return []
    plans: list[Plan] = []
    athlete_due = now
    if severity == "warning" and reason != "escalation":
        athlete_due = quiet_until(now, athlete.timezone, athlete.quiet_hours) or now
    for channel in parse_channels(athlete.channels, ATHLETE_CHANNELS):
        if channel not in available or (channel == "push" and not athlete.ntfy_topic):
            continue
        plans.append(Plan("athlete", athlete.id, channel, athlete_due))
    if coach is not None and severity == "urgent":
        for channel in parse_channels(coach.channels, COACH_CHANNELS):
            if channel not in available or (channel == "webhook" and not coach.webhook_url):
                continue
            plans.append(Plan("coach", coach.id, channel, now))
    return plans


def enqueue_alerts(
    conn: Connection,
    changes: Iterable[tuple[int, str] | tuple[int, str, int | None]],
    now: datetime,
    available: Collection[str] = CHANNELS,
) -> list[int]:
    """Write the outbox rows for (alert_id, reason[, event_id]) triples; returns new row ids.

    With an alert event id each change is its own notice (a red flag reported three times
    notifies three times); without one, the same alert, reason and severity notify once.
    """
    wanted: dict[int, list[tuple[str, int | None]]] = {}
    for change in changes:
        event_id = change[2] if len(change) > 2 else None
        wanted.setdefault(change[0], []).append((change[1], event_id))
    if not wanted:
        return []
    rows = conn.execute(
        select(
            Alert.id,
            Alert.severity,
            Athlete.id.label("athlete_id"),
            Athlete.timezone,
            Athlete.quiet_hours,
            Athlete.channels,
            Athlete.ntfy_topic,
            Coach.id.label("coach_id"),
            Coach.channels.label("coach_channels"),
            Coach.webhook_url,
        )
        .join(Athlete, Athlete.id == Alert.athlete_id)
        .outerjoin(Coach, Coach.id == Athlete.coach_id)
        .where(Alert.id.in_(list(wanted)))
    ).all()
    values: list[dict[str, Any]] = []
    for row in rows:
        alert_id, severity, athlete_id = row.id, row.severity, row.athlete_id
        athlete = AthletePrefs(
            athlete_id, row.timezone, row.quiet_hours, row.channels, row.ntfy_topic
        )
        coach = (
            CoachPrefs(row.coach_id, row.coach_channels, row.webhook_url) if row.coach_id else None
        )
        for reason, event_id in wanted[alert_id]:
            notice = f"event:{event_id}" if event_id is not None else f"{reason}:{severity}"
            for plan in plan_alert(severity, reason, athlete, coach, now, available):
                values.append(
                    {
                        "dedup_key": (
                            f"alert:{alert_id}:{notice}:"
                            f"{plan.recipient_kind}:{plan.recipient_id}:{plan.channel}"
                        ),
                        "alert_id": alert_id,
                        "reason": reason,
                        "recipient_kind": plan.recipient_kind,
                        "recipient_id": plan.recipient_id,
                        "athlete_id": athlete_id,
                        "channel": plan.channel,
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                        "due_at": plan.due_at,
                    }
                )
    return insert_deliveries(conn, values)


def insert_deliveries(conn: Connection, values: list[dict[str, Any]]) -> list[int]:
    """Insert outbox rows, skipping any whose dedup_key exists; returns the new ids."""
    if not values:
        return []
    stmt = insert_or_skip(conn, Delivery, "dedup_key")
    return [row[0] for row in conn.execute(stmt.returning(Delivery.id), values)]


def escalate_due(
    conn: Connection,
    now: datetime,
    after: timedelta,
    available: Collection[str] = CHANNELS,
) -> list[int]:
    """Escalate urgent alerts still open (unacknowledged) `after` their opening, once each.

    An acknowledged red-flag alert reported again opens again and can escalate again, `after`
    its reopening. The conditional UPDATE is the claim: a second scheduler finds
    `escalated_at` already set. Returns the ids of the escalated alerts.
    """
    escalated = conn.execute(
        update(Alert)
        .where(
            Alert.status == "open",
            Alert.severity == "urgent",
            Alert.escalated_at.is_(None),
            func.coalesce(Alert.reopened_at, Alert.opened_at) <= now - after,
        )
        .values(escalated_at=now)
        .returning(Alert.id, Alert.athlete_id)
    ).all()
    if not escalated:
        return []
    event_ids = conn.execute(
        insert(AlertEvent).returning(AlertEvent.id, sort_by_parameter_order=True),
        [
            {"alert_id": alert_id, "athlete_id": athlete_id, "kind": "escalated",
             "severity": "urgent", "at": now, "detail": None}
            for alert_id, athlete_id in escalated
        ],
    ).scalars().all()  # fmt: skip
    enqueue_alerts(
        conn,
        [
            (alert_id, "escalation", int(event_id))
            for (alert_id, _), event_id in zip(escalated, event_ids, strict=True)
        ],
        now,
        available,
    )
    return [alert_id for alert_id, _ in escalated]
