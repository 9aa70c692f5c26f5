"""Importing activity files into the database (SQLite and PostgreSQL): the same validation and
storage as an MQTT run, idempotent per file, de-duplicated against MQTT runs, bad files one line
each, and the rules: a recent spike from a file opens the alert an MQTT run opens, old history
notifies nobody."""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fit_tool.profile.profile_type import Sport
from sqlalchemy import Engine, func, insert, select

from contract.topics import Kind, Topics
from db.models import Alert, Athlete, Delivery, Device, Run
from ingest.files.importer import (
    IMPORT_DEVICE_ID,
    FileOutcome,
    UnknownAthleteError,
    import_bytes,
    import_files,
)
from ingest.messages import Inbound
from ingest.writer import Stored, Writer
from kneeguard.importing import ActivityImport
from notifier.routing import enqueue_alerts
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.store import Change
from testsupport import run_payload
from testsupport.fitfiles import Leg, fit_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "activities"
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TOPICS = Topics("kneeguard/v1")


def session_only(start: datetime, distance_m: float = 5000.0, seconds: int = 1800) -> bytes:
    """A FIT run with its session and no records: quick to write, the same to the importer."""
    return fit_bytes([Leg(start, seconds=seconds, distance_m=distance_m, records=False)])


@pytest.fixture
def club(engine: Engine) -> Engine:
    with engine.begin() as conn:
        for athlete_id in ("ann", "bob"):
            conn.execute(
                insert(Athlete).values(
                    id=athlete_id,
                    name=athlete_id.title(),
                    email=f"{athlete_id}@example.com",
                    timezone="Europe/Oslo",
                    created_at=NOW - timedelta(days=400),
                )
            )
        conn.execute(insert(Device).values(athlete_id="bob", id="watch", created_at=NOW))
    return engine


def runs_of(engine: Engine, athlete_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(Run).where(Run.athlete_id == athlete_id).order_by(Run.start_time)
            ).all()
        )


class NoBroker:
    def publish(self, topic: str, payload: bytes) -> None:
        pass

    def ack(self, mid: int, qos: int, connection: int = 0) -> None:
        pass

    def answering(self) -> AbstractContextManager[None]:
        return nullcontext()


def mqtt_run(engine: Engine, start: datetime, distance_m: float, athlete_id: str = "bob") -> None:
    """A run sent by bob's watch, through the ingest writer."""
    payload = run_payload(
        effective_time_frame={
            "time_interval": {
                "start_date_time": start.isoformat(),
                "end_date_time": (start + timedelta(minutes=30)).isoformat(),
            }
        },
        distance={"value": distance_m, "unit": "m"},
        duration={"value": 1800, "unit": "sec"},
        perceived_exertion=None,
    )
    payload["header"]["source_creation_date_time"] = start.isoformat()
    topic = TOPICS.inbound(athlete_id, "watch", Kind.RUN)
    (outcome,) = Writer(engine, TOPICS, NoBroker()).store_batch(
        [Inbound(topic, json.dumps(payload).encode(), 1, 1, NOW)]
    )
    assert outcome.status == "accepted", outcome.errors


# --- storage -----------------------------------------------------------------------------------


def test_files_and_a_folder_become_runs_with_their_source(club: Engine, tmp_path: Path) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "treadmill.tcx.gz").write_bytes(
        gzip.compress((FIXTURES / "treadmill.tcx").read_bytes())
    )
    (folder / "notes.txt").write_text("not an activity")
    fit = tmp_path / "morning.fit"
    fit.write_bytes(session_only(NOW - timedelta(hours=3)))
    outcomes = import_files(club, "ann", [fit, folder, FIXTURES / "loop_5k_pause.gpx"], NOW)
    assert [o.status for o in outcomes] == ["imported"] * 3
    runs = runs_of(club, "ann")
    assert len(runs) == 3
    by_source = {run.source_name: run for run in runs}
    fit_run = by_source["Forerunner 265"]
    assert fit_run.device_id == IMPORT_DEVICE_ID
    assert fit_run.distance_m == 5000.0
    assert fit_run.cadence_spm == 173.0
    assert fit_run.source_data_point_id == f"{fit}#0"
    assert fit_run.modality == "sensed"
    assert fit_run.received_at == NOW
    assert not fit_run.history
    gpx_run = by_source["Hand-made fixture"]
    assert gpx_run.duration_s == 1500.0
    assert abs(gpx_run.distance_m - 4995.7) <= 4995.7 * 0.005
    assert gpx_run.history  # 17 days before the import
    assert by_source["Hand-made treadmill fixture"].distance_m == 5000.0


