"""An athlete's data rights: export everything held about them, erase it all; SQLite backups.

What "the athlete's data" is, for both export and erasure:

- the `athletes` row (the profile, with the coach's id) and their `devices`;
- their `runs`, `checkins`, `alerts` with the `alert_events` of those alerts, and the `prompts`
  sent after their runs;
- `deliveries` addressed to them, or about one of their alerts (a coach's copy included);
- `dead_letters` whose topic named them (`dead_letters.athlete_id`), whether or not the device
  publishing was registered.

Not included: coach digests (the coach's record; a digest sent before the erasure still names
the athlete in its text) and the broker's own persistence.

Every query is set-based (one statement per table, never one per row). An erasure runs in one
transaction; the broker credentials of the athlete's devices are removed inside it, just before
the commit, so a failure to remove them leaves the database untouched and the command can be
run again.
"""

from __future__ import annotations

import base64
import math
import os
import sqlite3
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    Select,
    Table,
    and_,
    delete,
    or_,
    select,
)

from db.models import Base

EXPORT_FORMAT = "kneeguard.athlete-export"
EXPORT_VERSION = 1

ATHLETES = Base.metadata.tables["athletes"]
DEVICES = Base.metadata.tables["devices"]
RUNS = Base.metadata.tables["runs"]
CHECKINS = Base.metadata.tables["checkins"]
ALERTS = Base.metadata.tables["alerts"]
ALERT_EVENTS = Base.metadata.tables["alert_events"]
PROMPTS = Base.metadata.tables["prompts"]
DELIVERIES = Base.metadata.tables["deliveries"]
DEAD_LETTERS = Base.metadata.tables["dead_letters"]

CredentialRemover = Callable[[str, Sequence[str], Sequence[tuple[str, str]]], int]
"""Removes the broker credentials of an athlete's devices: called with the athlete's id, their
device ids and every (athlete, device) pair that remains registered (to rewrite the broker's
ACL); returns how many credentials it removed. Raising aborts the erasure."""


class UnknownAthleteError(LookupError):
    """No athlete has this id."""

    def __init__(self, athlete_id: str) -> None:
        super().__init__(f"unknown athlete {athlete_id[:80]!r}")
        self.athlete_id = athlete_id


# --- what belongs to one athlete ---------------------------------------------------------------


def _alert_ids(athlete_id: str) -> Select[tuple[int]]:
    return select(ALERTS.c.id).where(ALERTS.c.athlete_id == athlete_id)


def _run_ids(athlete_id: str) -> Select[tuple[int]]:
    return select(RUNS.c.id).where(RUNS.c.athlete_id == athlete_id)


def _owned(athlete_id: str) -> dict[str, tuple[Table, ColumnElement[bool]]]:
    """Each table's rows that are the athlete's, as (table, condition), in erasure order:
    rows that point at others first, so the order is safe even without ON DELETE CASCADE."""
    return {
        "deliveries": (
            DELIVERIES,
            or_(
                DELIVERIES.c.athlete_id == athlete_id,
                and_(
                    DELIVERIES.c.recipient_kind == "athlete",
                    DELIVERIES.c.recipient_id == athlete_id,
                ),
                DELIVERIES.c.alert_id.in_(_alert_ids(athlete_id)),
            ),
        ),
        "alert_events": (
            ALERT_EVENTS,
            or_(
                ALERT_EVENTS.c.athlete_id == athlete_id,
                ALERT_EVENTS.c.alert_id.in_(_alert_ids(athlete_id)),
            ),
        ),
        "prompts": (
            PROMPTS,
            or_(PROMPTS.c.athlete_id == athlete_id, PROMPTS.c.run_id.in_(_run_ids(athlete_id))),
        ),
        "alerts": (ALERTS, ALERTS.c.athlete_id == athlete_id),
        "checkins": (CHECKINS, CHECKINS.c.athlete_id == athlete_id),
        "runs": (RUNS, RUNS.c.athlete_id == athlete_id),
        "dead_letters": (DEAD_LETTERS, DEAD_LETTERS.c.athlete_id == athlete_id),
        "devices": (DEVICES, DEVICES.c.athlete_id == athlete_id),
        "athletes": (ATHLETES, ATHLETES.c.id == athlete_id),
    }


