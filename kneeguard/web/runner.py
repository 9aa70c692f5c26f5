"""The runner's pages, reached only through signed links scoped to one athlete.

`/r/{token}`: the check-in form (post-run from a prompt link, or from the personal link);
`/r/alert/{token}`: an alert's advice with "I've read this"; `/hooks/ack/{token}`: ntfy's
"Acknowledge" action. A link reaches only its own athlete's data, and stops working when it
expires or the athlete's links are revoked.
"""

from __future__ import annotations

import uuid as uuidlib
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import Connection, and_, select
from starlette.concurrency import run_in_threadpool

from db.models import Alert, Athlete, Checkin, Run
from kneeguard.web.app import check_csrf, context_of, render
from kneeguard.web.checkin import (
    ASPECTS,
    OSTRC_QUESTIONS,
    SIDES,
    SYMPTOM_LABELS,
    build_payload,
    has_stopped_run,
    symptom_names,
)
from kneeguard.web.context import WebContext
from kneeguard.web.queries import orm, rule_title
from kneeguard.web.security import (
    ACK_LINK_AGE,
    CHECKIN_LINK_AGE,
    FORM_AGE,
    PERSONAL_LINK_AGE,
    LinkError,
    link_generation,
)
from kneeguard.web.uploads import receive_upload
from rules.store import AlertNotFoundError, acknowledge

router = APIRouter(include_in_schema=False)

OSTRC_EVERY = timedelta(days=7)
RECENT_RUN = timedelta(hours=24)

ADVICE = {
    "urgent_care": "Get your knee assessed today (urgent care or your doctor).",
    "professional_assessment": "Have your knee assessed by a physiotherapist or doctor.",
    "rest": "Rest from running until the pain settles.",
    "reduce_load": "Reduce your training load for now.",
    "monitor": "Keep an eye on your knee and keep answering check-ins.",
    "emergency": "Seek emergency care now.",
}


def _athlete(conn: Connection, data: Any) -> Athlete:
    if not isinstance(data, dict) or not isinstance(data.get("a"), str):
        raise HTTPException(404, "This link is not valid.")
    athlete = orm(conn).execute(select(Athlete).where(Athlete.id == data["a"])).scalar_one_or_none()
    if athlete is None or link_generation(conn, athlete.id) != data.get("g"):
        raise HTTPException(410, "This link no longer works. Use the newest link you received.")
    return athlete


def _checkin_link(
    ctx: WebContext, conn: Connection, token: str
) -> tuple[Athlete, str | None, bool]:
    """(athlete, run uuid of a prompt link, is it a prompt link)."""
    try:
        data = ctx.signer.check("checkin", token, CHECKIN_LINK_AGE)
        return _athlete(conn, data), data.get("r"), True
    except LinkError as first:
        try:
            data = ctx.signer.check("personal", token, PERSONAL_LINK_AGE)
        except LinkError:
            raise HTTPException(410, f"Sorry, {first}. Use the newest link you received.") from None
        return _athlete(conn, data), None, False


def _link_athlete(ctx: WebContext, token: str) -> Athlete:
    with ctx.engine.connect() as conn:
        return _checkin_link(ctx, conn, token)[0]


def _form_state(
    conn: Connection, ctx: WebContext, athlete: Athlete, run_uuid: str | None
) -> dict[str, Any]:
    now = ctx.now()
    context = "post_run" if run_uuid else "daily"
    if run_uuid is None:
        recent = conn.execute(
            select(Run.uuid)
            .where(Run.athlete_id == athlete.id, Run.end_time >= now - RECENT_RUN)
            .order_by(Run.end_time.desc())
            .limit(1)
        ).scalar_one_or_none()
        if recent is not None:
            run_uuid, context = recent, "post_run"
    ostrc_done = conn.execute(
        select(Checkin.id)
        .where(
            Checkin.athlete_id == athlete.id,
            Checkin.ostrc_q1.is_not(None),
            Checkin.recorded_at >= now - OSTRC_EVERY,
        )
        .limit(1)
    ).scalar_one_or_none()
    run = None
    if run_uuid:
        run = conn.execute(
            select(Run.distance_m, Run.start_time).where(
                Run.athlete_id == athlete.id, Run.uuid == run_uuid
            )
        ).one_or_none()
    return {
        "u": str(uuidlib.uuid4()),
        "a": athlete.id,
        "r": run_uuid,
        "c": context,
        "o": ostrc_done is None,
        "km": round(run.distance_m / 1000, 1) if run else None,
    }


def _open_alerts(conn: Connection, ctx: WebContext, athlete: Athlete) -> list[dict[str, Any]]:
    links = ctx.links.athlete_links(conn, athlete.id)
    rows = (
        orm(conn)
        .execute(
            select(Alert)
            .where(Alert.athlete_id == athlete.id, Alert.status != "resolved")
            .order_by(Alert.opened_at.desc())
        )
        .scalars()
    )
    return [
        {
            "title": rule_title(a.rule_id),
            "severity": a.severity,
            "status": a.status,
            "advice": ADVICE.get(a.recommendation, ""),
            "url": links.alert(a.id),
        }
        for a in rows
    ]


def _form_page(
    request: Request,
    token: str,
    athlete: Athlete,
    state: dict[str, Any],
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    status_code: int = 200,
) -> Response:
    ctx = context_of(request)
    return render(
        request,
        "checkin.html",
        status_code,
        title="Knee check-in",
        token=token,
        athlete=athlete,
        form_token=ctx.signer.sign("form", state),
        state=state,
        errors=errors or {},
        values=values or {},
        sides=SIDES,
        aspects=ASPECTS,
        symptoms=[
            (name, SYMPTOM_LABELS.get(name, name.replace("_", " ").capitalize()))
            for name in symptom_names()
        ],
        stopped_run=has_stopped_run() and state["c"] == "post_run",
        ostrc=OSTRC_QUESTIONS if state["o"] else (),
    )


