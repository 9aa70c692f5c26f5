"""`kneeguard deliveries`: the outbox."""

from __future__ import annotations

import json

import click

from kneeguard.cli.common import database_errors, load_settings, open_database, print_rows


@click.group()
def deliveries() -> None:
    """The outbox: every email, push, in-app message and webhook call."""


@deliveries.command("list")
@click.option(
    "--status",
    type=click.Choice(["pending", "sending", "sent", "failed", "dead", "all"]),
    default="all",
    show_default=True,
)
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def deliveries_list(status: str, limit: int, as_json: bool) -> None:
    """List deliveries, newest first."""
    from sqlalchemy import select

    from db.models import Delivery

    engine = open_database(load_settings())
    query = select(Delivery).order_by(Delivery.id.desc()).limit(limit)
    if status != "all":
        query = query.where(Delivery.status == status)
    with engine.connect() as conn:
        rows = [
            {
                "id": d.id,
                "about": f"alert {d.alert_id}" if d.alert_id else f"digest {d.digest_id}",
                "reason": d.reason,
                "to": f"{d.recipient_kind} {d.recipient_id}",
                "channel": d.channel,
                "status": d.status,
                "attempts": d.attempts,
                "created_at": d.created_at.isoformat(timespec="seconds"),
                "sent_at": d.sent_at.isoformat(timespec="seconds") if d.sent_at else None,
                "due_at": d.due_at.isoformat(timespec="seconds") if d.due_at else None,
                "error": d.last_error,
            }
            for d in conn.execute(query)
        ]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    print_rows(
        [{**r, "error": (r["error"] or "")[:60]} for r in rows],
        False,
        ["id", "about", "reason", "to", "channel", "status", "attempts", "created_at", "error"],
    )
