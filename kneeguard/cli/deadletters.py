"""`kneeguard deadletters`: messages the service refused."""

from __future__ import annotations

import json

import click

from kneeguard.cli.common import database_errors, load_settings, open_database, print_rows


@click.group()
def deadletters() -> None:
    """Messages the service refused, with the reason (payloads stay in the database)."""


@deadletters.command("list")
@click.option("--athlete", "athlete_id", default=None, help="Only this athlete's.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def deadletters_list(athlete_id: str | None, limit: int, as_json: bool) -> None:
    """List dead letters, newest first: when, topic, device, uuid, size and why."""
    from sqlalchemy import select

    from db.models import DeadLetter
    from kneeguard.app.logs import escape_controls

    engine = open_database(load_settings())
    query = select(
        DeadLetter.id,
        DeadLetter.received_at,
        DeadLetter.topic,
        DeadLetter.athlete_id,
        DeadLetter.device_id,
        DeadLetter.uuid,
        DeadLetter.payload_size,
        DeadLetter.reason,
    ).order_by(DeadLetter.id.desc())
    if athlete_id is not None:
        query = query.where(DeadLetter.athlete_id == athlete_id)
    with engine.connect() as conn:
        rows = [
            {
                "id": row.id,
                "received_at": row.received_at.isoformat(timespec="seconds"),
                "topic": row.topic,
                "athlete_id": row.athlete_id,
                "device_id": row.device_id,
                "uuid": row.uuid,
                "size": row.payload_size,
                "reason": row.reason,
            }
            for row in conn.execute(query.limit(limit))
        ]
    engine.dispose()
    if as_json:
        click.echo(json.dumps(rows, indent=2))  # ASCII: every control character escaped
        return
    # Topics, uuids and reasons come from devices: no control character reaches the terminal.
    shown = [
        {
            **row,
            "topic": escape_controls(row["topic"])[:80],
            "uuid": escape_controls(row["uuid"] or ""),
            "reason": escape_controls(row["reason"])[:100],
        }
        for row in rows
    ]
    print_rows(
        shown, False, ["id", "received_at", "athlete_id", "device_id", "uuid", "size", "reason"]
    )
