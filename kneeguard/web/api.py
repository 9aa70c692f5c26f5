"""`/api/v1`: the coach's athletes, their runs, check-ins and alerts as JSON.

Authentication is a bearer token per coach (`kneeguard coach token --id ID`), stored hashed;
every lookup is scoped to that coach, so another coach's ids answer 404.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from sqlalchemy import select, update

from db.models import ApiToken, Coach
from kneeguard.web import queries
from kneeguard.web.app import context_of
from kneeguard.web.checkin import reported_signs
from kneeguard.web.coach import coach_name, csv_response, export_csv
from kneeguard.web.security import token_hash
from rules.store import acknowledge
from rules.text import coach_text

router = APIRouter(prefix="/api/v1", tags=["api"])
bearer = HTTPBearer(auto_error=False, description="A coach's API token")


def api_coach(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Coach:
    if credentials is None or not credentials.credentials:
        raise HTTPException(
            401, "a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
        )
    ctx = context_of(request)
    digest = token_hash(credentials.credentials)
    with ctx.engine.begin() as conn:
        coach_id = conn.execute(
            select(ApiToken.coach_id).where(ApiToken.token_hash == digest)
        ).scalar_one_or_none()
        if coach_id is None:
            raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
        conn.execute(
            update(ApiToken).where(ApiToken.token_hash == digest).values(last_used_at=ctx.now())
        )
        coach = queries.coach(conn, coach_id)
    if coach is None:
        raise HTTPException(401, "unknown token", headers={"WWW-Authenticate": "Bearer"})
    return coach


CoachDep = Annotated[Coach, Depends(api_coach)]
AthleteId = Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
Limit = Annotated[int, Query(ge=1, le=1000)]


class AthleteOut(BaseModel):
    id: str
    name: str
    risk: Literal["urgent", "warning", "trend", "ok"]
    open_urgent: int
    open_warnings: int
    trend_flags: int
    last_run: datetime | None
    last_checkin: datetime | None
    checkin_response_rate_4w: float | None


class RunOut(BaseModel):
    uuid: str
    start_time: datetime
    end_time: datetime
    distance_m: float
    duration_s: float
    rpe: float | None


class CheckinOut(BaseModel):
    uuid: str
    recorded_at: datetime
    context: str
    pain_score: int
    symptoms: list[str]
    ostrc: list[int] | None
    note: str | None


class AlertOut(BaseModel):
    id: int
    athlete_id: str
    athlete_name: str
    rule_id: str
    title: str
    severity: str
    recommendation: str
    status: str
    opened_at: datetime
    last_triggered_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    message: str
    # The same alert as the coach reads it: third person, with the athlete's name.
    coach_text: str


class AckOut(BaseModel):
    id: int
    status: str


def _athlete_out(row: queries.TeamRow) -> AthleteOut:
    return AthleteOut(
        id=row.id,
        name=row.name,
        risk=row.level,
        open_urgent=row.urgent,
        open_warnings=row.warnings,
        trend_flags=row.trends,
        last_run=row.last_run,
        last_checkin=row.last_checkin,
        checkin_response_rate_4w=row.response_rate,
    )


@router.get("/athletes", response_model=list[AthleteOut], summary="The coach's athletes, by risk")
def list_athletes(request: Request, coach: CoachDep) -> list[AthleteOut]:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        return [_athlete_out(r) for r in queries.team(conn, coach.id, ctx.now())]


def _own(request: Request, coach: Coach, athlete_id: str) -> str:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        if queries.athlete(conn, coach.id, athlete_id) is None:
            raise HTTPException(404, "no such athlete in your team")
    return athlete_id


@router.get(
    "/athletes/{athlete_id}",
    response_model=AthleteOut,
    responses={404: {"description": "Not the coach's athlete"}},
)
def get_athlete(request: Request, athlete_id: str, coach: CoachDep) -> AthleteOut:
    ctx = context_of(request)
    _own(request, coach, athlete_id)
    with ctx.engine.connect() as conn:
        for row in queries.team(conn, coach.id, ctx.now()):
            if row.id == athlete_id:
                return _athlete_out(row)
    raise HTTPException(404, "no such athlete in your team")


@router.get(
    "/athletes/{athlete_id}/runs",
    response_model=list[RunOut],
    responses={404: {"description": "Not the coach's athlete"}},
)
def get_runs(
    request: Request, athlete_id: str, coach: CoachDep, limit: Limit = 100
) -> list[RunOut]:
    ctx = context_of(request)
    _own(request, coach, athlete_id)
    with ctx.engine.connect() as conn:
        return [
            RunOut(
                uuid=r.uuid,
                start_time=r.start_time,
                end_time=r.end_time,
                distance_m=r.distance_m,
                duration_s=r.duration_s,
                rpe=r.rpe,
            )
            for r in queries.runs(conn, athlete_id, limit=limit)
        ]


@router.get(
    "/athletes/{athlete_id}/checkins",
    response_model=list[CheckinOut],
    responses={404: {"description": "Not the coach's athlete"}},
)
def get_checkins(
    request: Request, athlete_id: str, coach: CoachDep, limit: Limit = 100
) -> list[CheckinOut]:
    ctx = context_of(request)
    _own(request, coach, athlete_id)
    with ctx.engine.connect() as conn:
        return [
            CheckinOut(
                uuid=c.uuid,
                recorded_at=c.recorded_at,
                context=c.context,
                pain_score=c.pain_score,
                symptoms=reported_signs(c),
                ostrc=[c.ostrc_q1, c.ostrc_q2, c.ostrc_q3, c.ostrc_q4]
                if c.ostrc_q1 is not None
                else None,
                note=c.note,
            )
            for c in queries.checkins(conn, athlete_id, limit=limit)
        ]


@router.get(
    "/athletes/{athlete_id}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}}, 404: {"description": "Not the coach's athlete"}},
    summary="Runs and check-ins as CSV",
)
def get_export(request: Request, athlete_id: str, coach: CoachDep) -> Response:
    _own(request, coach, athlete_id)
    return csv_response(export_csv(context_of(request), athlete_id), athlete_id)


def _alert_out(alert: object, name: str) -> AlertOut:
    from db.models import Alert

    assert isinstance(alert, Alert)
    return AlertOut(
        id=alert.id,
        athlete_id=alert.athlete_id,
        athlete_name=name,
        rule_id=alert.rule_id,
        title=queries.rule_title(alert.rule_id),
        severity=alert.severity,
        recommendation=alert.recommendation,
        status=alert.status,
        opened_at=alert.opened_at,
        last_triggered_at=alert.last_triggered_at,
        acknowledged_at=alert.acknowledged_at,
        acknowledged_by=alert.acknowledged_by,
        resolved_at=alert.resolved_at,
        message=alert.message,
        coach_text=(
            coach_text(alert.coach_message, name) if alert.coach_message else alert.message
        ),
    )


@router.get("/alerts", response_model=list[AlertOut], summary="Alerts of the coach's athletes")
def list_alerts(
    request: Request,
    coach: CoachDep,
    status: Literal["active", "open", "acknowledged", "resolved", "all"] = "active",
    severity: Literal["urgent", "warning", "info"] | None = None,
    athlete: AthleteId | None = None,
    limit: Limit = 200,
) -> list[AlertOut]:
    ctx = context_of(request)
    flt = queries.AlertFilter(status=status, severity=severity, athlete_id=athlete, limit=limit)
    with ctx.engine.connect() as conn:
        return [_alert_out(a, name) for a, name in queries.alerts(conn, coach.id, flt)]


@router.post(
    "/alerts/{alert_id}/acknowledge",
    response_model=AckOut,
    responses={404: {"description": "Not the coach's alert"}},
)
def acknowledge_alert(request: Request, alert_id: int, coach: CoachDep) -> AckOut:
    ctx = context_of(request)
    if not 0 < alert_id < 2**63:
        raise HTTPException(404, "no such alert in your team")
    with ctx.engine.begin() as conn:
        alert = queries.alert_of_coach(conn, coach.id, alert_id)
        if alert is None:
            raise HTTPException(404, "no such alert in your team")
        status = acknowledge(conn, alert.id, coach_name(coach), ctx.now())
    return AckOut(id=alert_id, status=status)