def test_importing_a_file_again_is_already_imported(club: Engine, tmp_path: Path) -> None:
    path = tmp_path / "run.fit"
    path.write_bytes(session_only(NOW - timedelta(days=3)))
    (first,) = import_files(club, "ann", [path], NOW)
    (again,) = import_files(club, "ann", [path], NOW + timedelta(hours=1))
    assert first.status == "imported"
    assert again.status == "already imported"
    assert again.stored == []
    assert "already imported" in again.line()
    assert len(runs_of(club, "ann")) == 1


def test_a_run_already_sent_over_mqtt_is_already_imported(club: Engine) -> None:
    start = NOW - timedelta(hours=6)
    mqtt_run(club, start, 10_000.0)
    same = session_only(start + timedelta(seconds=45), distance_m=10_080.0)
    other_distance = session_only(start + timedelta(seconds=10), distance_m=10_150.0)
    later = session_only(start + timedelta(seconds=75), distance_m=10_000.0)
    assert import_bytes(club, "bob", "same.fit", same, NOW).status == "already imported"
    assert import_bytes(club, "bob", "longer.fit", other_distance, NOW).status == "imported"
    assert import_bytes(club, "bob", "later.fit", later, NOW).status == "imported"
    # Another athlete's run is never this athlete's duplicate.
    assert import_bytes(club, "ann", "same.fit", same, NOW).status == "imported"
    assert len(runs_of(club, "bob")) == 3


def test_bad_files_get_a_line_each_and_the_rest_is_imported(club: Engine, tmp_path: Path) -> None:
    good = session_only(NOW - timedelta(hours=2))
    corrupt = bytearray(good)
    corrupt[40] ^= 0xFF
    files = {
        "a_corrupt.fit": bytes(corrupt),
        "b_truncated.fit": good[:60],
        "c_empty.gpx": b"",
        "d_bomb.gpx.gz": gzip.compress(b" " * (65 * 1024 * 1024)),
        "e_ride.fit": fit_bytes([Leg(NOW - timedelta(days=1), sport=Sport.CYCLING, records=False)]),
        "f_untimed.gpx": b'<gpx><trk><trkseg><trkpt lat="1" lon="2"/><trkpt lat="1.1" lon="2"/>'
        b"</trkseg></trk></gpx>",
        "g_good.fit": good,
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    huge = tmp_path / "h_huge.fit"
    with huge.open("wb") as handle:
        handle.truncate(2 * 1024**3)
    outcomes = import_files(club, "ann", [tmp_path, tmp_path / "missing.fit"], NOW)
    lines = [o.line() for o in outcomes]
    assert [o.status for o in outcomes] == [
        "refused", "refused", "refused", "refused", "skipped", "refused", "imported", "refused",
        "refused",
    ]  # fmt: skip
    assert "CRC" in lines[0]
    assert "truncated FIT file" in lines[1]
    assert lines[2].endswith("c_empty.gpx: refused: empty file")
    assert "larger than the limit of 64 MiB" in lines[3]
    assert lines[4].endswith("e_ride.fit: skipped (not a run: cycling)")
    assert "without time stamps" in lines[5]
    assert "h_huge.fit: refused: file is 2048 MiB; the limit is 64 MiB" in lines[7]
    assert lines[8].endswith("missing.fit: refused: no such file")
    assert len(runs_of(club, "ann")) == 1


def test_a_run_the_wire_model_refuses_is_refused_naming_the_field(club: Engine) -> None:
    # 1,500 km is beyond what the run payload allows: the same validation as over MQTT says so.
    data = session_only(NOW - timedelta(days=2), distance_m=1_500_000.0, seconds=86_400)
    outcome = import_bytes(club, "ann", "ultra.fit", data, NOW)
    assert outcome.status == "refused"
    assert outcome.refused
    assert "body.distance.value" in outcome.line()
    assert runs_of(club, "ann") == []


def test_the_bounds_of_mqtt_runs_hold_for_runs_from_files(club: Engine) -> None:
    too_fast = session_only(NOW - timedelta(days=1), distance_m=5000.0, seconds=500)
    future = session_only(NOW + timedelta(hours=3))
    fast = import_bytes(club, "ann", "fast.fit", too_fast, NOW)
    late = import_bytes(club, "ann", "future.fit", future, NOW)
    assert fast.status == "refused"
    assert "faster than 2:00 min/km" in fast.line()
    assert late.status == "refused"
    assert "more than one hour after" in late.line()
    assert runs_of(club, "ann") == []


def test_an_unknown_athlete_is_refused_before_any_file_is_read(club: Engine) -> None:
    with pytest.raises(UnknownAthleteError, match="nobody"):
        import_files(club, "nobody", [Path("/nonexistent/run.fit")], NOW)
    with pytest.raises(UnknownAthleteError):
        import_bytes(club, "nobody", "run.fit", b"", NOW)


def test_an_upload_with_a_strange_name_is_stored_under_a_clean_one(club: Engine) -> None:
    data = session_only(NOW - timedelta(hours=4))
    outcome = import_bytes(club, "ann", "run\udcff\n.fit", data, NOW)
    assert outcome.status == "imported"
    assert outcome.name == "run??.fit"
    (run,) = runs_of(club, "ann")
    assert run.source_data_point_id == "run??.fit#0"


# --- rules -------------------------------------------------------------------------------------


def history_starts(last: datetime) -> list[datetime]:
    """Twelve runs three days apart, ending with `last`."""
    return [last - timedelta(days=3 * i) for i in range(11, -1, -1)]


def deliveries(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Delivery)).scalar_one())


