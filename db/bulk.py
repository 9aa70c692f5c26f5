"""What ingest does to the database once a batch, in the dialect's own terms: the bulk insert of
runs and check-ins (COPY on PostgreSQL, the driver's executemany on SQLite) and the registered
devices of a batch; "insert unless it exists" for any table; and whether a failure means the
database is unavailable (retry) rather than refusing the data."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection
from typing import Any

import psycopg
from psycopg.types.json import Json
from sqlalchemy import JSON, Connection, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from db.models import Device
from db.types import UTCDateTime, sqlite_datetime_text

__all__ = ["insert_new", "insert_or_skip", "is_unavailable", "registered_devices"]


def insert_or_skip(
    conn: Connection, table: Any, *conflict_columns: str
) -> postgresql.Insert | sqlite.Insert:
    """`INSERT .. ON CONFLICT (conflict_columns) DO NOTHING` into `table` (a table or a mapped
    class), in the connection's dialect; add `.values(...)` and `.returning(...)` as needed."""
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    return insert(table).on_conflict_do_nothing(index_elements=list(conflict_columns))


# The bulk inserts talk to the drivers directly, so their errors arrive unwrapped.
_DRIVER_UNAVAILABLE = (
    sqlite3.OperationalError,
    sqlite3.InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)


def is_unavailable(exc: BaseException) -> bool:
    """True when the database could not be reached or used just now (down, cut off, locked), as
    opposed to refusing this data; the first is retried, the second dead-lettered."""
    if isinstance(exc, (OperationalError, InterfaceError, *_DRIVER_UNAVAILABLE)):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def _insert_new_postgresql(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """PostgreSQL: COPY the batch into a temporary table, then one INSERT .. SELECT.

    The temporary table lives as long as the database connection and is emptied at every commit;
    creating it is part of the batch's transaction, so a rolled-back batch leaves nothing behind.
    COPY sends the rows as one stream that psycopg formats in C, where a pipelined prepared
    INSERT (the previous way) cost a result set per row: measured on a batch of 500 runs, about
    half the CPU per row (bench/ingest.py, docs/BENCHMARKS.md).
    """
    columns = list(rows[0])
    json_columns = {c.name for c in table.columns if isinstance(c.type, JSON)}
    names = ", ".join(columns)
    staging = f"kneeguard_incoming_{table.name}"
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "  # noqa: S608
            f"SELECT {names} FROM {table.name} WITH NO DATA"
        )
        with cursor.copy(f"COPY {staging} ({names}) FROM STDIN") as copy:
            if json_columns:
                for row in rows:
                    copy.write_row([Json(row[c]) if c in json_columns else row[c] for c in columns])
            else:
                for row in rows:
                    copy.write_row(list(row.values()))
        cursor.execute(
            f"INSERT INTO {table.name} ({names}) SELECT {names} FROM {staging} "  # noqa: S608
            "ON CONFLICT (athlete_id, uuid) DO NOTHING RETURNING athlete_id, uuid, id"
        )
        # Rows staged earlier in the same transaction are conflicts by now, so they are neither
        # inserted twice nor returned again.
        return {(athlete, uuid): row_id for athlete, uuid, row_id in cursor.fetchall()}


def _sqlite_params(table: Table, columns: list[str], rows: list[dict[str, Any]]) -> list[list[Any]]:
    """The rows as SQLAlchemy would bind them on SQLite: times as UTC text, JSON as text."""
    times = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, UTCDateTime)]
    documents = [i for i, c in enumerate(columns) if isinstance(table.c[c].type, JSON)]
    params = []
    for row in rows:
        values = list(row.values())
        for i in times:
            values[i] = sqlite_datetime_text(values[i])
        for i in documents:
            if values[i] is not None:
                values[i] = json.dumps(values[i])
        params.append(values)
    return params


def _insert_new_sqlite(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """SQLite: one `executemany` on the driver with values already in their stored form.

    SQLAlchemy's bulk INSERT .. RETURNING ran every value through its type processors one call
    at a time; in the ingest profile that was a quarter of the writer's CPU. sqlite3's
    `executemany` cannot return rows, but the rows it inserted are the newest ones: the
    transaction holds SQLite's write lock from its first insert, and a new row's id is larger
    than every id in the table.
    """
    columns = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "  # noqa: S608 - model names
        f"VALUES ({', '.join(['?'] * len(columns))}) ON CONFLICT (athlete_id, uuid) DO NOTHING"
    )
    params = _sqlite_params(table, columns, rows)
    driver = conn.connection.driver_connection
    assert driver is not None
    cursor = driver.cursor()
    try:
        cursor.executemany(sql, params)
        count = cursor.rowcount
        if count <= 0:
            return {}
        cursor.execute(
            f"SELECT athlete_id, uuid, id FROM {table.name} ORDER BY id DESC LIMIT ?",  # noqa: S608
            (count,),
        )
        return {(athlete, uuid): row_id for athlete, uuid, row_id in cursor.fetchall()}
    finally:
        cursor.close()


def insert_new(
    conn: Connection, table: Table, rows: list[dict[str, Any]]
) -> dict[tuple[str, str], int]:
    """Insert rows whose (athlete, uuid) is new; return (athlete, uuid) -> id of the rows
    actually inserted.

    The one way runs and check-ins are stored, whichever door they came in by (MQTT, web form,
    files). It talks to the driver directly, so its errors arrive unwrapped: `is_unavailable`
    knows both forms.
    """
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return _insert_new_postgresql(conn, table, rows)
    if dialect == "sqlite":
        return _insert_new_sqlite(conn, table, rows)
    raise RuntimeError(f"unsupported database {dialect}")  # pragma: no cover


# Athletes per query on SQLite: far below its limit on bound parameters, whatever the batch size.
_ATHLETES_PER_QUERY = 500


def registered_devices(
    conn: Connection, pairs: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Those of the (athlete, device) pairs that are registered, read in the connection's
    transaction.

    One query on the driver for the athletes' devices (an athlete has a few), the pairs kept in
    Python. Built by SQLAlchemy, a `tuple_(...).in_(...)` over the pairs cost more than the rest
    of a one-message batch on SQLite (docs/BENCHMARKS.md); a batch of runs makes one such query.
    """
    if not pairs:
        return set()
    athletes = sorted({athlete for athlete, _ in pairs})
    driver = conn.connection.driver_connection
    assert driver is not None
    query = f"SELECT athlete_id, id FROM {Device.__tablename__} WHERE athlete_id"  # noqa: S608
    rows: list[tuple[str, str]] = []
    cursor = driver.cursor()
    try:
        if conn.dialect.name == "postgresql":
            cursor.execute(f"{query} = ANY(%s)", (athletes,))
            rows.extend(cursor.fetchall())
        else:
            for start in range(0, len(athletes), _ATHLETES_PER_QUERY):
                chunk = athletes[start : start + _ATHLETES_PER_QUERY]
                marks = ", ".join("?" * len(chunk))
                cursor.execute(f"{query} IN ({marks})", chunk)
                rows.extend(cursor.fetchall())
    finally:
        cursor.close()
    wanted = set(pairs)
    return {(athlete, device) for athlete, device in rows if (athlete, device) in wanted}
