"""Digest periods: a period ends at the coach's hour on their own wall clock.

So the digest reaches a coach at 07:00 whether or not the clocks changed overnight; the period
around a DST change is therefore 23 or 25 hours long (weekly: 167 or 169).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

CADENCES: Final = ("daily", "weekly", "off")

WEEK_DAYS: Final = 7
"""'Last 7 days' everywhere in the digest: the 7 local days ending today, today included
(the convention of `rules.evaluate`), so the digest agrees with what the rules saw."""


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of a wall-clock time on a local date.

    Built from the wall clock with `fold=0` (PEP 495), so: a time in the spring-forward gap is
    read with the offset in force before the change — 01:30 on a day London skips 01:00–02:00 is
    01:30 GMT, i.e. 02:30 BST; a time that happens twice in autumn is its first occurrence.
    """
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def period_ending(
    timezone: str, cadence: str, hour: int, now: datetime
) -> tuple[datetime, datetime] | None:
    """The latest digest period whose end is at or before `now`, as UTC (start, end).

    Daily: the end is the most recent local `hour`:00 in `timezone`, the start the same local
    hour the day before. Weekly: the end is the most recent Monday at local `hour`:00, the start
    the Monday before. `off` gives None. Instants come from local dates, never from adding 24 h
    to an instant, so the hour holds across DST; a nonexistent or repeated hour is resolved with
    `fold=0` (see `local_instant`).

    Raises `ValueError` for a naive `now`, an unknown cadence or an hour outside 0–23, and
    `zoneinfo.ZoneInfoNotFoundError` for an unknown zone.
    """
    require_aware(now)
    if cadence not in CADENCES:
        raise ValueError(f"cadence must be one of {', '.join(CADENCES)}, not {cadence!r}")
    if not 0 <= hour <= 23:
        raise ValueError(f"digest hour must be 0-23, not {hour}")
    if cadence == "off":
        return None
    zone = ZoneInfo(timezone)
    at = time(hour)
    day = now.astimezone(zone).date()
    step = timedelta(days=WEEK_DAYS if cadence == "weekly" else 1)
    if cadence == "weekly":
        day -= timedelta(days=day.weekday())
    # Today's (this week's) end may still be ahead; the gap rule can move it by an hour either
    # way, so compare instants rather than wall-clock hours.
    while (end := local_instant(day, at, zone)) > now:
        day -= step
    return local_instant(day - step, at, zone), end


def require_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
