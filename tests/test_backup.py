"""The SQLite backup and restore procedure of docs/OPERATIONS.md, tried once: back up a live WAL
database while it is being written, restore the copy to a new file, find the data there."""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid as uuidlib
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, insert, select

from db.engine import make_engine, session_factory
from db.models import Alert, Run
from kneeguard.admin.datarights import backup_sqlite, restore_sqlite, sqlite_path
from kneeguard.admin.registry import Registry
from testsupport import kneeguard, wait_until

START = datetime(2026, 11, 2, 6, 0, tzinfo=UTC)


def count_runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Run)).scalar_one())


def seed(engine: Engine) -> None:
    registry = Registry(session_factory(engine))
    registry.add_coach(coach_id="cora", name="Cora", email="cora@example.com")
    registry.add_athlete(athlete_id="ann", name="Ann", email="ann@example.com", coach_id="cora")
    registry.add_device(athlete_id="ann", device_id="watch")
    with engine.begin() as conn:
        conn.execute(
            insert(Alert).values(
                athlete_id="ann",
                rule_id="redflag.locked_knee",
                severity="urgent",
                recommendation="urgent_care",
                status="open",
                opened_at=START,
                last_triggered_at=START,
                updated_at=START,
                message="Locked knee",
                evidence={"locking": True},
            )
        )


@contextmanager
def writing(url: str) -> Iterator[list[int]]:
    """A writer storing one run per transaction, as the service's ingest does, until the block
    ends; yields the list it appends each committed count to."""
    engine = make_engine(url)
    committed: list[int] = []
    stop = threading.Event()

    def write() -> None:
        n = 0
        while not stop.is_set():
            start = START + timedelta(hours=n)
            with engine.begin() as conn:
                conn.execute(
                    insert(Run).values(
                        uuid=str(uuidlib.uuid4()),
                        athlete_id="ann",
                        device_id="watch",
                        start_time=start,
                        end_time=start + timedelta(minutes=30),
                        distance_m=5000.0,
                        duration_s=1800.0,
                        source_created_at=start,
                        received_at=start,
                    )
                )
            n += 1
            committed.append(n)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    try:
        yield committed
    finally:
        stop.set()
        thread.join(10)
        engine.dispose()


def test_a_backup_of_a_live_database_restores_with_its_data(
    sqlite_url: str, tmp_path: Path
) -> None:
    live = sqlite_path(sqlite_url)
    engine = make_engine(sqlite_url)
    seed(engine)
    backup = tmp_path / "backups" / "kneeguard-backup.db"
    backup.parent.mkdir()

    with writing(sqlite_url) as committed:
        assert wait_until(lambda: len(committed) >= 50, 10)
        wal = live.with_name(live.name + "-wal")
        assert wal.exists() and wal.stat().st_size > 0, "nothing in the WAL: nothing tested"
        low = len(committed)
        pages = backup_sqlite(live, backup)
        high = len(committed)
        assert wait_until(lambda: len(committed) > high + 10, 10), "the writer was not blocked"
    engine.dispose()
    assert pages > 0

    restored = tmp_path / "restored" / "kneeguard.db"
    restored.parent.mkdir()
    restore_sqlite(backup, restored)
    restored_url = f"sqlite:///{restored}"

    # The copy is one consistent moment: every run committed before the backup, none torn.
    copy = make_engine(restored_url)
    assert low <= count_runs(copy) <= high
    copy.dispose()
    with closing(sqlite3.connect(restored)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    upgraded = kneeguard(restored_url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    alerts = kneeguard(restored_url, "alerts", "list", "--json")
    assert alerts.returncode == 0, alerts.stderr
    assert [(a["athlete_id"], a["rule_id"]) for a in json.loads(alerts.stdout)] == [
        ("ann", "redflag.locked_knee")
    ]
    athletes = kneeguard(restored_url, "athlete", "list", "--json")
    assert [(a["id"], a["coach"], a["devices"]) for a in json.loads(athletes.stdout)] == [
        ("ann", "cora", 1)
    ]


def test_backup_never_overwrites_and_needs_a_database(sqlite_url: str, tmp_path: Path) -> None:
    live = sqlite_path(sqlite_url)
    existing = tmp_path / "existing.db"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        backup_sqlite(live, existing)
    assert existing.read_bytes() == b"keep me"
    with pytest.raises(FileNotFoundError):
        backup_sqlite(tmp_path / "missing.db", tmp_path / "copy.db")
    assert not (tmp_path / "copy.db").exists()
    with pytest.raises(ValueError, match="not a SQLite"):
        sqlite_path("postgresql+psycopg://kg@127.0.0.1/kneeguard")


def test_the_documented_backup_and_restore_commands(sqlite_url: str, tmp_path: Path) -> None:
    assert kneeguard(sqlite_url, "coach", "add", "--id", "cora", "--name", "Cora",
                     "--email", "cora@example.com").returncode == 0  # fmt: skip
    backup = tmp_path / "backups" / "kg.db"
    backup.parent.mkdir()
    made = kneeguard(sqlite_url, "db", "backup", str(backup))
    assert made.returncode == 0, made.stderr
    assert "integrity checked" in made.stdout
    again = kneeguard(sqlite_url, "db", "backup", str(backup))
    assert again.returncode == 2 and "never overwrites" in again.stderr
    occupied = kneeguard(sqlite_url, "db", "restore", str(backup))
    assert occupied.returncode == 2 and "move the old database files away" in occupied.stderr
    restored_url = f"sqlite:///{tmp_path / 'restored' / 'kneeguard.db'}"
    restored = kneeguard(restored_url, "db", "restore", str(backup))
    assert restored.returncode == 0, restored.stderr
    assert kneeguard(restored_url, "db", "upgrade").returncode == 0
    listed = kneeguard(restored_url, "coach", "list", "--json")
    assert [c["id"] for c in json.loads(listed.stdout)] == ["cora"]
    pg = kneeguard(
        "postgresql+psycopg://postgres@127.0.0.1:1/x", "db", "backup", str(tmp_path / "x")
    )
    assert pg.returncode == 2 and "pg_dump" in pg.stderr
