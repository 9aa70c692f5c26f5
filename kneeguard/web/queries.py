"""What the coach pages and the API read, always scoped to one coach's athletes.

Every function takes the coach id and returns nothing of anyone else's athletes; a fixed number
of queries per page, whatever the team size (bench/web.py counts them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, case, func, select
from sqlalchemy.orm import Session

from db.models import Alert, Athlete, Checkin, Coach, Run
from rules.catalog import CATALOG

RESPONSE_WINDOW = timedelta(days=28)
SEVERITY_ORDER = {"urgent": 0, "warning": 1, "info": 2}


def orm(conn: Connection) -> Session:
    """A session on the caller's connection and transaction, for reading mapped objects."""
    return Session(bind=conn)


def rule_title(rule_id: str) -> str:
    spec = CATALOG.get(rule_id)
    return spec.title if spec is not None else rule_id.replace("_", " ").replace(".", ": ")


def is_trend(rule_id: str) -> bool:
    """A trend flag: a rule read from the history (load, pain over days, OSTRC), not a red flag
    of one check-in."""
    return not (rule_id.startswith("redflag.") or rule_id == "pain.high")


@dataclass
class TeamRow:
    id: str
    name: str
    urgent: int = 0
    warnings: int = 0
    trends: int = 0
    last_run: datetime | None = None
    last_checkin: datetime | None = None
    runs_4w: int = 0
    checkins_4w: int = 0

    @property
    def response_rate(self) -> float | None:
        """Post-run check-ins answered per run over 4 weeks (None without runs)."""
        if self.runs_4w == 0:
            return None
        return min(1.0, self.checkins_4w / self.runs_4w)

    @property
    def level(self) -> str:
        if self.urgent:
            return "urgent"
        if self.warnings:
            return "warning"
        if self.trends:
            return "trend"
        return "ok"

    def sort_key(self) -> tuple[int, int, int, str, str]:
        return (-self.urgent, -self.warnings, -self.trends, self.name.lower(), self.id)


def coach(conn: Connection, coach_id: str) -> Coach | None:
    return orm(conn).execute(select(Coach).where(Coach.id == coach_id)).scalar_one_or_none()


def team(conn: Connection, coach_id: str, now: datetime) -> list[TeamRow]:
    """The coach's athletes, sorted by risk: open urgent, then warnings, then trend flags."""
    rows = {
        a.id: TeamRow(a.id, a.name)
        for a in conn.execute(select(Athlete.id, Athlete.name).where(Athlete.coach_id == coach_id))
    }
    if not rows:
        return []
    mine = select(Athlete.id).where(Athlete.coach_id == coach_id).scalar_subquery()
    for athlete_id, rule_id, severity in conn.execute(
        select(Alert.athlete_id, Alert.rule_id, Alert.severity).where(
            Alert.athlete_id.in_(mine), Alert.status != "resolved"
        )
    ):
        row = rows[athlete_id]
        if severity == "urgent":
            row.urgent += 1
        elif severity == "warning":
            row.warnings += 1
        if is_trend(rule_id):
            row.trends += 1
    since = now - RESPONSE_WINDOW
    for athlete_id, last, recent in conn.execute(
        select(
            Run.athlete_id,
            func.max(Run.start_time),
            func.sum(case((Run.start_time >= since, 1), else_=0)),
        )
        .where(Run.athlete_id.in_(mine))
        .group_by(Run.athlete_id)
    ):
        rows[athlete_id].last_run = last
        rows[athlete_id].runs_4w = int(recent or 0)
    for athlete_id, last, recent in conn.execute(
        select(
            Checkin.athlete_id,
            func.max(Checkin.recorded_at),
            func.sum(
                case(
                    (and_(Checkin.recorded_at >= since, Checkin.context == "post_run"), 1),
                    else_=0,
                )
            ),
        )
        .where(Checkin.athlete_id.in_(mine))
        .group_by(Checkin.athlete_id)
    ):
        rows[athlete_id].last_checkin = last
        rows[athlete_id].checkins_4w = int(recent or 0)
    return sorted(rows.values(), key=TeamRow.sort_key)


def athlete(conn: Connection, coach_id: str, athlete_id: str) -> Athlete | None:
    """The athlete if, and only if, they are this coach's."""
    return (
        orm(conn)
        .execute(select(Athlete).where(Athlete.id == athlete_id, Athlete.coach_id == coach_id))
        .scalar_one_or_none()
    )


def runs(
    conn: Connection, athlete_id: str, since: datetime | None = None, limit: int | None = None
) -> Sequence[Run]:
    query = select(Run).where(Run.athlete_id == athlete_id).order_by(Run.start_time.desc())
    if since is not None:
        query = query.where(Run.start_time >= since)
    if limit is not None:
        query = query.limit(limit)
    return orm(conn).execute(query).scalars().all()


def checkins(
    conn: Connection, athlete_id: str, since: datetime | None = None, limit: int | None = None
) -> Sequence[Checkin]:
    query = (
        select(Checkin).where(Checkin.athlete_id == athlete_id).order_by(Checkin.recorded_at.desc())
    )
    if since is not None:
        query = query.where(Checkin.recorded_at >= since)
    if limit is not None:
        query = query.limit(limit)
    return orm(conn).execute(query).scalars().all()


@dataclass
class AlertFilter:
    status: str = "active"  # active (open or acknowledged) | open | acknowledged | resolved | all
    severity: str | None = None
    athlete_id: str | None = None
    limit: int = 200
    extra: dict[str, Any] = field(default_factory=dict)


ALERT_STATUSES = ("active", "open", "acknowledged", "resolved", "all")


def alerts(conn: Connection, coach_id: str, flt: AlertFilter) -> list[tuple[Alert, str]]:
    """The coach's athletes' alerts with the athlete's name, most severe and newest first."""
    query = (
        select(Alert, Athlete.name)
        .join(Athlete, Athlete.id == Alert.athlete_id)
        .where(Athlete.coach_id == coach_id)
    )
    if flt.status == "active":
        query = query.where(Alert.status != "resolved")
    elif flt.status != "all":
        query = query.where(Alert.status == flt.status)
    if flt.severity:
        query = query.where(Alert.severity == flt.severity)
    if flt.athlete_id:
        query = query.where(Alert.athlete_id == flt.athlete_id)
    severity_rank = case((Alert.severity == "urgent", 0), (Alert.severity == "warning", 1), else_=2)
    query = query.order_by(severity_rank, Alert.opened_at.desc(), Alert.id.desc()).limit(flt.limit)
    return [(alert, name) for alert, name in orm(conn).execute(query).all()]


def alert_of_coach(conn: Connection, coach_id: str, alert_id: int) -> Alert | None:
    return (
        orm(conn)
        .execute(
            select(Alert)
            .join(Athlete, Athlete.id == Alert.athlete_id)
            .where(Alert.id == alert_id, Athlete.coach_id == coach_id)
        )
        .scalar_one_or_none()
    )
