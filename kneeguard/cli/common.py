"""What every command shares: one-line errors, settings, opening the database, printing tables.

Every user error ends the same way: one line on stderr, exit status 2 (bad arguments) or 1 (an
environment problem such as an unreachable database), and no traceback.

This module and the command modules import only click at module level; the service, the
database layer and pydantic are imported inside the functions that use them, so `kneeguard
--help` does not load the whole service.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, NoReturn, ParamSpec, TypeVar

import click

from contract.bounds import EARLIEST
from kneeguard.clock import utcnow

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from kneeguard.admin.registry import Registry
    from kneeguard.settings import Settings
    from rules.config import RulesConfig

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
    from pydantic import ValidationError

    from kneeguard.settings import Settings

    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = "KNEEGUARD_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        message = str(first["msg"]).removeprefix("Value error, ")
        fail(f"invalid configuration {name}: {message}", 2)


def open_database(settings: Settings) -> Engine:
    """An engine for a reachable, migrated database, or a clear one-line error."""
    from db.engine import DatabaseError, check_ready, make_engine

    missing = missing_sqlite_file(settings.database_url)
    if missing is not None:
        # Connecting would create an empty file there.
        fail(f"database file {missing} does not exist; run `kneeguard db upgrade` to create it")
    try:
        engine = make_engine(settings.database_url)
        check_ready(engine, settings.database_url)
    except DatabaseError as exc:
        fail(str(exc))
    return engine


def missing_sqlite_file(database_url: str) -> str | None:
    """The path of a SQLite database file that does not exist, else None."""
    from kneeguard.admin.datarights import sqlite_path

    try:
        path = sqlite_path(database_url)
    except ValueError:
        return None
    if str(path).startswith("file:") or path.exists():
        return None
    return str(path)


def database_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn a database that goes away mid-command into a one-line error."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from sqlalchemy.exc import DBAPIError

        from db.engine import describe_operational_error

        settings = load_settings()
        try:
            return func(*args, **kwargs)
        except DBAPIError as exc:  # gone away, or a file that is not a database
            fail(describe_operational_error(settings.database_url, exc))

    return wrapper


def registry() -> Registry:
    from db.engine import session_factory
    from kneeguard.admin.registry import Registry

    return Registry(session_factory(open_database(load_settings())))


def registry_call(call: Callable[[], R]) -> R:
    from kneeguard.admin.registry import RegistryError

    try:
        return call()
    except RegistryError as exc:
        fail(str(exc), 2)


def load_rules(settings: Settings) -> RulesConfig:
    from rules.config import RulesConfigError, load_rules_config

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
    try:
        instant = parsed.astimezone(UTC)
    except OverflowError:
        fail(f"--now {value!r} has no UTC equivalent", 2)
    if instant < EARLIEST:
        fail(f"--now must not be before {EARLIEST:%Y-%m-%d}: no data can be older", 2)
    real = utcnow()
    if instant > real:
        # Alert times are message times, which ingest keeps within an hour of receipt: a sweep
        # dated later would write changes from the future (an urgent alert resolved "in 9999").
        fail(
            f"--now must not be after the current time ({real:%Y-%m-%dT%H:%M:%SZ}): "
            "a sweep never writes alert changes dated in the future",
            2,
        )
    return instant


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
