"""`kneeguard athlete`: athletes, and their data rights (export, delete)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
    load_settings,
    open_database,
    print_rows,
    registry,
    registry_call,
)
from kneeguard.cli.device import broker_credentials, reload_broker

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kneeguard.admin.credentials import BrokerCredentials
    from kneeguard.admin.datarights import CredentialRemover, Erasure
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


@click.group()
def athlete() -> None:
    """Athletes, whose devices publish runs and check-ins."""


@athlete.command("add")
@click.option("--id", "athlete_id", required=True, help="Athlete id: 1-64 of A-Z a-z 0-9 _ -.")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@click.option("--coach", "coach_id", default=None, help="Id of the athlete's coach.")
@click.option("--ntfy-topic", default=None, help="ntfy topic for push alerts.")
@click.option(
    "--channels", default="email,push,inapp", show_default=True, help="Any of email,push,inapp."
)
@click.option("--quiet-hours", default="22:00-07:00", show_default=True, help="Or 'off'.")
@database_errors
def athlete_add(**fields: Any) -> None:
    """Register an athlete."""
    reg = registry()
    added = registry_call(lambda: reg.add_athlete(**fields))
    click.echo(f"athlete {added.id} added")


@athlete.command("update")
@click.option("--id", "athlete_id", required=True)
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--timezone", default=None)
@click.option("--coach", "coach_id", default=None)
@click.option("--no-coach", "no_coach", is_flag=True, help="Remove the athlete's coach.")
@click.option("--ntfy-topic", default=None)
@click.option("--channels", default=None, help="Any of email,push,inapp.")
@click.option("--quiet-hours", default=None, help="22:00-07:00 or 'off'.")
@database_errors
def athlete_update(athlete_id: str, no_coach: bool, **changes: Any) -> None:
    """Change an athlete's details and notification preferences."""
    if no_coach and changes.get("coach_id") is not None:
        fail("give --coach or --no-coach, not both", 2)
    reg = registry()
    registry_call(lambda: reg.update_athlete(athlete_id, remove_coach=no_coach, **changes))
    click.echo(f"athlete {athlete_id} updated")


@athlete.command("list")
@click.option("--coach", "coach_id", default=None, help="Only this coach's athletes.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def athlete_list(coach_id: str | None, as_json: bool) -> None:
    """List athletes with their coach and number of devices."""
    rows = [
        {
            "id": a.id,
            "name": a.name,
            "email": a.email,
            "timezone": a.timezone,
            "coach": a.coach_id,
            "devices": devices,
        }
        for a, devices in registry().athletes(coach_id)
    ]
    print_rows(rows, as_json, ["id", "name", "email", "timezone", "coach", "devices"])


# --- data rights ------------------------------------------------------------------------------


def stdin_is_tty() -> bool:
    """Whether a person can answer a confirmation prompt (tests replace this)."""
    return sys.stdin is not None and sys.stdin.isatty()


def _guarded(settings: Settings, call: Callable[[], R]) -> R:
    """`call()`, with a database lost mid-command or an unknown athlete as one-line errors."""
    from sqlalchemy.exc import OperationalError

    from db.engine import describe_operational_error
    from kneeguard.admin.datarights import UnknownAthleteError

    try:
        return call()
    except UnknownAthleteError as exc:
        fail(str(exc), 2)
    except OperationalError as exc:
        fail(describe_operational_error(settings.database_url, exc))


@athlete.command("export")
@click.option("--id", "athlete_id", required=True, help="Id of the athlete.")
def export(athlete_id: str) -> None:
    """Print everything held about an athlete as JSON (profile, devices, runs, check-ins,
    alerts with their history, deliveries, prompts, dead letters)."""
    from kneeguard.admin.datarights import export_athlete
    from kneeguard.clock import utcnow

    settings = load_settings()
    engine = open_database(settings)
    try:
        document = _guarded(settings, lambda: export_athlete(engine, athlete_id, utcnow()))
    finally:
        engine.dispose()
    write_private(json.dumps(document, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def write_private(output: str) -> None:
    """Print health data: a file that stdout was redirected to becomes private (0600) first, and
    a write that fails (a full disk) is one line, not a traceback."""
    import os
    import stat
    import sys

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (captured output)
        click.echo(output, nl=False)
        return
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_uid == os.geteuid():
            os.fchmod(fd, stat.S_IMODE(info.st_mode) & 0o600)
        sys.stdout.flush()
        data = output.encode("utf-8")
        while data:
            data = data[os.write(fd, data) :]
    except OSError as exc:
        fail(f"cannot write the export: {exc.strerror or exc}")


@athlete.command("delete")
@click.option("--id", "athlete_id", required=True, help="Id of the athlete.")
@click.option("--yes", is_flag=True, help="Erase without asking (needed when not on a terminal).")
def delete(athlete_id: str, yes: bool) -> None:
    """Erase an athlete and everything held about them, including the broker credentials of
    their devices. This cannot be undone: export first if the data is wanted."""
    settings = load_settings()
    engine = open_database(settings)
    try:
        # An unknown id is an error before any question is asked.
        _guarded(settings, lambda: require_athlete(engine, athlete_id))
        if not yes:
            if not stdin_is_tty():
                fail("refusing to delete without --yes", 2)
            click.confirm(
                f"Erase athlete {athlete_id!r} and all of their data? This cannot be undone.",
                abort=True,
            )
        broker = broker_credentials(settings)
        remover = None if broker is None else broker_credential_remover(broker)
        erasure = _guarded(settings, lambda: erase(engine, athlete_id, remover))
    finally:
        engine.dispose()
    report(erasure)
    if broker is None:
        click.echo("broker credentials were not changed (KNEEGUARD_MQTT_PASSWORD_FILE is not set)")
    elif erasure.device_ids:
        reload_broker(broker)


def require_athlete(engine: Engine, athlete_id: str) -> None:
    """Raise `UnknownAthleteError` unless the athlete exists."""
    from sqlalchemy import select

    from db.models import Athlete
    from kneeguard.admin.datarights import UnknownAthleteError

    with engine.connect() as conn:
        if conn.execute(select(Athlete.id).where(Athlete.id == athlete_id)).first() is None:
            raise UnknownAthleteError(athlete_id)


def erase(engine: Engine, athlete_id: str, remover: CredentialRemover | None) -> Erasure:
    from kneeguard.admin.credentials import CredentialsError
    from kneeguard.admin.datarights import delete_athlete

    try:
        return delete_athlete(engine, athlete_id, remove_credentials=remover)
    except CredentialsError as exc:
        fail(f"athlete {athlete_id} not deleted: cannot remove broker credentials: {exc}")


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


@athlete.command("link")
@click.option("--id", "athlete_id", required=True, help="Id of the athlete.")
@click.option("--revoke", is_flag=True, help="End every link the athlete was sent so far.")
@database_errors
def link(athlete_id: str, revoke: bool) -> None:
    """Print the athlete's personal check-in link (or, with --revoke, end all their links)."""
    from kneeguard.clock import utcnow
    from kneeguard.web.admin import UnknownError, athlete_link, revoke_athlete_links
    from kneeguard.web.security import SecretKeyError

    settings = load_settings()
    engine = open_database(settings)
    try:
        if revoke:
            revoke_athlete_links(engine, athlete_id, utcnow())
            click.echo(f"every link of athlete {athlete_id} is revoked")
            return
        click.echo(athlete_link(settings, engine, athlete_id, utcnow()))
    except UnknownError as exc:
        fail(str(exc), 2)
    except SecretKeyError as exc:
        fail(str(exc), 2)
