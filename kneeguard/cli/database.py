"""`kneeguard db`: the database schema, backups and restores."""

from __future__ import annotations

from pathlib import Path

import click

from kneeguard.cli.common import fail, load_settings


@click.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database to the latest schema."""
    from sqlalchemy.exc import OperationalError

    from db.engine import DatabaseError, describe_operational_error, make_engine
    from db.migrate import upgrade

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