@router.get("/r/{token}")
def checkin_form(request: Request, token: str) -> Response:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        athlete, run_uuid, _ = _checkin_link(ctx, conn, token)
        state = _form_state(conn, ctx, athlete, run_uuid)
    return _form_page(request, token, athlete, state)


def _form_values(form: Any) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for key in form:
        items = form.getlist(key)
        values[key] = items if key in ("site", "symptom") else items[-1]
    return values


@router.post("/r/{token}", dependencies=[Depends(check_csrf)])
async def checkin_submit(request: Request, token: str) -> Response:
    ctx = context_of(request)
    form = await request.form()
    values = _form_values(form)
    athlete = await run_in_threadpool(_link_athlete, ctx, token)
    try:
        state = ctx.signer.check("form", str(values.get("form_token", "")), FORM_AGE)
    except LinkError:
        raise HTTPException(
            400, "This form is too old. Open your link again for a fresh one."
        ) from None
    if not isinstance(state, dict) or state.get("a") != athlete.id:
        raise HTTPException(400, "This form does not belong to this link.")
    payload = build_payload(
        values,
        uuid=state["u"],
        now=ctx.now(),
        context=state["c"],
        related_run_uuid=state.get("r"),
        ostrc_due=bool(state.get("o")),
    )
    # Storing and the red-flag rules touch the database: off the event loop.
    result = await run_in_threadpool(ctx.checkins.submit, athlete.id, payload, ctx.now())
    if result.status == "rejected":
        return _form_page(request, token, athlete, state, result.errors, values, 400)
    return RedirectResponse(f"/r/{token}/thanks", status_code=303)


@router.get("/r/{token}/upload")
def upload_form(request: Request, token: str) -> Response:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        athlete, _, _ = _checkin_link(ctx, conn, token)
    return render(request, "upload.html", title="Upload a run", token=token, athlete=athlete)


@router.post("/r/{token}/upload", dependencies=[Depends(check_csrf)])
async def upload_file(request: Request, token: str) -> Response:
    """One FIT, GPX or TCX file, stored through the same import as `kneeguard import`."""
    ctx = context_of(request)
    athlete = await run_in_threadpool(_link_athlete, ctx, token)
    result = await receive_upload(request, ctx, athlete.id, athlete.timezone)
    return render(
        request,
        "upload.html",
        400 if result.error else 200,
        title="Upload a run",
        token=token,
        athlete=athlete,
        error=result.error,
        lines=result.lines,
    )


@router.get("/r/{token}/thanks")
def thanks(request: Request, token: str) -> Response:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        athlete, _, _ = _checkin_link(ctx, conn, token)
        alerts = _open_alerts(conn, ctx, athlete)
    return render(request, "thanks.html", title="Thank you", athlete=athlete, alerts=alerts)


def _ack_link(ctx: WebContext, conn: Connection, token: str) -> tuple[Athlete, Alert]:
    try:
        data = ctx.signer.check("ack", token, ACK_LINK_AGE)
    except LinkError as exc:
        raise HTTPException(410, f"Sorry, {exc}.") from None
    athlete = _athlete(conn, data)
    alert = (
        orm(conn)
        .execute(
            select(Alert).where(and_(Alert.id == data.get("al"), Alert.athlete_id == athlete.id))
        )
        .scalar_one_or_none()
    )
    if alert is None:
        raise HTTPException(404, "This alert no longer exists.")
    return athlete, alert


def _alert_page(
    request: Request, token: str, athlete: Athlete, alert: Alert, done: bool = False
) -> Response:
    return render(
        request,
        "runner_alert.html",
        title=rule_title(alert.rule_id),
        token=token,
        athlete=athlete,
        alert=alert,
        heading=rule_title(alert.rule_id),
        advice=ADVICE.get(alert.recommendation, ""),
        lines=[line for line in alert.message.splitlines() if line.strip()],
        done=done,
    )


@router.get("/r/alert/{token}")
def runner_alert(request: Request, token: str) -> Response:
    ctx = context_of(request)
    with ctx.engine.connect() as conn:
        athlete, alert = _ack_link(ctx, conn, token)
    return _alert_page(request, token, athlete, alert)


def _acknowledge(ctx: WebContext, token: str) -> tuple[Athlete, Alert, str]:
    with ctx.engine.begin() as conn:
        athlete, alert = _ack_link(ctx, conn, token)
        try:
            status = acknowledge(conn, alert.id, f"{athlete.name} (athlete)"[:200], ctx.now())
        except AlertNotFoundError:
            raise HTTPException(404, "This alert no longer exists.") from None
        alert = orm(conn).execute(select(Alert).where(Alert.id == alert.id)).scalar_one()
    return athlete, alert, status


@router.post("/r/alert/{token}", dependencies=[Depends(check_csrf)])
def runner_alert_read(request: Request, token: str) -> Response:
    athlete, alert, _ = _acknowledge(context_of(request), token)
    return _alert_page(request, token, athlete, alert, done=True)


@router.post("/hooks/ack/{token}")
def ntfy_acknowledge(request: Request, token: str) -> dict[str, str]:
    """ntfy's "Acknowledge" http action: the signed link is the only credential (no cookie is
    involved, so there is nothing for a cross-site request to ride on)."""
    _, alert, status = _acknowledge(context_of(request), token)
    return {"alert": str(alert.id), "status": status}
