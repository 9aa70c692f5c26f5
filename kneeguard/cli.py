"""The `kneeguard` command line: database, registry and the service.

Every user error ends the same way: one line on stderr, exit status 2 (bad arguments) or 1 (an
environment problem such as an unreachable database), and no traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.exc import OperationalError

from db.engine import DatabaseError, check_ready, describe_operational_error, make_engine
from db.engine import session_factory as make_sessions
from db.migrate import upgrade
from db.models import Alert, Delivery
from ingest.mqtt import BrokerConfigError
from kneeguard.clock import utcnow
from kneeguard.registry import DIGEST_CHOICES, Registry, RegistryError, check_name
from kneeguard.settings import Settings
from rules.config import RulesConfig, RulesConfigError, load_rules_config
from rules.engine import RuleEngine
from rules.store import AlertNotFoundError, acknowledge

if TYPE_CHECKING:
    from kneeguard.credentials import BrokerCredentials

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


@db.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(destination: Path) -> None:
    """Copy the live SQLite database to DESTINATION (a new file), safely while it runs."""
    from kneeguard.datarights import backup_sqlite, sqlite_path

    settings = load_settings()
    try:
        source = sqlite_path(settings.database_url)
    except ValueError:
        fail("db backup copies SQLite databases; back up PostgreSQL with pg_dump", 2)
    if not source.exists():
        fail(f"no database at {source}", 2)
    if destination.exists():
        fail(f"{destination} exists; a backup never overwrites a file", 2)
    pages = backup_sqlite(source, destination)
    click.echo(f"backed up {source} to {destination} ({pages} pages, integrity checked)")


@db.command("restore")
@click.argument("backup", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def db_restore(backup: Path) -> None:
    """Restore a backup made by `db backup` as the configured SQLite database (which must not
    exist: stop the service and move the old files away first)."""
    from kneeguard.datarights import restore_sqlite, sqlite_path

    settings = load_settings()
    try:
        target = sqlite_path(settings.database_url)
    except ValueError:
        fail("db restore restores SQLite databases; restore PostgreSQL with pg_restore", 2)
    leftovers = [p for p in (target, Path(f"{target}-wal"), Path(f"{target}-shm")) if p.exists()]
    if leftovers:
        fail(f"{leftovers[0]} exists; move the old database files away first", 2)
    target.parent.mkdir(parents=True, exist_ok=True)
    pages = restore_sqlite(backup, target)
    click.echo(f"restored {backup} to {target} ({pages} pages); now run `kneeguard db upgrade`")


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
@click.option("--channels", default="email", show_default=True, help="email and/or webhook.")
@click.option("--quiet-hours", default="22:00-07:00", show_default=True, help="Or 'off'.")
@click.option("--webhook-url", default=None, help="URL receiving signed JSON alerts.")
@click.option("--webhook-secret", default=None, help="HMAC-SHA256 key for the webhook.")
@database_errors
def coach_add(
    coach_id: str,
    name: str,
    email: str,
    timezone: str,
    digest: str,
    digest_hour: int,
    channels: str,
    quiet_hours: str,
    webhook_url: str | None,
    webhook_secret: str | None,
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
            channels=channels,
            quiet_hours=quiet_hours,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )
    )
    click.echo(f"coach {added.id} added")


@coach.command("update")
@click.option("--id", "coach_id", required=True)
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--timezone", default=None)
@click.option("--digest", default=None, help="daily, weekly or off.")
@click.option("--digest-hour", default=None, type=int)
@click.option("--channels", default=None, help="email and/or webhook.")
@click.option("--quiet-hours", default=None, help="22:00-07:00 or 'off'.")
@click.option("--webhook-url", default=None)
@click.option("--webhook-secret", default=None)
@database_errors
def coach_update(coach_id: str, **changes: Any) -> None:
    """Change a coach's details and notification preferences."""
    reg = registry()
    registry_call(lambda: reg.update_coach(coach_id, **changes))
    click.echo(f"coach {coach_id} updated")


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
@click.option(
    "--channels", default="email,push,inapp", show_default=True, help="Any of email,push,inapp."
)
@click.option("--quiet-hours", default="22:00-07:00", show_default=True, help="Or 'off'.")
@database_errors
def athlete_add(
    athlete_id: str,
    name: str,
    email: str,
    timezone: str,
    coach_id: str | None,
    ntfy_topic: str | None,
    channels: str,
    quiet_hours: str,
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
            channels=channels,
            quiet_hours=quiet_hours,
        )
    )
    click.echo(f"athlete {added.id} added")