# --- export ------------------------------------------------------------------------------------


def json_value(value: Any) -> Any:
    """`value` as JSON can hold it: instants as ISO 8601 in UTC, bytes as base64, non-finite
    floats as strings (JSON has no NaN)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_value(v) for v in value]
    return value


def _payload_json(payload: bytes | None) -> dict[str, Any]:
    """A dead letter's stored (truncated) payload: as text when it is UTF-8, else base64."""
    raw = bytes(payload or b"")
    try:
        return {"payload": raw.decode("utf-8"), "payload_encoding": "utf-8"}
    except UnicodeDecodeError:
        return {"payload": base64.b64encode(raw).decode("ascii"), "payload_encoding": "base64"}


def _rows(conn: Connection, table: Table, where: ColumnElement[bool], *order: Any) -> list[Any]:
    return list(conn.execute(select(table).where(where).order_by(*order)).mappings())


@contextmanager
def _snapshot(engine: Engine) -> Iterator[Connection]:
    """A connection whose queries all see one state of the database (on PostgreSQL; SQLite's
    driver reads statement by statement, which the CLI's short export tolerates)."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            yield conn


def export_athlete(engine: Engine, athlete_id: str, now: datetime) -> dict[str, Any]:
    """Everything held about the athlete, JSON-safe; raises `UnknownAthleteError`."""
    owned = _owned(athlete_id)
    with _snapshot(engine) as conn:
        profile = conn.execute(select(ATHLETES).where(owned["athletes"][1])).mappings().first()
        if profile is None:
            raise UnknownAthleteError(athlete_id)
        devices = _rows(conn, DEVICES, owned["devices"][1], DEVICES.c.id)
        runs = _rows(conn, RUNS, owned["runs"][1], RUNS.c.start_time, RUNS.c.id)
        checkins = _rows(
            conn, CHECKINS, owned["checkins"][1], CHECKINS.c.recorded_at, CHECKINS.c.id
        )
        alerts = _rows(conn, ALERTS, owned["alerts"][1], ALERTS.c.opened_at, ALERTS.c.id)
        events = _rows(
            conn, ALERT_EVENTS, owned["alert_events"][1], ALERT_EVENTS.c.at, ALERT_EVENTS.c.id
        )
        deliveries = _rows(conn, DELIVERIES, owned["deliveries"][1], DELIVERIES.c.id)
        prompts = _rows(conn, PROMPTS, owned["prompts"][1], PROMPTS.c.sent_at, PROMPTS.c.run_id)
        dead_letters = _rows(
            conn,
            DEAD_LETTERS,
            owned["dead_letters"][1],
            DEAD_LETTERS.c.received_at,
            DEAD_LETTERS.c.id,
        )

    events_of: dict[int, list[dict[str, Any]]] = {}
    for event in events:
        events_of.setdefault(event["alert_id"], []).append(json_value(dict(event)))
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": json_value(now),
        "athlete": json_value(dict(profile)),
        "devices": [json_value(dict(row)) for row in devices],
        "runs": [json_value(dict(row)) for row in runs],
        "checkins": [json_value(dict(row)) for row in checkins],
        "alerts": [
            {**json_value(dict(row)), "events": events_of.get(row["id"], [])} for row in alerts
        ],
        "deliveries": [json_value(dict(row)) for row in deliveries],
        "prompts": [json_value(dict(row)) for row in prompts],
        "dead_letters": [
            {
                **json_value({k: v for k, v in row.items() if k != "payload"}),
                **_payload_json(row["payload"]),
            }
            for row in dead_letters
        ],
    }


# --- erasure -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Erasure:
    """What `delete_athlete` removed: rows per table, and broker credentials (None when no
    credential remover was given)."""

    athlete_id: str
    device_ids: tuple[str, ...]
    deleted: dict[str, int]
    credentials_removed: int | None


def delete_athlete(
    engine: Engine, athlete_id: str, *, remove_credentials: CredentialRemover | None = None
) -> Erasure:
    """Erase the athlete and everything held about them, in one transaction.

    `remove_credentials` runs inside the transaction after the rows are deleted and before the
    commit: if it raises, nothing is erased. Raises `UnknownAthleteError`.
    """
    owned = _owned(athlete_id)
    with engine.begin() as conn:
        # On PostgreSQL the row lock makes concurrent writers of this athlete's alerts and
        # check-ins wait, then fail their foreign key, instead of leaving orphans behind.
        locked = conn.execute(
            select(ATHLETES.c.id).where(owned["athletes"][1]).with_for_update()
        ).first()
        if locked is None:
            raise UnknownAthleteError(athlete_id)
        device_ids = tuple(
            conn.execute(
                select(DEVICES.c.id).where(owned["devices"][1]).order_by(DEVICES.c.id)
            ).scalars()
        )
        deleted: dict[str, int] = {}
        for name, (table, where) in owned.items():
            deleted[name] = int(conn.execute(delete(table).where(where)).rowcount)
        removed: int | None = None
        if remove_credentials is not None:
            remaining = [
                (row.athlete_id, row.id)
                for row in conn.execute(
                    select(DEVICES.c.athlete_id, DEVICES.c.id).order_by(
                        DEVICES.c.athlete_id, DEVICES.c.id
                    )
                )
            ]
            removed = remove_credentials(athlete_id, device_ids, remaining)
    return Erasure(athlete_id, device_ids, deleted, removed)


# --- SQLite backup and restore -------------------------------------------------------------------


def backup_sqlite(source: Path, destination: Path) -> int:
    """Copy the live SQLite database at `source` to the new file `destination`; returns the
    number of pages copied.

    Safe while the service writes: SQLite's online backup API (`sqlite3.Connection.backup`)
    copies every page in one step inside one read transaction, so the copy is the consistent
    state of one moment, committed transactions still in the write-ahead log included, and in
    WAL mode writers are never blocked. Copying the `.db` file alone (cp, rsync) would miss
    what is in `-wal` and can tear a page mid-write. The copy is checked with
    `PRAGMA integrity_check`; `destination` must not exist (an existing file is never
    overwritten).
    """
    if destination.exists():
        raise FileExistsError(f"{destination} already exists; back up to a new file")
    if not source.is_file():
        raise FileNotFoundError(f"no SQLite database at {source}")
    # Copied into a private temporary file next to `destination`, renamed once checked: a
    # failure (a source that is not a database, a full disk) leaves nothing behind.
    fd, name = tempfile.mkstemp(dir=destination.parent, prefix=f".{destination.name}.")
    os.close(fd)  # mkstemp creates it 0600; SQLite writes into the empty file
    partial = Path(name)
    try:
        with (
            closing(sqlite3.connect(source, timeout=30)) as src,
            closing(sqlite3.connect(partial)) as dst,
        ):
            src.backup(dst, pages=-1)
            pages = int(dst.execute("PRAGMA page_count").fetchone()[0])
            check = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise RuntimeError(f"the backup of {source} failed its integrity check: {check}")
        if destination.exists():
            raise FileExistsError(f"{destination} already exists; back up to a new file")
        partial.rename(destination)
    finally:
        partial.unlink(missing_ok=True)
    return pages


def restore_sqlite(backup: Path, destination: Path) -> int:
    """Restore `backup` (made by `backup_sqlite`) into the new file `destination`; returns the
    number of pages. Point KNEEGUARD_DATABASE_URL at `destination` (with the service stopped),
    then run `kneeguard db upgrade`, which migrates a backup taken by an older release."""
    return backup_sqlite(backup, destination)


def sqlite_path(database_url: str) -> Path:
    """The file of a `sqlite:///PATH` URL; ValueError for other databases."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        raise ValueError("not a SQLite database file URL")
    return Path(url.database)