def alerts_of(engine: Engine, athlete_id: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Alert).where(Alert.athlete_id == athlete_id)).all())


def importer(engine: Engine) -> ActivityImport:
    def write(conn: Any, changes: Sequence[Change], now: datetime) -> None:
        enqueue_alerts(conn, [(c.alert_id, c.kind) for c in changes], now, ("email",))

    rules = RuleEngine(engine, RulesConfig(), write_changes=write)
    return ActivityImport(engine, rules, clock=lambda: NOW)


def write_files(folder: Path, starts: Sequence[datetime], distance_m: float) -> list[Path]:
    folder.mkdir(exist_ok=True)
    paths = []
    for start in starts:
        path = folder / f"{start:%Y%m%d%H%M}.fit"
        path.write_bytes(session_only(start, distance_m=distance_m))
        paths.append(path)
    return paths


def test_a_recent_spike_from_a_file_opens_the_alert_an_mqtt_run_opens(
    club: Engine, tmp_path: Path
) -> None:
    spike_at = NOW - timedelta(hours=5)
    starts = history_starts(NOW - timedelta(days=6))
    imports = importer(club)
    history = list(imports.files("ann", write_files(tmp_path / "old", starts, 5000.0)))
    assert all(o.status == "imported" and o.runs[0].history for o in history)
    assert alerts_of(club, "ann") == []
    (spike,) = imports.files("ann", write_files(tmp_path / "new", [spike_at], 8000.0))
    assert spike.status == "imported" and not spike.runs[0].history
    # At once, without waiting for a sweep, and with their deliveries.
    from_file = {a.rule_id: a for a in alerts_of(club, "ann")}
    assert "load.single_run_spike" in from_file
    assert deliveries(club) >= 1

    for start in starts:
        mqtt_run(club, start, 5000.0)
    mqtt_run(club, spike_at, 8000.0)
    RuleEngine(club, RulesConfig()).sweep(NOW)
    from_mqtt = {a.rule_id: a for a in alerts_of(club, "bob")}
    assert sorted(from_file) == sorted(from_mqtt)
    for rule_id, alert in from_file.items():
        other = from_mqtt[rule_id]
        for column in ("severity", "recommendation", "message", "last_triggered_at", "evidence"):
            assert getattr(alert, column) == getattr(other, column), (rule_id, column)


