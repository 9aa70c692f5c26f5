"""`kneeguard digest`: coach digests."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from kneeguard.cli.common import database_errors, fail, load_rules, load_settings, open_database
from kneeguard.clock import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Row

# How long to wait for a digest email that another sender claimed first.
OTHER_SENDER_WAIT_S = 30.0


@click.group()
def digest() -> None:
    """Coach digests."""


@digest.command("send")
@click.option("--coach", "coach_id", default=None, help="Only this coach.")
@click.option("--now", "force", is_flag=True, help="Send now, even if none is due.")
@database_errors
def digest_send(coach_id: str | None, force: bool) -> None:
    """Send the digests that are due (or, with --now, one for every coach now)."""
    from sqlalchemy import select

    from db.engine import session_factory
    from db.models import Delivery
    from kneeguard.admin.registry import Registry
    from kneeguard.app.delivery import DeliveryConfigError, build_transports
    from notifier.digest import send_due_digests
    from notifier.outbox import Outbox

    settings = load_settings()
    engine = open_database(settings)
    if coach_id is not None:
        reg = Registry(session_factory(engine))
        if coach_id not in {c.id for c in reg.coaches()}:
            fail(f"unknown coach {coach_id!r}", 2)
    try:
        transports = build_transports(settings)
    except DeliveryConfigError as exc:
        fail(str(exc), 2)
    config = load_rules(settings)
    ids = send_due_digests(
        engine,
        utcnow(),
        coach_id=coach_id,
        force=force,
        available_channels=tuple(transports),
        config=config,
    )
    outbox = Outbox(engine, transports, utcnow, escalation_hours=config.lifecycle.escalation_hours)
    outbox.run_once()

    def outcome() -> Sequence[Row[tuple[int | None, str, str, str | None]]]:
        with engine.connect() as conn:
            return conn.execute(
                select(Delivery.digest_id, Delivery.channel, Delivery.status, Delivery.last_error)
                .where(Delivery.digest_id.in_(ids))
                .order_by(Delivery.id)
            ).all()

    # Another sender (the service, or this command run twice at once) may have claimed one of
    # these deliveries first: its outcome is worth waiting for, not a failure.
    deadline = time.monotonic() + OTHER_SENDER_WAIT_S
    rows = outcome()
    while any(row.status == "sending" for row in rows) and time.monotonic() < deadline:
        time.sleep(0.1)
        rows = outcome()
    if not ids:
        click.echo("no digest due")
    for digest_id, channel, status, error in rows:
        line = f"digest {digest_id}: {channel} {status}"
        click.echo(line + (f" ({error})" if error else ""))
    if any(row.status != "sent" for row in rows):
        sys.exit(1)
