"""The registry commands and their errors, run as the operator runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import make_engine
from db.models import Athlete
from testsupport import assert_user_error, kneeguard


@pytest.fixture
def club(db_url: str) -> str:
    assert (
        kneeguard(
            db_url,
            "coach",
            "add",
            "--id",
            "cora",
            "--name",
            "Cora Coach",
            "--email",
            "cora@example.com",
            "--timezone",
            "Europe/Oslo",
            "--digest",
            "weekly",
            "--digest-hour",
            "18",
        ).returncode
        == 0
    )
    assert (
        kneeguard(
            db_url,
            "athlete",
            "add",
            "--id",
            "ann",
            "--name",
            "Ann Runner",
            "--email",
            "ann@example.com",
            "--coach",
            "cora",
            "--ntfy-topic",
            "ann-knee",
        ).returncode
        == 0
    )
    assert kneeguard(db_url, "device", "add", "--athlete", "ann", "--id", "watch-1").returncode == 0
    return db_url


def test_registry_lists_what_was_added(club: str) -> None:
    coaches = json.loads(kneeguard(club, "coach", "list", "--json").stdout)
    assert coaches == [
        {
            "id": "cora",
            "name": "Cora Coach",
            "email": "cora@example.com",
            "timezone": "Europe/Oslo",
            "digest": "weekly",
            "digest_hour": 18,
        }
    ]
    athletes = json.loads(kneeguard(club, "athlete", "list", "--json").stdout)
    assert athletes == [
        {
            "id": "ann",
            "name": "Ann Runner",
            "email": "ann@example.com",
            "timezone": "UTC",
            "coach": "cora",
            "devices": 1,
        }
    ]
    table = kneeguard(club, "athlete", "list").stdout.splitlines()
    assert table[0].split() == ["ID", "NAME", "EMAIL", "TIMEZONE", "COACH", "DEVICES"]
    assert table[1].split() == ["ann", "Ann", "Runner", "ann@example.com", "UTC", "cora", "1"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["athlete", "add", "--id", "ann smith", "--name", "A", "--email", "a@example.com"],
            "invalid athlete id 'ann smith'",
        ),
        (
            ["athlete", "add", "--id", "x" * 65, "--name", "A", "--email", "a@example.com"],
            "invalid athlete id",
        ),
        (
            ["athlete", "add", "--id", "ann/2", "--name", "A", "--email", "a@example.com"],
            "invalid athlete id",
        ),
        (
            ["athlete", "add", "--id", "bo", "--name", "B", "--email", "not-an-email"],
            "invalid email address 'not-an-email'",
        ),
        (
            [
                "athlete",
                "add",
                "--id",
                "bo",
                "--name",
                "B",
                "--email",
                "b@example.com",
                "--timezone",
                "Mars/Olympus",
            ],
            "unknown timezone 'Mars/Olympus'",
        ),
        (
            [
                "athlete",
                "add",
                "--id",
                "bo",
                "--name",
                "B",
                "--email",
                "b@example.com",
                "--coach",
                "nobody",
            ],
            "unknown coach 'nobody'",
        ),
        (
            ["athlete", "add", "--id", "ann", "--name", "A", "--email", "a@example.com"],
            "athlete 'ann' already exists",
        ),
        (
            ["coach", "add", "--id", "cora", "--name", "C", "--email", "c@example.com"],
            "coach 'cora' already exists",
        ),
        (
            [
                "coach",
                "add",
                "--id",
                "cy",
                "--name",
                "C",
                "--email",
                "c@example.com",
                "--digest",
                "hourly",
            ],
            "digest must be one of daily, weekly, off",
        ),
        (
            [
                "coach",
                "add",
                "--id",
                "cy",
                "--name",
                "C",
                "--email",
                "c@example.com",
                "--digest-hour",
                "24",
            ],
            "digest hour must be between 0 and 23",
        ),
        (
            [
                "coach",
                "add",
                "--id",
                "cy",
                "--name",
                "C",
                "--email",
                "c@example.com",
                "--digest-hour",
                "seven",
            ],
            "'seven' is not a valid integer",
        ),
        (["device", "add", "--athlete", "nobody", "--id", "w"], "unknown athlete 'nobody'"),
        (
            ["device", "add", "--athlete", "ann", "--id", "watch-1"],
            "device 'watch-1' is already registered to athlete 'ann'",
        ),
        (["device", "add", "--athlete", "ann", "--id", "bad id"], "invalid device id"),
        (["athlete", "add", "--name", "A", "--email", "a@example.com"], "Missing option '--id'"),
        (["athlete", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_changes_nothing(
    club: str, args: list[str], message: str
) -> None:
    before = kneeguard(club, "athlete", "list", "--json").stdout
    assert_user_error(kneeguard(club, *args), 2, message)
    assert kneeguard(club, "athlete", "list", "--json").stdout == before


def test_missing_database_directory_is_a_clear_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nowhere' / 'kg.db'}"
    assert_user_error(kneeguard(url, "athlete", "list"), 1, "does not exist")


def test_uninitialised_database_says_to_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kg.db'}"
    assert_user_error(kneeguard(url, "athlete", "list"), 1, "run `kneeguard db upgrade`")


def test_unreachable_database_is_a_clear_error_without_the_password() -> None:
    url = "postgresql+psycopg://kg:hunter2-secret@127.0.0.1:1/kneeguard"
    result = kneeguard(url, "coach", "list")
    assert_user_error(result, 1, "cannot use database postgresql+psycopg://kg:***@127.0.0.1:1")
    assert "hunter2-secret" not in result.stderr


def test_db_upgrade_creates_and_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'kneeguard.db'}"
    first = kneeguard(url, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert kneeguard(url, "db", "upgrade").returncode == 0
    assert kneeguard(url, "coach", "list").returncode == 0


def test_invalid_configuration_names_the_variable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'kg.db'}"
    result = kneeguard(url, "coach", "list", KNEEGUARD_TOPIC_PREFIX="kneeguard/#")
    assert_user_error(result, 2, "KNEEGUARD_TOPIC_PREFIX")


def test_settings_are_read_from_a_dotenv_file(tmp_path: Path) -> None:
    db = tmp_path / "from-dotenv.db"
    (tmp_path / ".env").write_text(f"KNEEGUARD_DATABASE_URL=sqlite:///{db}\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    result = subprocess.run(
        [sys.executable, "-m", "kneeguard", "db", "upgrade"],
        env=environ,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert db.exists()


def test_the_console_script_reports_errors_in_one_line(tmp_path: Path) -> None:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    environ["KNEEGUARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'kg.db'}"
    result = subprocess.run(
        [sys.executable, "-m", "kneeguard", "athlete", "add", "--id", "a b"],
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert_user_error(result, 2, "Missing option")


def test_help_lists_the_contract_commands() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "kneeguard", "--help"], capture_output=True, text=True, timeout=60
    )
    for command in ("db", "coach", "athlete", "device", "run"):
        assert f"  {command} " in result.stdout


HEAVY_MODULES = {"alembic", "db", "httpx", "jinja2", "paho", "psycopg", "pydantic", "rich"}
HEAVY_MODULES |= {"sqlalchemy", "ingest.mqtt", "kneeguard.app.service", "kneeguard.settings"}


def test_help_loads_neither_the_service_nor_its_libraries() -> None:
    """Commands import what they need when they run, so `--help` (and the start of every
    command) does not pay for the database layer or the broker client. The time itself is a
    bench figure (bench/cli_startup.py)."""
    code = (
        "import sys\n"
        "from kneeguard.cli import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    print(' '.join(sorted(sys.modules)), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert "Usage: kneeguard" in result.stdout
    loaded = set(result.stderr.split())
    assert "kneeguard.cli.demo" in loaded
    assert sorted(loaded & HEAVY_MODULES) == []


def test_quiet_hours_off_is_kept(db_url: str) -> None:
    added = kneeguard(db_url, "athlete", "add", "--id", "night", "--name", "N",
                      "--email", "n@example.com", "--quiet-hours", "off")  # fmt: skip
    assert added.returncode == 0, added.stderr
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(Athlete.quiet_hours)).scalar_one() == "off"
    engine.dispose()
    bad = kneeguard(db_url, "athlete", "update", "--id", "night", "--quiet-hours", "late")
    assert bad.returncode == 2 and "quiet hours must look like 22:00-07:00" in bad.stderr
