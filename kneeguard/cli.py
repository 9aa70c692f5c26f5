"""The `kneeguard` command line: database, registry and the service.

Every user error ends the same way: one line on stderr, exit status 2 (bad arguments) or 1 (an
environment problem such as an unreachable database), and no traceback.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from db.engine import DatabaseError, check_ready, describe_operational_error, make_engine
from db.engine import session_factory as make_sessions
from db.migrate import upgrade
from ingest.mqtt import BrokerConfigError
from kneeguard.registry import DIGEST_CHOICES, Registry, RegistryError
from kneeguard.settings import Settings

P = ParamSpec("P")
R = TypeVar("R")


class UserError(click.ClickException):
    """An error the user can fix; printed as one line."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = 1) -> NoReturn:
    raise UserError(message, code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "KNEEGUARD_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        fail(f"invalid configuration {name}: {first['msg']}", 2)


def open_database(settings: Settings) -> Engine:
    """An engine for a reachable, migrated database, or a clear one-line error."""
    try:
        engine = make_engine(settings.database_url)
        check_ready(engine, settings.database_url)
    except DatabaseError as exc:
        fail(str(exc))
    return engine


def database_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a database that goes away mid-command into a one-line error."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        settings = load_settings()
        try:
            return func(*args, **kwargs)
        except OperationalError as exc:
            fail(describe_operational_error(settings.database_url, exc))

    return wrapper


def registry() -> Registry:
    return Registry(make_sessions(open_database(load_settings())))


def registry_call(call: Callable[[], R]) -> R:
    try:
        return call()
    except RegistryError as exc:
        fail(str(exc), 2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kneeguard")
def cli() -> None:
    """KneeGuard: runs and knee check-ins in, evidence-based alerts out."""


# --- database -------------------------------------------------------------------------------


@cli.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    settings = load_settings()
    try:
        engine = make_engine(settings.database_url, create_dirs=True)
        upgrade(engine)
    except DatabaseError as exc:
        fail(str(exc))
    except OperationalError as exc:
        fail(describe_operational_error(settings.database_url, exc))
    click.echo("database is up to date")


# --- registry -------------------------------------------------------------------------------


@cli.group()
def coach() -> None:
    """Coaches, who read digests and act on alerts."""


@coach.command("add")
@click.option("--id", "coach_id", required=True, help="Coach id: 1-64 of A-Z a-z 0-9 _ -.")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@click.option("--digest", default="daily", show_default=True, help="daily, weekly or off.")
@click.option("--digest-hour", default=7, show_default=True, type=int, help="Local hour 0-23.")
@database_errors
def coach_add(
    coach_id: str, name: str, email: str, timezone: str, digest: str, digest_hour: int
) -> None:
    """Register a coach."""
    reg = registry()
    added = registry_call(
        lambda: reg.add_coach(
            coach_id=coach_id,
            name=name,
            email=email,
            timezone=timezone,
            digest=digest,
            digest_hour=digest_hour,
        )
    )
    click.echo(f"coach {added.id} added")


@coach.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def coach_list(as_json: bool) -> None:
    """List coaches."""
    rows = [
        {
            "id": c.id,
            "name": c.name,
            "email": c.email,
            "timezone": c.timezone,
            "digest": c.digest,
            "digest_hour": c.digest_hour,
        }
        for c in registry().coaches()
    ]
    print_rows(rows, as_json, ["id", "name", "email", "timezone", "digest", "digest_hour"])


@cli.group()
def athlete() -> None:
    """Athletes, whose devices publish runs and check-ins."""


@athlete.command("add")
@click.option("--id", "athlete_id", required=True, help="Athlete id: 1-64 of A-Z a-z 0-9 _ -.")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@click.option("--coach", "coach_id", default=None, help="Id of the athlete's coach.")
@click.option("--ntfy-topic", default=None, help="ntfy topic for push alerts.")
@database_errors
def athlete_add(
    athlete_id: str,
    name: str,
    email: str,
    timezone: str,
    coach_id: str | None,
    ntfy_topic: str | None,
) -> None:
    """Register an athlete."""
    reg = registry()
    added = registry_call(
        lambda: reg.add_athlete(
            athlete_id=athlete_id,
            name=name,
            email=email,
            timezone=timezone,
            coach_id=coach_id,
            ntfy_topic=ntfy_topic,
        )
    )
    click.echo(f"athlete {added.id} added")


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


@cli.group()
def device() -> None:
    """Devices (watches, phone apps) allowed to publish for an athlete."""


@device.command("add")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Device id: 1-64 of A-Z a-z 0-9 _ -.")
@database_errors
def device_add(athlete_id: str, device_id: str) -> None:
    """Register a device to an athlete."""
    reg = registry()
    added = registry_call(lambda: reg.add_device(athlete_id=athlete_id, device_id=device_id))
    settings = load_settings()
    click.echo(f"device {added.id} added for athlete {added.athlete_id}")
    click.echo(f"  publishes to {settings.topic_prefix}/{added.athlete_id}/{added.id}/run|checkin")


# --- the service ------------------------------------------------------------------------------


@cli.command("run")
@click.option(
    "--only",
    type=click.Choice(["ingest"]),
    default=None,
    help="Run only one part of the service (for scaled-out ingest replicas).",
)
def run(only: str | None) -> None:
    """Run the service until SIGTERM: ingest from MQTT into the database."""
    from kneeguard.service import Service, ServiceError

    settings = load_settings()
    configure_logging(settings.log_level)
    engine = open_database(settings)
    try:
        service = Service(settings, engine)
    except BrokerConfigError as exc:
        fail(f"invalid KNEEGUARD_MQTT_URL: {exc}", 2)
    try:
        code = service.run_forever()
    except ServiceError as exc:
        fail(str(exc))
    sys.exit(code)


# --- helpers --------------------------------------------------------------------------------


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


def print_rows(rows: Sequence[dict[str, Any]], as_json: bool, columns: Sequence[str]) -> None:
    if as_json:
        click.echo(json.dumps(list(rows), indent=2))
        return
    table = [[str(c).upper() for c in columns]]
    table += [["" if row[c] is None else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        click.echo("  ".join(cells).rstrip())


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: click without its multi-line usage errors or tracebacks."""
    try:
        result = cli.main(args=argv, prog_name="kneeguard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kneeguard: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())
        click.echo(f"kneeguard: error: {message}", err=True)
        sys.exit(exc.code if isinstance(exc, UserError) else exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["DIGEST_CHOICES", "cli", "main"]