def test_a_spike_imported_days_later_is_history_and_notifies_nobody(
    club: Engine, tmp_path: Path
) -> None:
    # Four days old: the sweep still judges such a run from MQTT, but not from an old file.
    spike_at = NOW - timedelta(days=4)
    starts = history_starts(NOW - timedelta(days=7))
    paths = write_files(tmp_path / "all", [*starts, spike_at], 5000.0)
    paths[-1].write_bytes(session_only(spike_at, distance_m=8000.0))
    outcomes = list(importer(club).files("ann", paths))
    assert all(o.status == "imported" for o in outcomes)
    assert "(history: no alerts)" in outcomes[-1].line()
    RuleEngine(club, RulesConfig()).sweep(NOW)
    assert alerts_of(club, "ann") == []
    assert deliveries(club) == 0

    for start in starts:
        mqtt_run(club, start, 5000.0)
    mqtt_run(club, spike_at, 8000.0)
    RuleEngine(club, RulesConfig()).sweep(NOW)
    assert [a.rule_id for a in alerts_of(club, "bob")] == ["load.single_run_spike"]


def test_months_old_history_with_a_spike_notifies_nobody(club: Engine, tmp_path: Path) -> None:
    months_ago = NOW - timedelta(days=150)
    starts = history_starts(months_ago)
    paths = write_files(tmp_path / "history", starts, 5000.0)
    paths += write_files(tmp_path / "spike", [months_ago + timedelta(days=2)], 9000.0)
    outcomes = list(importer(club).files("ann", [tmp_path / "history", *paths[-1:]]))
    assert [o.status for o in outcomes] == ["imported"] * 13
    RuleEngine(club, RulesConfig()).sweep(NOW)
    assert alerts_of(club, "ann") == []
    assert deliveries(club) == 0
    assert all(run.history for run in runs_of(club, "ann"))


def test_an_upload_is_judged_at_once_and_fires_run_stored(club: Engine) -> None:
    heard: list[Stored] = []
    imports = replace(importer(club), on_stored=heard.extend)
    for start in history_starts(NOW - timedelta(days=5)):
        outcome = imports.upload("ann", "h.fit", session_only(start, distance_m=5000.0))
        assert outcome.status == "imported"
    outcome = imports.upload("ann", "spike.fit", session_only(NOW - timedelta(hours=1), 9000.0))
    assert outcome.stored_recent
    assert "load.single_run_spike" in {a.rule_id for a in alerts_of(club, "ann")}
    assert len(heard) == 13
    assert {(s.kind, s.athlete_id, s.device_id) for s in heard} == {
        (Kind.RUN, "ann", IMPORT_DEVICE_ID)
    }


def test_outcome_lines_show_date_distance_and_moving_time() -> None:
    from ingest.files.importer import RunOutcome
    from ingest.files.model import ActivityRun

    run = ActivityRun(0, NOW, NOW + timedelta(minutes=31), 5012.0, 1805.0, "Watch")
    outcome = FileOutcome("a.fit", "imported", runs=(RunOutcome(run, "u", "imported"),))
    assert outcome.line() == "a.fit: imported 2026-12-01 12:00, 5.01 km, 0:30:05"
    history = replace(outcome, runs=(RunOutcome(run, "u", "imported", history=True),))
    assert history.line().endswith("(history: no alerts)")


def test_the_spike_rule_never_judges_a_history_run_but_compares_with_it() -> None:
    from rules.evaluate import evaluate_history
    from rules.model import AthleteHistory, RunFact

    def spikes(runs: list[RunFact]) -> list[str]:
        history = AthleteHistory("a", "UTC", runs, [])
        found = evaluate_history(history, NOW, RulesConfig())
        return [f.message for f in found if f.rule_id == "load.single_run_spike"]

    base = [
        RunFact(i, f"u{i}", NOW - timedelta(days=40 - 3 * i), 5000.0, 1800.0, history=True)
        for i in range(12)
    ]
    spike = RunFact(99, "s", NOW - timedelta(days=3), 8000.0, 2700.0)
    assert len(spikes([*base, spike])) == 1
    assert spikes([*base, replace(spike, history=True)]) == []
    # A long history run is still the reference: 8 km after 9 km is no spike.
    long_one = RunFact(50, "l", NOW - timedelta(days=6), 9000.0, 3000.0, history=True)
    assert spikes([*base, long_one, spike]) == []
