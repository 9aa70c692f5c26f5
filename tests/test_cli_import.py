"""`kneeguard import` as the operator runs it, on SQLite and PostgreSQL: one line per file, the
runs in `athlete export`, re-import is "already imported", the documented exit status, and a
recent spike from a file opens its alert with deliveries at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, select

from db.models import Alert, Delivery
from testsupport import assert_user_error, kneeguard
from testsupport.fitfiles import Leg, fit_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "activities"


def add_athlete(db_url: str, athlete_id: str = "ann") -> None:
    result = kneeguard(
        db_url, "athlete", "add", "--id", athlete_id, "--name", "Ann", "--email",
        "ann@example.com", "--timezone", "Europe/Oslo",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


def test_import_then_export_then_import_again(db_url: str, tmp_path: Path) -> None:
    add_athlete(db_url)
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    fit = tmp_path / "today.fit"
    fit.write_bytes(fit_bytes([Leg(start, seconds=1500, distance_m=5000.0, records=False)]))
    result = kneeguard(
        db_url, "import", "--athlete", "ann", str(fit), str(FIXTURES),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    local = start.astimezone(ZoneInfo("Europe/Oslo"))
    assert result.stdout.splitlines() == [
        f"{fit}: imported {local:%Y-%m-%d %H:%M}, 5.00 km, 0:25:00",
        f"{FIXTURES / 'loop_5k_pause.gpx'}: imported 2026-11-14 09:00, 4.99 km, 0:25:00"
        " (history: no alerts)",
        f"{FIXTURES / 'treadmill.tcx'}: imported 2026-11-16 19:30, 5.00 km, 0:30:00"
        " (history: no alerts)",
        "3 files: 3 imported",
    ]
    exported = kneeguard(db_url, "athlete", "export", "--id", "ann")
    assert exported.returncode == 0, exported.stderr
    runs = json.loads(exported.stdout)["runs"]
    assert [r["source_name"] for r in runs] == [
        "Hand-made fixture", "Hand-made treadmill fixture", "Forerunner 265",
    ]  # fmt: skip
    assert {r["device_id"] for r in runs} == {"file-import"}
    assert runs[2]["distance_m"] == 5000.0 and runs[2]["duration_s"] == 1500.0

    again = kneeguard(db_url, "import", "--athlete", "ann", str(fit), str(FIXTURES))
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "3 files: 3 already imported"
    assert all("already imported" in line for line in again.stdout.splitlines())
    exported_again = json.loads(kneeguard(db_url, "athlete", "export", "--id", "ann").stdout)
    assert len(exported_again["runs"]) == 3


def test_a_refused_file_makes_the_exit_status_1_and_the_rest_is_imported(
    db_url: str, tmp_path: Path
) -> None:
    add_athlete(db_url)
    (tmp_path / "empty.fit").write_bytes(b"")
    (tmp_path / "broken.gpx").write_bytes(b"<gpx><trk>")
    result = kneeguard(
        db_url, "import", "--athlete", "ann", str(tmp_path), str(FIXTURES / "treadmill.tcx"),
    )  # fmt: skip
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == f"{tmp_path / 'broken.gpx'}: refused: not valid GPX XML (line 1, column 10)"
    assert lines[1] == f"{tmp_path / 'empty.fit'}: refused: empty file"
    assert lines[2].endswith("treadmill.tcx: imported 2026-11-16 19:30, 5.00 km, 0:30:00"
                             " (history: no alerts)")  # fmt: skip
    assert lines[3] == "3 files: 1 imported, 2 refused"
    assert "Traceback" not in result.stderr


def test_bad_arguments_exit_2_with_one_line(db_url: str, tmp_path: Path) -> None:
    add_athlete(db_url)
    assert_user_error(
        kneeguard(db_url, "import", "--athlete", "nobody", str(tmp_path)), 2, "nobody"
    )
    missing = kneeguard(db_url, "import", "--athlete", "ann")
    assert missing.returncode == 2
    assert "FILES" in missing.stderr


def test_a_recent_spike_imported_on_the_command_line_opens_an_alert_with_deliveries(
    db_url: str, engine: Engine, tmp_path: Path
) -> None:
    add_athlete(db_url)
    now = datetime.now(UTC).replace(microsecond=0)
    for days in range(40, 4, -3):
        path = tmp_path / f"h{days:02d}.fit"
        path.write_bytes(fit_bytes([Leg(now - timedelta(days=days), records=False)]))
    spike = tmp_path / "spike.fit"
    spike.write_bytes(
        fit_bytes([Leg(now - timedelta(hours=2), distance_m=8000.0, seconds=2700, records=False)])
    )
    result = kneeguard(db_url, "import", "--athlete", "ann", str(tmp_path))
    assert result.returncode == 0, result.stderr
    with engine.connect() as conn:
        rules = set(conn.execute(select(Alert.rule_id)).scalars())
        deliveries = conn.execute(select(Delivery.channel, Delivery.recipient_id)).all()
    assert "load.single_run_spike" in rules
    assert ("email", "ann") in {(d.channel, d.recipient_id) for d in deliveries}