@athlete.command("update")
@click.option("--id", "athlete_id", required=True)
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--timezone", default=None)
@click.option("--coach", "coach_id", default=None)
@click.option("--ntfy-topic", default=None)
@click.option("--channels", default=None, help="Any of email,push,inapp.")
@click.option("--quiet-hours", default=None, help="22:00-07:00 or 'off'.")
@database_errors
def athlete_update(athlete_id: str, **changes: Any) -> None:
    """Change an athlete's details and notification preferences."""
    reg = registry()
    registry_call(lambda: reg.update_athlete(athlete_id, **changes))
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


@cli.group()
def device() -> None:
    """Devices (watches, phone apps) allowed to publish for an athlete."""


@device.command("add")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Device id: 1-64 of A-Z a-z 0-9 _ -.")
@database_errors
def device_add(athlete_id: str, device_id: str) -> None:
    """Register a device to an athlete and, with KNEEGUARD_MQTT_PASSWORD_FILE set, give it broker
    credentials (printed once)."""
    from kneeguard.credentials import CredentialsError

    settings = load_settings()
    reg = registry()
    added = registry_call(lambda: reg.add_device(athlete_id=athlete_id, device_id=device_id))
    click.echo(f"device {added.id} added for athlete {added.athlete_id}")
    click.echo(f"  publishes to {settings.topic_prefix}/{added.athlete_id}/{added.id}/run|checkin")
    broker = broker_credentials(settings)
    if broker is None:
        click.echo("broker credentials were not generated: KNEEGUARD_MQTT_PASSWORD_FILE is not set")
        return
    try:
        issued = broker.issue(added.athlete_id, added.id, device_keys(reg))
    except CredentialsError as exc:
        # No half-made device: without credentials it could never connect.
        reg.remove_device(athlete_id=added.athlete_id, device_id=added.id)
        with contextlib.suppress(CredentialsError):
            broker.revoke(added.athlete_id, added.id, device_keys(reg))
        fail(f"device not added: {exc}")
    click.echo(f"  MQTT username: {issued.username}")
    click.echo(f"  MQTT password: {issued.password}")
    click.echo("  the password is stored only as a hash and will not be shown again")
    reload_broker(broker)


@device.command("revoke")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Id of the device.")
@database_errors
def device_revoke(athlete_id: str, device_id: str) -> None:
    """Unregister a device and remove its broker credentials (its runs and check-ins stay)."""
    from kneeguard.credentials import CredentialsError

    settings = load_settings()
    reg = registry()
    removed = registry_call(lambda: reg.remove_device(athlete_id=athlete_id, device_id=device_id))
    broker = broker_credentials(settings)
    had_entry = False
    if broker is not None:
        try:
            had_entry = broker.revoke(athlete_id, device_id, device_keys(reg))
        except CredentialsError as exc:
            fail(f"device {device_id} unregistered but its credentials remain: {exc}")
    if not removed and not had_entry:
        fail(f"device {device_id!r} is not registered to athlete {athlete_id!r}", 2)
    click.echo(f"device {device_id} revoked for athlete {athlete_id}")
    if broker is None:
        click.echo("broker credentials were not changed: KNEEGUARD_MQTT_PASSWORD_FILE is not set")
        return
    reload_broker(broker)


