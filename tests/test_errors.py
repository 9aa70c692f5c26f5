"""A clumsy operator gets one line and the documented exit status, never a traceback; data files
are private.

Reproductions: each case below printed a traceback (or left a file behind, or created a file
other users could read under umask 022).
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from db.engine import make_engine
from kneeguard.admin.credentials import set_password
from testsupport import assert_user_error, kneeguard


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def fresh_database(tmp_path: Path) -> tuple[str, Path]:
    path = tmp_path / "data" / "kneeguard.db"
    url = f"sqlite:///{path}"
    result = kneeguard(url, "db", "upgrade")
    assert result.returncode == 0, result
    return url, path


def add_athlete(url: str, athlete_id: str = "ann") -> None:
    result = kneeguard(
        url, "athlete", "add", "--id", athlete_id, "--name", "Ann", "--email", "ann@example.com"
    )
    assert result.returncode == 0, result


# --- file modes -------------------------------------------------------------------------------


def test_database_wal_shm_backup_and_restore_are_private(tmp_path: Path) -> None:
    url, path = fresh_database(tmp_path)
    add_athlete(url)
    engine = make_engine(url)
    with engine.connect() as conn:  # WAL and shared memory exist while a connection is open
        conn.execute(text("select 1"))
        for suffix in ("", "-wal", "-shm"):
            assert mode(Path(f"{path}{suffix}")) == 0o600, suffix
    engine.dispose()
    backup = tmp_path / "backup.db"
    assert kneeguard(url, "db", "backup", str(backup)).returncode == 0
    assert mode(backup) == 0o600
    restored = tmp_path / "restored" / "kneeguard.db"
    result = kneeguard(f"sqlite:///{restored}", "db", "restore", str(backup))
    assert result.returncode == 0, result
    assert mode(restored) == 0o600


def test_an_export_redirected_to_a_file_is_private(tmp_path: Path) -> None:
    url, _ = fresh_database(tmp_path)
    add_athlete(url)
    out = tmp_path / "ann.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env["KNEEGUARD_DATABASE_URL"] = url
    with out.open("w") as handle:  # as a shell's `> ann.json` creates it: 0644 under umask 022
        done = subprocess.run(
            [sys.executable, "-m", "kneeguard", "athlete", "export", "--id", "ann"],
            stdout=handle,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert '"ann"' in out.read_text()
    assert mode(out) == 0o600


def test_a_world_readable_password_file_ends_private(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    passwd.chmod(0o644)
    set_password(passwd, "ann.watch", "secret-1")
    assert mode(passwd) == 0o600


# --- one-line errors ---------------------------------------------------------------------------


def test_a_missing_sqlite_file_is_an_error_and_stays_missing(tmp_path: Path) -> None:
    path = tmp_path / "kneeguard.db"
    for command in (("athlete", "list"), ("alerts", "list"), ("rules", "run"), ("run",)):
        result = kneeguard(f"sqlite:///{path}", *command)
        assert_user_error(result, 1, "run `kneeguard db upgrade`")
        assert not path.exists()
        assert not Path(f"{path}-wal").exists()


@pytest.fixture
def corrupt(tmp_path: Path) -> str:
    path = tmp_path / "kneeguard.db"
    path.write_bytes(b"this is not a database\n" * 200)
    return f"sqlite:///{path}"


@pytest.mark.parametrize(
    "command",
    [("athlete", "list"), ("db", "upgrade"), ("run",), ("alerts", "list"), ("rules", "run")],
)
def test_a_corrupt_database_is_one_line(corrupt: str, command: tuple[str, ...]) -> None:
    assert_user_error(kneeguard(corrupt, *command), 1, "not a database")


def test_backup_of_a_corrupt_database_is_one_line(corrupt: str, tmp_path: Path) -> None:
    destination = tmp_path / "backup.db"
    assert_user_error(kneeguard(corrupt, "db", "backup", str(destination)), 1, "not a database")
    assert not destination.exists()


def test_a_database_from_a_newer_release(tmp_path: Path) -> None:
    url, path = fresh_database(tmp_path)
    with sqlite3.connect(path) as conn:
        conn.execute("update alembic_version set version_num = '9999_from_the_future'")
    for command in (("db", "upgrade"), ("athlete", "list"), ("run",)):
        result = kneeguard(url, *command)
        assert_user_error(result, 1, "9999_from_the_future")
        assert "newer" in result.stderr


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KNEEGUARD_SMTP_URL", "smtp://mail.example.org:25?startls=true"),
        ("KNEEGUARD_SMTP_URL", "ftp://mail.example.org"),
        ("KNEEGUARD_NTFY_URL", "ntfy.example.org"),
        ("KNEEGUARD_MAIL_FROM", "KneeGuard"),
    ],
)
def test_bad_delivery_settings_are_one_line(tmp_path: Path, name: str, value: str) -> None:
    url, _ = fresh_database(tmp_path)
    for command in (("run",), ("digest", "send", "--now")):
        assert_user_error(kneeguard(url, *command, **{name: value}), 2, name)


def test_an_alert_id_out_of_range_is_a_usage_error(db_url: str) -> None:
    result = kneeguard(db_url, "alerts", "ack", "99999999999999999999999")
    assert_user_error(result, 2, "ALERT_ID")


@pytest.mark.parametrize("instant", ["0001-01-02T00:00:00+00:00", "1999-12-31T23:59:59+00:00"])
def test_rules_run_at_an_instant_out_of_range_is_a_usage_error(db_url: str, instant: str) -> None:
    result = kneeguard(db_url, "rules", "run", "--now", instant)
    assert_user_error(result, 2, "--now")


def test_backup_into_a_missing_folder(tmp_path: Path) -> None:
    url, _ = fresh_database(tmp_path)
    destination = tmp_path / "missing" / "backup.db"
    assert_user_error(kneeguard(url, "db", "backup", str(destination)), 2, "does not exist")
    assert not destination.parent.exists()


def test_restore_of_a_file_that_is_not_a_database_leaves_nothing(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not a database at all\n" * 100)
    target = tmp_path / "restored" / "kneeguard.db"
    result = kneeguard(f"sqlite:///{target}", "db", "restore", str(junk))
    assert_user_error(result, 1, "not a database")
    assert not target.exists()
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


def test_an_export_to_a_full_disk_is_one_line(tmp_path: Path) -> None:
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    url, _ = fresh_database(tmp_path)
    add_athlete(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env["KNEEGUARD_DATABASE_URL"] = url
    with Path("/dev/full").open("w") as full:
        done = subprocess.run(
            [sys.executable, "-m", "kneeguard", "athlete", "export", "--id", "ann"],
            stdout=full,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kneeguard: error: "), done.stderr
    assert "No space left" in lines[0]


@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_a_postgresql_url_without_its_driver_names_the_right_one(scheme: str) -> None:
    url = f"{scheme}://kg:secret@127.0.0.1:5432/kg"
    for command in (("db", "upgrade"), ("athlete", "list")):
        result = kneeguard(url, *command)
        assert_user_error(result, 2, "postgresql+psycopg://")
        assert "secret" not in result.stderr


def test_a_broker_url_with_an_unknown_protocol_is_one_line(tmp_path: Path) -> None:
    url, _ = fresh_database(tmp_path)
    result = kneeguard(url, "run", KNEEGUARD_MQTT_URL="mqtt://127.0.0.1:1?protocol=4")
    assert_user_error(result, 2, "protocol must be 5 or 3.1.1, not '4'")
