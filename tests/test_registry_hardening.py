"""Registry input an operator or an attacker could abuse: names with control or bidirectional
characters, webhook secrets on the command line, and an athlete's coach that could not be
removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import make_engine
from db.models import Athlete, Coach
from testsupport import assert_user_error, kneeguard

BAD_NAMES = [
    "Ann\x7f",
    "Ann\x9b",
    "Ann\u202eBob",
    "Ann\u2028Bob",
    "Ann\u2066x",
    "Ann\x00",
    "A\u200bB",
]


def add_coach(url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return kneeguard(
        url, "coach", "add", "--id", "cora", "--name", "Cora", "--email", "cora@example.com",
        *args, **env,
    )  # fmt: skip


@pytest.mark.parametrize("name", BAD_NAMES)
def test_names_refuse_control_and_bidirectional_characters(db_url: str, name: str) -> None:
    result = kneeguard(db_url, "coach", "add", "--id", "c1", "--name", name, "--email", "c@x.org")
    assert_user_error(result, 2, "without control or bidirectional")
    ann = kneeguard(db_url, "athlete", "add", "--id", "a1", "--name", "Ann", "--email", "a@x.org")
    assert ann.returncode == 0, ann
    added = kneeguard(db_url, "athlete", "add", "--id", "a2", "--name", name, "--email", "a@x.org")
    assert_user_error(added, 2, "without control or bidirectional")
    updated = kneeguard(db_url, "athlete", "update", "--id", "a1", "--name", name)
    assert_user_error(updated, 2, "without control or bidirectional")
    acked = kneeguard(db_url, "alerts", "ack", "1", "--by", name)
    assert_user_error(acked, 2, "without control or bidirectional")


@pytest.mark.parametrize("name", ["Zoë Ørsted", "María José", "می\u200cخواهم", "李小龍"])
def test_names_in_any_script_are_kept(db_url: str, name: str) -> None:
    result = kneeguard(db_url, "athlete", "add", "--id", "a1", "--name", name, "--email", "a@x.org")
    assert result.returncode == 0, result
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(Athlete.name)).scalar_one() == name
    engine.dispose()


def stored_secret(url: str) -> str | None:
    engine = make_engine(url)
    with engine.connect() as conn:
        secret = conn.execute(select(Coach.webhook_secret)).scalar_one()
    engine.dispose()
    return secret


WEBHOOK = ("--channels", "email,webhook", "--webhook-url", "https://hooks.example.org/k")


def test_webhook_secret_from_a_file_or_stdin(db_url: str, tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("from-a-file-7d2e\n")
    result = add_coach(db_url, *WEBHOOK, "--webhook-secret-file", str(secret_file))
    assert result.returncode == 0, result
    assert stored_secret(db_url) == "from-a-file-7d2e"

    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env["KNEEGUARD_DATABASE_URL"] = db_url
    done = subprocess.run(
        [sys.executable, "-m", "kneeguard", "coach", "update", "--id", "cora",
         "--webhook-secret-file", "-"],
        input="from-stdin-41bc\n", capture_output=True, text=True, env=env, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert stored_secret(db_url) == "from-stdin-41bc"
    assert "from-stdin-41bc" not in done.stdout + done.stderr

    both = kneeguard(
        db_url, "coach", "update", "--id", "cora", "--webhook-secret", "x",
        "--webhook-secret-file", str(secret_file),
    )  # fmt: skip
    assert_user_error(both, 2, "not both")
    missing = kneeguard(
        db_url, "coach", "update", "--id", "cora", "--webhook-secret-file", str(tmp_path / "no")
    )
    assert_user_error(missing, 2, "cannot read the webhook secret")
    (tmp_path / "empty").write_text("\n")
    empty = kneeguard(
        db_url, "coach", "update", "--id", "cora", "--webhook-secret-file", str(tmp_path / "empty")
    )
    assert_user_error(empty, 2, "one non-empty line")
    assert stored_secret(db_url) == "from-stdin-41bc"


def test_an_athletes_coach_can_be_removed(db_url: str) -> None:
    assert add_coach(db_url).returncode == 0
    added = kneeguard(
        db_url, "athlete", "add", "--id", "ann", "--name", "Ann", "--email", "a@x.org",
        "--coach", "cora",
    )  # fmt: skip
    assert added.returncode == 0, added
    both = kneeguard(db_url, "athlete", "update", "--id", "ann", "--coach", "cora", "--no-coach")
    assert_user_error(both, 2, "not both")
    removed = kneeguard(db_url, "athlete", "update", "--id", "ann", "--no-coach")
    assert removed.returncode == 0, removed
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(select(Athlete.coach_id)).scalar_one() is None
    engine.dispose()
    listed = kneeguard(db_url, "athlete", "list", "--coach", "cora", "--json")
    assert listed.stdout.strip() == "[]"
