"""`kneeguard athlete export` and `kneeguard athlete delete`: an athlete's data rights.

`kneeguard.cli` registers both commands under its `athlete` group. This module imports the CLI
module only inside the commands (it would be a circular import at module level) and reuses its
settings, database and error helpers, so errors look like every other command's.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TypeVar

import click
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from db.engine import describe_operational_error
from db.models import Athlete
from kneeguard.clock import utcnow
from kneeguard.credentials import BrokerCredentials, CredentialsError
from kneeguard.datarights import (
    CredentialRemover,
    Erasure,
    UnknownAthleteError,
    delete_athlete,
    export_athlete,
)

if TYPE_CHECKING:
    from kneeguard.settings import Settings

R = TypeVar("R")

# How the erasure is reported, in this order.
ERASED_TABLES = (
    "athletes",
    "devices",
    "runs",
    "checkins",
    "alerts",
    "alert_events",
    "deliveries",
    "prompts",
    "dead_letters",
)


def stdin_is_tty() -> bool:
    """Whether a person can answer a confirmation prompt (tests replace this)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _guarded(settings: Settings, call: Callable[[], R]) -> R:
    """`call()`, with a database lost mid-command or an unknown athlete as one-line errors."""
    from kneeguard import cli

    try:
        return call()
    except UnknownAthleteError as exc:
        cli.fail(str(exc), 2)
    except OperationalError as exc:
        cli.fail(describe_operational_error(settings.database_url, exc))


@click.command("export")
@click.option("--id", "athlete_id", required=True, help="Id of the athlete.")
def export(athlete_id: str) -> None:
    """Print everything held about an athlete as JSON (profile, devices, runs, check-ins,
    alerts with their history, deliveries, prompts, dead letters)."""
    from kneeguard import cli

    settings = cli.load_settings()
    engine = cli.open_database(settings)
    try:
        document = _guarded(settings, lambda: export_athlete(engine, athlete_id, utcnow()))
    finally:
        engine.dispose()
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False))


@click.command("delete")
@click.option("--id", "athlete_id", required=True, help="Id of the athlete.")
@click.option("--yes", is_flag=True, help="Erase without asking (needed when not on a terminal).")
def delete(athlete_id: str, yes: bool) -> None:
    """Erase an athlete and everything held about them, including the broker credentials of
    their devices. This cannot be undone: export first if the data is wanted."""
    from kneeguard import cli

    settings = cli.load_settings()
    engine = cli.open_database(settings)
    try:
        # An unknown id is an error before any question is asked.
        _guarded(settings, lambda: require_athlete(engine, athlete_id))
        if not yes:
            if not stdin_is_tty():
                cli.fail("refusing to delete without --yes", 2)
            click.confirm(
                f"Erase athlete {athlete_id!r} and all of their data? This cannot be undone.",
                abort=True,
            )
        broker = cli.broker_credentials(settings)
        remover = None if broker is None else broker_credential_remover(broker)
        erasure = _guarded(settings, lambda: erase(engine, athlete_id, remover))
    finally:
        engine.dispose()
    report(erasure)
    if broker is None:
        click.echo("broker credentials were not changed (KNEEGUARD_MQTT_PASSWORD_FILE is not set)")
    elif erasure.device_ids:
        cli.reload_broker(broker)


def require_athlete(engine: Engine, athlete_id: str) -> None:
    """Raise `UnknownAthleteError` unless the athlete exists."""
    with engine.connect() as conn:
        if conn.execute(select(Athlete.id).where(Athlete.id == athlete_id)).first() is None:
            raise UnknownAthleteError(athlete_id)


def erase(engine: Engine, athlete_id: str, remover: CredentialRemover | None) -> Erasure:
    from kneeguard import cli

    try:
        return delete_athlete(engine, athlete_id, remove_credentials=remover)
    except CredentialsError as exc:
        cli.fail(f"athlete {athlete_id} not deleted: cannot remove broker credentials: {exc}")


def broker_credential_remover(broker: BrokerCredentials) -> CredentialRemover:
    """The hook `delete_athlete` calls before it commits: removes each device's entry from the
    broker's password file and rewrites the ACL from the devices that remain."""

    def remove(
        athlete_id: str, device_ids: Sequence[str], remaining: Sequence[tuple[str, str]]
    ) -> int:
        return sum(broker.revoke(athlete_id, device_id, remaining) for device_id in device_ids)

    return remove


def report(erasure: Erasure) -> None:
    click.echo(f"athlete {erasure.athlete_id} deleted")
    for name in ERASED_TABLES:
        click.echo(f"  {name}: {erasure.deleted.get(name, 0)}")
    if erasure.credentials_removed is not None:
        click.echo(f"  broker credentials: {erasure.credentials_removed}")
