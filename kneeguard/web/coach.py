"""Coach pages: sign-in by one-time link, team overview, athlete page, alerts.

Every page goes through `signed_in_coach`, and every athlete or alert is looked up scoped to
that coach (`queries.athlete`, `queries.alert_of_coach`): another coach's ids give 404.
"""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, BackgroundTasks, Depends, Form, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, select, update

from db.models import Alert, AlertEvent, Athlete, Coach, CoachSignIn
from kneeguard.web import queries
from kneeguard.web.app import check_csrf, context_of, render
from kneeguard.web.checkin import signs_of
from kneeguard.web.context import WebContext
from kneeguard.web.queries import orm
from kneeguard.web.security import SESSION_AGE, LinkError, token_hash
from kneeguard.web.uploads import UploadResult, receive_upload
from notifier.base import Message, Recipient
from notifier.charts import chart_data, svg
from rules.store import AlertNotFoundError, acknowledge, resolve
from rules.text import coach_text

router = APIRouter(include_in_schema=False)

SESSION_COOKIE = "kg_session"
SIGN_IN_PATH = "/coach/sign-in"


def coach_name(coach: Coach) -> str:
    return f"{coach.name} (coach {coach.id})"[:200]


def signed_in_coach(request: Request) -> Coach:
    ctx = context_of(request)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        try:
            data = ctx.signer.check("session", cookie, SESSION_AGE)
        except LinkError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("c"), str):
            with ctx.engine.connect() as conn:
                coach = queries.coach(conn, data["c"])
            if coach is not None:
                return coach
    raise HTTPException(303, "sign in", headers={"Location": SIGN_IN_PATH})


def _scoped_athlete(ctx: WebContext, coach: Coach, athlete_id: str) -> Any:
    with ctx.engine.connect() as conn:
        athlete = queries.athlete(conn, coach.id, athlete_id)
    if athlete is None:
        raise HTTPException(404, "No such athlete in your team.")
    return athlete


