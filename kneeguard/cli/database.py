"""`kneeguard db`: the database schema, backups and restores."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import click

from kneeguard.cli.common import fail, load_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    from sqlalchemy import inspect
    from sqlalchemy.exc import DBAPIError

    from db.engine import (
        DatabaseError,
        check_known_revision,
        describe_operational_error,
        make_engine,
    )
    from db.migrate import current_revision, upgrade

    settings = load_settings()
    try:
        engine = make_engine(settings.database_url, create_dirs=True)
        with engine.connect() as conn:
            if inspect(conn).has_table("alembic_version"):
                check_known_revision(settings.database_url, current_revision(conn))
        upgrade(engine)
    except DatabaseError as exc:
        fail(str(exc))
    except DBAPIError as exc:
        fail(describe_operational_error(settings.database_url, exc))
    click.echo("database is up to date")


@db.command("backup")
@click.argument("destination", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(destination: Path) -> None:
    """Copy the live SQLite database to DESTINATION (a new file), safely while it runs."""
    from kneeguard.admin.datarights import backup_sqlite, sqlite_path

    settings = load_settings()
    try:
        source = sqlite_path(settings.database_url)
    except ValueError:
        fail("db backup copies SQLite databases; back up PostgreSQL with pg_dump", 2)
    if not source.exists():
        fail(f"no database at {source}", 2)
    if destination.exists():
        fail(f"{destination} exists; a backup never overwrites a file", 2)
    if not destination.parent.is_dir():
        fail(f"folder {destination.parent} does not exist; create it first", 2)
    pages = _copy(lambda: backup_sqlite(source, destination), source)
    click.echo(f"backed up {source} to {destination} ({pages} pages, integrity checked)")


@db.command("restore")
@click.argument("backup", type=click.Path(dir_okay=False, exists=True, path_type=Path))
def db_restore(backup: Path) -> None:
    """Restore a backup made by `db backup` as the configured SQLite database (which must not
    exist: stop the service and move the old files away first)."""
    from kneeguard.admin.datarights import restore_sqlite, sqlite_path

    settings = load_settings()
    try:
        target = sqlite_path(settings.database_url)
    except ValueError:
        fail("db restore restores SQLite databases; restore PostgreSQL with pg_restore", 2)
    leftovers = [p for p in (target, Path(f"{target}-wal"), Path(f"{target}-shm")) if p.exists()]
    if leftovers:
        fail(f"{leftovers[0]} exists; move the old database files away first", 2)
    created = not target.parent.exists()
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        pages = _copy(lambda: restore_sqlite(backup, target), backup)
    finally:
        if created and not target.exists():
            target.parent.rmdir()
    click.echo(f"restored {backup} to {target} ({pages} pages); now run `kneeguard db upgrade`")


def _copy(copy: Callable[[], int], source: Path) -> int:
    """Run a backup or restore; a source that is not a database, or a failed write, is one line."""
    import sqlite3

    try:
        return copy()
    except sqlite3.DatabaseError as exc:  # "file is not a database", "disk I/O error", ...
        fail(f"cannot copy {source}: {exc}")
    except (OSError, RuntimeError) as exc:
        fail(f"cannot copy {source}: {exc}")
