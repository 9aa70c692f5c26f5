"""Throwaway PostgreSQL databases for benchmarks (created, migrated, dropped afterwards)."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from db.engine import make_engine
from db.migrate import upgrade

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@contextmanager
def fresh_postgres(prefix: str = "kneeguard_bench") -> Iterator[str]:
    """A new, migrated, empty PostgreSQL database URL; the database is dropped afterwards."""
    name = f"{prefix}_{uuidlib.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
