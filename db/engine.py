"""Engine and session factory, and the check that a database is reachable and migrated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db.urls import check_driver, check_password_encoded, redact_url, url_password


class DatabaseError(RuntimeError):
    """The database cannot be used (unreachable, bad URL, not migrated); the message is safe."""


def make_engine(url: str, *, create_dirs: bool = False, **kwargs: Any) -> Engine:
    """Build an engine for `url` (SQLite or PostgreSQL) with the settings KneeGuard relies on."""
    try:
        check_password_encoded(url, "the database URL")
        check_driver(url)
    except ValueError as exc:
        raise DatabaseError(str(exc)) from None
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise DatabaseError(f"invalid database URL {redact_url(url)!r}") from None
    sqlite_file: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            parent = Path(database).parent
            if create_dirs:
                parent.mkdir(parents=True, exist_ok=True)
            elif not parent.is_dir():
                raise DatabaseError(
                    f"database directory {str(parent)!r} does not exist; run `kneeguard db upgrade`"
                )
            sqlite_file = Path(database)
        kwargs.setdefault("connect_args", {"timeout": 30})
    else:
        kwargs.setdefault("pool_pre_ping", True)
        # A database that does not answer fails a connection attempt after 10 s, so that the
        # writer logs it and backs off instead of waiting on the operating system's TCP timeout.
        kwargs.setdefault("connect_args", {"connect_timeout": 10})
    # Statement parameters are health data: keep them out of exception texts and tracebacks.
    kwargs.setdefault("hide_parameters", True)
    try:
        engine = create_engine(parsed, **kwargs)
    except (ArgumentError, ImportError) as exc:
        raise DatabaseError(f"cannot use database URL {redact_url(url)!r}: {exc}") from None
    if engine.dialect.name == "sqlite":
        if sqlite_file is not None:
            file = sqlite_file

            def create_private(*args: Any) -> None:
                _create_private(file)

            event.listen(engine, "do_connect", create_private)
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _create_private(path: Path) -> None:
    """Create a missing SQLite file with mode 0600 before SQLite opens it: it holds health data,
    and SQLite gives its -wal and -shm files the database file's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite reports why it cannot open the file
    os.close(fd)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the CLI read while the service writes; foreign keys are off by default in SQLite.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def describe_operational_error(url: str, exc: DBAPIError) -> str:
    """One line saying why the database at `url` could not be used, without credentials."""
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
    password = url_password(url)
    if password:
        detail = detail.replace(password, "***")
    return f"cannot use database {redact_url(url)}: {detail}"


def check_ready(engine: Engine, url: str) -> None:
    """Raise `DatabaseError` unless the database answers and is migrated to the latest revision."""
    from db.migrate import current_revision, head_revision

    try:
        with engine.connect() as conn:
            has_version = inspect(conn).has_table("alembic_version")
            current = current_revision(conn) if has_version else None
    except DBAPIError as exc:  # unreachable, or not a database at all (a corrupt file)
        raise DatabaseError(describe_operational_error(url, exc)) from None
    if current is None:
        raise DatabaseError(
            f"database {redact_url(url)} is not initialised; run `kneeguard db upgrade`"
        )
    check_known_revision(url, current)
    if current != head_revision():
        raise DatabaseError(
            f"database {redact_url(url)} is at revision {current}, not the latest "
            f"({head_revision()}); run `kneeguard db upgrade`"
        )


def check_known_revision(url: str, current: str | None) -> None:
    """Raise `DatabaseError` when the database was migrated by a newer KneeGuard release."""
    from db.migrate import head_revision, known_revision

    if current is not None and not known_revision(current):
        raise DatabaseError(
            f"database {redact_url(url)} is at revision {current}, newer than this release "
            f"knows (latest {head_revision()}); upgrade KneeGuard, or restore a backup it can read"
        )