def _local_next(value: str | None, default: str) -> str:
    """Only a path on this site (no //host, no scheme) may be a redirect target."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default


CoachPage = Annotated[Coach, Depends(signed_in_coach)]


# --- sign-in ------------------------------------------------------------------------------------


@router.get(SIGN_IN_PATH)
def sign_in_form(request: Request) -> Response:
    return render(request, "coach_sign_in.html", title="Coach sign-in", sent=False)


def _send_sign_in(ctx: WebContext, email: str) -> None:
    """Runs after the response: the reply never depends on whether the address is known."""
    now = ctx.now()
    with ctx.engine.begin() as conn:
        coach = (
            orm(conn)
            .execute(select(Coach).where(func.lower(Coach.email) == email.lower()).limit(1))
            .scalar_one_or_none()
        )
        if coach is None or ctx.mailer is None:
            return
        if not ctx.sign_in_per_email.allow(f"coach:{coach.id}"):
            return
        link = ctx.links.sign_in(conn, coach.id, now)
    recipient = Recipient("coach", coach.id, coach.name, coach.email, coach.timezone)
    text = (
        f"Hello {coach.name},\n\nsign in to KneeGuard with this link (valid for 15 minutes, "
        f"once):\n\n{link}\n\nIf you did not ask for it, ignore this email.\n"
    )
    html = ctx.templates.get_template("email_sign_in.html").render(name=coach.name, link=link)
    try:
        ctx.mailer(
            recipient, Message("KneeGuard: your sign-in link", text, html, "info", ("sign-in",))
        )
    except Exception:
        import logging

        logging.getLogger(__name__).warning("could not send a sign-in link to coach %s", coach.id)


@router.post(SIGN_IN_PATH, dependencies=[Depends(check_csrf)])
def sign_in_request(
    request: Request, background: BackgroundTasks, email: Annotated[str, Form(max_length=320)] = ""
) -> Response:
    ctx = context_of(request)
    client = request.client.host if request.client else "unknown"
    email = email.strip()
    if not ctx.sign_in_per_client.allow(f"ip:{client}"):
        return render(
            request,
            "message.html",
            429,
            title="Too many requests",
            text="Please wait a few minutes before asking for another link.",
        )
    if "@" in email and ctx.sign_in_per_email.allow(f"email:{email.lower()}"):
        background.add_task(_send_sign_in, ctx, email)
    return render(request, "coach_sign_in.html", title="Coach sign-in", sent=True)


@router.get(SIGN_IN_PATH + "/{secret}")
def sign_in_confirm(request: Request, secret: str) -> Response:
    # A button, not an automatic sign-in: mail scanners open links, and this one works once.
    return render(request, "coach_confirm.html", title="Sign in", secret=secret)


@router.post(SIGN_IN_PATH + "/{secret}", dependencies=[Depends(check_csrf)])
def sign_in_use(request: Request, secret: str) -> Response:
    ctx = context_of(request)
    now = ctx.now()
    with ctx.engine.begin() as conn:
        coach_id = conn.execute(
            update(CoachSignIn)
            .where(
                CoachSignIn.token_hash == token_hash(secret),
                CoachSignIn.used_at.is_(None),
                CoachSignIn.expires_at > now,
            )
            .values(used_at=now)
            .returning(CoachSignIn.coach_id)
        ).scalar_one_or_none()
    if coach_id is None:
        raise HTTPException(
            410, "This sign-in link has expired or was used already. Ask for a new one."
        )
    response = RedirectResponse("/coach", status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.signer.sign("session", {"c": coach_id}),
        max_age=int(SESSION_AGE.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=ctx.secure_cookies,
        path="/",
    )
    return response


@router.post("/coach/sign-out", dependencies=[Depends(check_csrf)])
def sign_out(request: Request) -> Response:
    response = RedirectResponse(SIGN_IN_PATH, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# --- pages --------------------------------------------------------------------------------------


@router.get("/coach")
def team_page(request: Request, coach: CoachPage) -> Response:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        rows = queries.team(conn, coach.id, ctx.now())
    return render(request, "team.html", title="Team", coach=coach, rows=rows)


CHART_DAYS = 7 * 12 + 28


def athlete_chart(ctx: WebContext, athlete_id: str, timezone: str) -> str:
    now = ctx.now()
    since = now - timedelta(days=CHART_DAYS)
    with ctx.engine.connect() as conn:
        runs = [(r.start_time, r.distance_m) for r in queries.runs(conn, athlete_id, since)]
        checks = [(c.recorded_at, c.pain_score) for c in queries.checkins(conn, athlete_id, since)]
        opened = conn.execute(
            select(Alert.opened_at, Alert.severity).where(
                Alert.athlete_id == athlete_id, Alert.opened_at >= since
            )
        ).all()
    data = chart_data(runs, checks, [(o, s) for o, s in opened], now.astimezone().date(), timezone)
    return svg(data, title="Weekly distance (bars), daily pain (line), alerts (dashed)")


@router.get("/coach/athletes/{athlete_id}")
def athlete_page(request: Request, athlete_id: str, coach: CoachPage) -> Response:
    ctx = context_of(request)
    return _athlete_page(request, ctx, coach, _scoped_athlete(ctx, coach, athlete_id))


@router.post("/coach/athletes/{athlete_id}/upload", dependencies=[Depends(check_csrf)])
async def athlete_upload(request: Request, athlete_id: str, coach: CoachPage) -> Response:
    """A coach uploads one of the athlete's FIT, GPX or TCX files: the same import as the
    runner's upload and `kneeguard import`; only for the coach's own athletes."""
    ctx = context_of(request)
    athlete = await run_in_threadpool(_scoped_athlete, ctx, coach, athlete_id)
    result = await receive_upload(request, ctx, athlete.id, athlete.timezone)
    return await run_in_threadpool(
        _athlete_page, request, ctx, coach, athlete, 400 if result.error else 200, result
    )


def _athlete_page(
    request: Request,
    ctx: WebContext,
    coach: Coach,
    athlete: Any,
    status: int = 200,
    upload: UploadResult | None = None,
) -> Response:
    with ctx.engine.connect() as conn:
        runs = queries.runs(conn, athlete.id, limit=10)
        checks = queries.checkins(conn, athlete.id, limit=10)
        alerts = queries.alerts(conn, coach.id, queries.AlertFilter(athlete_id=athlete.id))
    return render(
        request,
        "athlete.html",
        status,
        upload=upload,
        title=athlete.name,
        coach=coach,
        athlete=athlete,
        chart=athlete_chart(ctx, athlete.id, athlete.timezone),
        runs=runs,
        checkins=checks,
        alerts=alerts,
        title_of=queries.rule_title,
        signs_of=signs_of,
        text_of=coach_text_of,
    )


@router.get("/coach/athletes/{athlete_id}/chart.svg")
def athlete_chart_svg(request: Request, athlete_id: str, coach: CoachPage) -> Response:
    ctx = context_of(request)
    athlete = _scoped_athlete(ctx, coach, athlete_id)
    return Response(athlete_chart(ctx, athlete.id, athlete.timezone), media_type="image/svg+xml")


def export_csv(ctx: WebContext, athlete_id: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "kind",
            "uuid",
            "time",
            "distance_km",
            "duration_min",
            "pain_score",
            "context",
            "symptoms",
            "note",
        ]
    )
    with ctx.engine.connect() as conn:
        for r in reversed(queries.runs(conn, athlete_id)):
            writer.writerow(
                [
                    "run",
                    r.uuid,
                    r.start_time.isoformat(),
                    f"{r.distance_m / 1000:.3f}",
                    f"{r.duration_s / 60:.1f}",
                    "",
                    "",
                    "",
                    "",
                ]
            )
        for c in reversed(queries.checkins(conn, athlete_id)):
            symptoms = [sign.replace(" ", "_") for sign in signs_of(c)]
            note = (c.note or "").replace("\n", " ")
            if note[:1] in ("=", "+", "-", "@"):
                note = "'" + note  # not a formula when opened in a spreadsheet
            writer.writerow(
                [
                    "checkin",
                    c.uuid,
                    c.recorded_at.isoformat(),
                    "",
                    "",
                    c.pain_score,
                    c.context,
                    " ".join(symptoms),
                    note,
                ]
            )
    return out.getvalue()


def csv_response(body: str, athlete_id: str) -> Response:
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="kneeguard-{athlete_id}.csv"'},
    )


@router.get("/coach/athletes/{athlete_id}/export.csv")
def athlete_export(request: Request, athlete_id: str, coach: CoachPage) -> Response:
    ctx = context_of(request)
    athlete = _scoped_athlete(ctx, coach, athlete_id)
    return csv_response(export_csv(ctx, athlete.id), athlete.id)


@router.get("/coach/alerts")
def alerts_page(
    request: Request,
    coach: CoachPage,
    status: str = "active",
    severity: str = "",
    athlete: str = "",
) -> Response:
    ctx = context_of(request)
    if status not in queries.ALERT_STATUSES:
        status = "active"
    if severity not in ("", "urgent", "warning", "info"):
        severity = ""
    flt = queries.AlertFilter(status=status, severity=severity or None, athlete_id=athlete or None)
    with ctx.engine.connect() as conn:
        rows = queries.alerts(conn, coach.id, flt)
        team = queries.team(conn, coach.id, ctx.now())
    return render(
        request,
        "alerts.html",
        title="Alerts",
        coach=coach,
        rows=rows,
        team=sorted(team, key=lambda r: r.name.lower()),
        flt=flt,
        statuses=queries.ALERT_STATUSES,
        title_of=queries.rule_title,
    )


@router.post("/coach/alerts/{alert_id}/{action}", dependencies=[Depends(check_csrf)])
def alert_action(
    request: Request,
    alert_id: int,
    action: str,
    coach: CoachPage,
    note: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    ctx = context_of(request)
    if action not in ("acknowledge", "resolve") or not 0 < alert_id < 2**63:
        raise HTTPException(404, "No such action.")
    with ctx.engine.begin() as conn:
        alert = queries.alert_of_coach(conn, coach.id, alert_id)
        if alert is None:
            raise HTTPException(404, "No such alert in your team.")
        try:
            if action == "acknowledge":
                acknowledge(conn, alert.id, coach_name(coach), ctx.now())
                if note.strip():
                    _note(conn, alert, coach, note, ctx)
            else:
                resolve(conn, alert.id, coach_name(coach), ctx.now(), note.strip() or None)
        except AlertNotFoundError:
            raise HTTPException(404, "No such alert in your team.") from None
    return RedirectResponse(
        _local_next(next, f"/coach/athletes/{alert.athlete_id}"), status_code=303
    )


def _note(conn: Any, alert: Alert, coach: Coach, note: str, ctx: WebContext) -> None:
    from sqlalchemy import insert

    conn.execute(
        insert(AlertEvent).values(
            alert_id=alert.id,
            athlete_id=alert.athlete_id,
            kind="note",
            severity=alert.severity,
            at=ctx.now(),
            detail=f"{coach_name(coach)} — {note.strip()}"[:200],
        )
    )


# --- acknowledging from the email -----------------------------------------------------------------


def _coach_ack_link(ctx: WebContext, token: str) -> tuple[Coach, Alert]:
    from kneeguard.web.security import ACK_LINK_AGE

    try:
        data = ctx.signer.check("coach-ack", token, ACK_LINK_AGE)
    except LinkError as exc:
        raise HTTPException(410, f"Sorry, {exc}.") from None
    if not isinstance(data, dict):
        raise HTTPException(404, "This link is not valid.")
    with ctx.engine.connect() as conn:
        coach = queries.coach(conn, str(data.get("c")))
        alert_id = data.get("al")
        alert = (
            queries.alert_of_coach(conn, coach.id, alert_id)
            if coach is not None and isinstance(alert_id, int)
            else None
        )
    if coach is None or alert is None:
        raise HTTPException(404, "This alert is not one of your team's.")
    return coach, alert


@router.get("/coach/ack/{token}")
def coach_ack_page(request: Request, token: str) -> Response:
    ctx = context_of(request)
    coach, alert = _coach_ack_link(ctx, token)
    return render(
        request,
        "coach_ack.html",
        title="Acknowledge alert",
        coach=coach,
        alert=alert,
        token=token,
        heading=queries.rule_title(alert.rule_id),
        text=_coach_text(ctx, alert),
        done=False,
    )


def coach_text_of(alert: Alert, athlete_name: str) -> str:
    """The alert as the coach reads it: the coach's text with the athlete's name (RULES.md v2,
    D), or the athlete's text for an alert stored before coach texts existed."""
    if alert.coach_message:
        return coach_text(alert.coach_message, athlete_name)
    return alert.message


def _coach_text(ctx: WebContext, alert: Alert) -> str:
    with ctx.engine.connect() as conn:
        name = conn.execute(
            select(Athlete.name).where(Athlete.id == alert.athlete_id)
        ).scalar_one_or_none()
    return coach_text_of(alert, name or alert.athlete_id)


@router.post("/coach/ack/{token}", dependencies=[Depends(check_csrf)])
def coach_ack(request: Request, token: str) -> Response:
    ctx = context_of(request)
    coach, alert = _coach_ack_link(ctx, token)
    with ctx.engine.begin() as conn:
        acknowledge(conn, alert.id, coach_name(coach), ctx.now())
        alert = orm(conn).execute(select(Alert).where(Alert.id == alert.id)).scalar_one()
    return render(
        request,
        "coach_ack.html",
        title="Acknowledge alert",
        coach=coach,
        alert=alert,
        token=token,
        heading=queries.rule_title(alert.rule_id),
        text=_coach_text(ctx, alert),
        done=True,
    )