@device.command("list")
@click.option("--athlete", "athlete_id", default=None, help="Only this athlete's devices.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def device_list(athlete_id: str | None, as_json: bool) -> None:
    """List devices with their broker user names."""
    rows = [
        {
            "athlete": d.athlete_id,
            "id": d.id,
            "username": f"{d.athlete_id}.{d.id}",
            "created_at": d.created_at.isoformat(timespec="seconds"),
        }
        for d in registry().devices(athlete_id)
    ]
    print_rows(rows, as_json, ["athlete", "id", "username", "created_at"])


def broker_credentials(settings: Settings) -> BrokerCredentials | None:
    """The broker files to manage, or None when no password file is configured."""
    from ingest.topics import Topics
    from kneeguard.credentials import BrokerCredentials

    if settings.mqtt_password_file is None:
        return None
    if settings.mqtt_acl_file is None:
        click.echo(
            "warning: KNEEGUARD_MQTT_ACL_FILE is not set; the broker ACL is not updated", err=True
        )
    return BrokerCredentials(
        password_file=settings.mqtt_password_file,
        acl_file=settings.mqtt_acl_file,
        pid_file=settings.mqtt_broker_pid_file,
        topics=Topics(settings.topic_prefix),
    )


def device_keys(reg: Registry) -> Callable[[], list[tuple[str, str]]]:
    """The registered devices, read from the database when the ACL is rewritten."""
    return lambda: [(d.athlete_id, d.id) for d in reg.devices()]


def reload_broker(broker: BrokerCredentials) -> None:
    """SIGHUP the broker; the files are written either way, so a failure is only a warning."""
    from kneeguard.credentials import CredentialsError

    try:
        reloaded = broker.reload()
    except CredentialsError as exc:
        click.echo(f"warning: broker not reloaded ({exc}); send mosquitto SIGHUP", err=True)
        return
    if reloaded:
        click.echo("broker reloaded")
    else:
        click.echo("send mosquitto SIGHUP (or restart it) for the change to take effect")


# --- rules and alerts -------------------------------------------------------------------------


def load_rules(settings: Settings) -> RulesConfig:
    try:
        return load_rules_config(settings.rules_file)
    except RulesConfigError as exc:
        fail(str(exc), 2)


def parse_instant(value: str | None) -> datetime:
    if value is None:
        return utcnow()
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--now must be an ISO 8601 instant such as 2026-11-25T07:00:00Z, not {value!r}", 2)
    if parsed.tzinfo is None:
        fail(f"--now needs a UTC offset (for example {value}Z)", 2)
    return parsed.astimezone(UTC)


@cli.group()
def rules() -> None:
    """The rule catalog."""


@rules.command("run")
@click.option("--now", "now", default=None, help="Evaluate as of this ISO 8601 instant.")
@database_errors
def rules_run(now: str | None) -> None:
    """Run one rule sweep, as of now or the given instant."""
    settings = load_settings()
    config = load_rules(settings)
    instant = parse_instant(now)
    engine = open_database(settings)
    result = RuleEngine(engine, config).sweep(instant)
    click.echo(result.summary())


@cli.group()
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
    engine = open_database(load_settings())
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id.desc())
    if athlete_id is not None:
        query = query.where(Alert.athlete_id == athlete_id)
    if status != "all":
        query = query.where(Alert.status == status)
    with make_sessions(engine)() as session:
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
@click.argument("alert_id", type=int)
@click.option("--by", "by", default=None, help="Who acknowledges (athlete or coach).")
@database_errors
def alerts_ack(alert_id: int, by: str | None) -> None:
    """Acknowledge an alert."""
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


# --- delivery ---------------------------------------------------------------------------------


@cli.group()
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


@cli.group()
def digest() -> None:
    """Coach digests."""


@digest.command("send")
@click.option("--coach", "coach_id", default=None, help="Only this coach.")
@click.option("--now", "force", is_flag=True, help="Send now, even if none is due.")
@database_errors
def digest_send(coach_id: str | None, force: bool) -> None:
    """Send the digests that are due (or, with --now, one for every coach now)."""
    from kneeguard.delivery import build_transports
    from notifier.digest import send_due_digests
    from notifier.outbox import Outbox

    settings = load_settings()
    engine = open_database(settings)
    if coach_id is not None:
        reg = Registry(make_sessions(engine))
        if coach_id not in {c.id for c in reg.coaches()}:
            fail(f"unknown coach {coach_id!r}", 2)
    transports = build_transports(settings)
    ids = send_due_digests(
        engine, utcnow(), coach_id=coach_id, force=force, available_channels=tuple(transports)
    )
    outbox = Outbox(engine, transports, utcnow)
    outbox.run_once()
    with engine.connect() as conn:
        outcome = conn.execute(
            select(Delivery.digest_id, Delivery.channel, Delivery.status, Delivery.last_error)
            .where(Delivery.digest_id.in_(ids))
            .order_by(Delivery.id)
        ).all()
    if not ids:
        click.echo("no digest due")
    for digest_id, channel, status, error in outcome:
        line = f"digest {digest_id}: {channel} {status}"
        click.echo(line + (f" ({error})" if error else ""))
    if any(status != "sent" for _, _, status, _ in outcome):
        sys.exit(1)


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
    config = load_rules(settings)
    configure_logging(settings.log_level)
    engine = open_database(settings)
    try:
        service = Service(settings, engine, rules_config=config, only=only)
    except BrokerConfigError as exc:
        fail(f"invalid KNEEGUARD_MQTT_URL: {exc}", 2)
    try:
        code = service.run_forever()
    except ServiceError as exc:
        fail(str(exc))
    sys.exit(code)


# --- commands that live in their own modules ---------------------------------------------------


def _register_commands() -> None:
    from kneeguard.commands.data import delete, export
    from kneeguard.commands.demo import demo
    from kneeguard.commands.simulate import simulate

    athlete.add_command(export)
    athlete.add_command(delete)
    cli.add_command(simulate)
    cli.add_command(demo)


_register_commands()


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
