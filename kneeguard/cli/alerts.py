"""`kneeguard alerts`: alerts raised by the rules."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
    load_settings,
    open_database,
    print_rows,
    registry_call,
)
from kneeguard.clock import utcnow

if TYPE_CHECKING:
    from db.models import Alert


@click.group()
def alerts() -> None:
    """Alerts raised by the rules."""


@alerts.command("list")
@click.option("--athlete", "athlete_id", default=None, help="Only this athlete's alerts.")
@click.option(
    "--status",
    type=click.Choice(["open", "acknowledged", "resolved", "all"]),
    default="open",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def alerts_list(athlete_id: str | None, status: str, as_json: bool) -> None:
    """List alerts, newest first."""
    from sqlalchemy import select

    from db.engine import session_factory
    from db.models import Alert

    engine = open_database(load_settings())
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id.desc())
    if athlete_id is not None:
        query = query.where(Alert.athlete_id == athlete_id)
    if status != "all":
        query = query.where(Alert.status == status)
    with session_factory(engine)() as session:
        rows = [alert_json(alert) for alert in session.scalars(query)]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    columns = ["id", "athlete_id", "rule_id", "severity", "recommendation", "status", "opened_at"]
    print_rows([{**r, "opened_at": r["opened_at"][:16]} for r in rows], False, columns)


def alert_json(alert: Alert) -> dict[str, Any]:
    def instant(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": alert.id,
        "athlete_id": alert.athlete_id,
        "rule_id": alert.rule_id,
        "severity": alert.severity,
        "recommendation": alert.recommendation,
        "status": alert.status,
        "opened_at": instant(alert.opened_at),
        "last_triggered_at": instant(alert.last_triggered_at),
        "acknowledged_at": instant(alert.acknowledged_at),
        "acknowledged_by": alert.acknowledged_by,
        "resolved_at": instant(alert.resolved_at),
        "message": alert.message,
        "evidence": alert.evidence,
    }


@alerts.command("ack")
@click.argument("alert_id", type=click.IntRange(1, 2**63 - 1))  # a database integer
@click.option("--by", "by", default=None, help="Who acknowledges (athlete or coach).")
@database_errors
def alerts_ack(alert_id: int, by: str | None) -> None:
    """Acknowledge an alert."""
    from kneeguard.admin.registry import check_name
    from rules.store import AlertNotFoundError, acknowledge

    if by is not None and by.strip():
        name = by
        by = registry_call(lambda: check_name(name))
    else:
        by = None
    engine = open_database(load_settings())
    try:
        with engine.begin() as conn:
            status = acknowledge(conn, alert_id, by, utcnow())
    except AlertNotFoundError:
        fail(f"unknown alert {alert_id}", 2)
    if status == "acknowledged":
        click.echo(f"alert {alert_id} acknowledged" + (f" by {by}" if by else ""))
    else:
        click.echo(f"alert {alert_id} is {status}; nothing to acknowledge")
