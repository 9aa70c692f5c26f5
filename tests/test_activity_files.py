"""Reading activity files: FIT written by fit-tool (independent of the Garmin SDK that reads it),
hand-checked GPX and TCX fixtures, and every kind of bad file, each refused with a clear reason.

Expected distances are checked independently of the code under test. The GPX loop goes
0.01125° north, 0.0164° east, back south and back west from 47° N 8° E: on the WGS 84
ellipsoid (meridian arc 111,171.6 m per degree at 47°, parallel 76,058 m per degree) that is
2 × 1,250.7 m + 2 × 1,247.2 m = 4,995.7 m (Vincenty's inverse formula gives 4,995.72 m).
"""

from __future__ import annotations

import gzip
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fit_tool.profile.profile_type import FileType, Sport, SubSport
from hypothesis import given
from hypothesis import strategies as st

from ingest.files.fit import read_fit
from ingest.files.gpx import read_gpx
from ingest.files.model import FileRefusedError, NotARunError
from ingest.files.source import MAX_CONTENT_BYTES, content_of, gunzip, read_file
from ingest.files.tcx import read_tcx
from ingest.files.track import ELEVATION_HYSTERESIS_M, elevation_gain
from testsupport.fitfiles import Leg, fit_bytes

FIXTURES = Path(__file__).parent / "fixtures" / "activities"
START = datetime(2026, 11, 20, 7, 0, tzinfo=UTC)
LOOP_WGS84_M = 4995.7


def within(value: float, expected: float, percent: float = 0.5) -> bool:
    return abs(value - expected) <= expected * percent / 100


# --- FIT ---------------------------------------------------------------------------------------


def test_a_5_km_fit_run_with_1_s_records_is_read_from_its_session() -> None:
    data = fit_bytes([Leg(START, seconds=1800, distance_m=5000.0, timer_s=1750.0)])
    (run,) = read_fit(data)
    assert run.index == 0
    assert run.start == START
    assert run.end == START + timedelta(seconds=1800)
    assert within(run.distance_m, 5000.0)
    assert run.moving_s == 1750.0  # the timer time: pauses are not moving time
    assert run.elevation_gain_m == 42.0
    # FIT running cadence is strides per minute of one foot: 86.5 strides = 173 steps.
    assert run.cadence_spm == 173.0
    assert (run.hr_avg_bpm, run.hr_max_bpm) == (148.0, 171.0)
    assert run.source_name == "Forerunner 265"


def test_a_multisport_fit_file_yields_only_its_run_leg() -> None:
    bike = Leg(START, seconds=3600, distance_m=30000.0, sport=Sport.CYCLING, hr_avg=130)
    run = Leg(START + timedelta(seconds=3700), seconds=1500, distance_m=5000.0, hr_avg=160)
    (only,) = read_fit(fit_bytes([bike, run]))
    assert only.index == 1
    assert only.start == START + timedelta(seconds=3700)
    assert within(only.distance_m, 5000.0)
    assert only.hr_avg_bpm == 160.0


def test_a_treadmill_fit_run_without_gps_uses_its_recorded_distance() -> None:
    leg = Leg(START, seconds=2400, distance_m=6000.0, sub_sport=SubSport.TREADMILL, gps=False)
    (run,) = read_fit(fit_bytes([leg]))
    assert within(run.distance_m, 6000.0)
    assert run.moving_s == 2400.0


def test_a_trail_run_is_a_run() -> None:
    (run,) = read_fit(fit_bytes([Leg(START, sub_sport=SubSport.TRAIL)]))
    assert within(run.distance_m, 5000.0)


def test_a_fit_ride_is_not_a_run() -> None:
    with pytest.raises(NotARunError, match="cycling"):
        read_fit(fit_bytes([Leg(START, sport=Sport.CYCLING, distance_m=20000.0)]))


def test_a_fit_course_is_not_an_activity() -> None:
    with pytest.raises(NotARunError, match="course"):
        read_fit(fit_bytes([Leg(START)], file_type=FileType.COURSE))


def test_without_a_product_name_the_source_is_the_maker_and_product() -> None:
    (run,) = read_fit(fit_bytes([Leg(START)], product_name=None))
    assert run.source_name.startswith("Garmin ")


def test_a_fit_file_with_a_corrupt_byte_fails_its_crc() -> None:
    data = bytearray(fit_bytes([Leg(START)]))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(FileRefusedError, match="CRC"):
        read_fit(bytes(data))


def test_a_truncated_fit_file_is_refused_as_truncated() -> None:
    data = fit_bytes([Leg(START)])
    with pytest.raises(FileRefusedError, match=r"truncated FIT file.*the file has 4000"):
        read_fit(data[:4000])


def test_bytes_that_are_not_fit_are_refused() -> None:
    with pytest.raises(FileRefusedError, match="not a FIT file"):
        read_fit(b"0123456789abcdefghij")


# --- GPX ---------------------------------------------------------------------------------------


def test_the_gpx_loop_with_a_pause_gives_distance_and_moving_time() -> None:
    (run,) = read_gpx((FIXTURES / "loop_5k_pause.gpx").read_bytes())
    assert within(run.distance_m, LOOP_WGS84_M)
    # 4 legs of 75 steps of 5 s, then 2 minutes standing at a crossing.
    assert run.moving_s == 1500.0
    assert run.end - run.start == timedelta(seconds=1620)
    assert run.start == datetime(2026, 11, 14, 8, 0, tzinfo=UTC)
    assert run.elevation_gain_m == pytest.approx(10.0)  # up 10 m on the first leg
    assert run.hr_max_bpm == 150.0
    assert run.source_name == "Hand-made fixture"


def test_a_gpx_track_without_time_stamps_is_refused_with_the_reason() -> None:
    text = (FIXTURES / "loop_5k_pause.gpx").read_text()
    untimed = "\n".join(line for line in text.splitlines() if "<metadata>" not in line)
    untimed = untimed.replace("<time>", "<!--").replace("</time>", "-->")
    with pytest.raises(FileRefusedError, match="without time stamps"):
        read_gpx(untimed.encode())


def test_a_gpx_ride_is_not_a_run() -> None:
    text = (FIXTURES / "loop_5k_pause.gpx").read_text().replace("running", "cycling")
    with pytest.raises(NotARunError, match="cycling"):
        read_gpx(text.encode())


def test_a_gpx_file_with_entities_is_refused_before_expansion() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE gpx [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]><gpx>&b;</gpx>'
    )
    with pytest.raises(FileRefusedError, match="DTD"):
        read_gpx(bomb)


def test_a_gpx_file_that_is_not_xml_is_refused() -> None:
    with pytest.raises(FileRefusedError, match="not valid GPX XML"):
        read_gpx(b"<gpx><trk>")


# --- TCX ---------------------------------------------------------------------------------------


def test_a_treadmill_tcx_without_gps_uses_its_lap_totals() -> None:
    (run,) = read_tcx((FIXTURES / "treadmill.tcx").read_bytes())
    assert run.distance_m == 5000.0
    assert run.moving_s == 1800.0
    assert run.start == datetime(2026, 11, 16, 18, 30, tzinfo=UTC)
    assert run.end == run.start + timedelta(minutes=30)
    assert run.cadence_spm == 168.0  # AvgRunCadence 84 strides/min
    assert (run.hr_avg_bpm, run.hr_max_bpm) == (150.0, 160.0)
    assert run.source_name == "Hand-made treadmill fixture"


def test_a_treadmill_tcx_without_lap_totals_sums_its_recorded_distance() -> None:
    text = (FIXTURES / "treadmill.tcx").read_text()
    text = text.replace("<TotalTimeSeconds>1800.0</TotalTimeSeconds>", "")
    text = text.replace("<DistanceMeters>5000.0</DistanceMeters>\n        <Calories>", "<Calories>")
    (run,) = read_tcx(text.encode())
    assert within(run.distance_m, 5000.0)
    assert run.moving_s == 1800.0


def test_a_tcx_ride_is_not_a_run() -> None:
    text = (FIXTURES / "treadmill.tcx").read_text().replace('Sport="Running"', 'Sport="Biking"')
    with pytest.raises(NotARunError, match="biking"):
        read_tcx(text.encode())


# --- limits ------------------------------------------------------------------------------------


def test_an_empty_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.fit"
    path.touch()
    with pytest.raises(FileRefusedError, match="empty file"):
        read_file(path)


def test_a_2_gb_file_is_refused_from_its_size_without_reading_it(tmp_path: Path) -> None:
    path = tmp_path / "huge.fit"
    with path.open("wb") as handle:
        handle.truncate(2 * 1024**3)  # sparse: nothing is written
    started = time.monotonic()
    with pytest.raises(FileRefusedError, match="file is 2048 MiB; the limit is 64 MiB"):
        read_file(path)
    assert time.monotonic() - started < 1.0


def test_a_gzip_bomb_is_refused_at_the_content_limit() -> None:
    bomb = gzip.compress(b"\0" * (MAX_CONTENT_BYTES + 1024 * 1024), compresslevel=9)
    assert len(bomb) < 200_000
    with pytest.raises(FileRefusedError, match="larger than the limit of 64 MiB"):
        gunzip(bomb)


def test_a_gzipped_file_reads_as_its_content() -> None:
    data = (FIXTURES / "treadmill.tcx").read_bytes()
    fmt, content = content_of(gzip.compress(data), "treadmill.tcx.gz")
    assert (fmt.value, content) == ("TCX", data)


def test_truncated_gzip_data_is_refused() -> None:
    packed = gzip.compress((FIXTURES / "treadmill.tcx").read_bytes())
    with pytest.raises(FileRefusedError, match="truncated gzip"):
        content_of(packed[: len(packed) // 2], "x.tcx.gz")


def test_a_file_of_another_kind_is_refused() -> None:
    with pytest.raises(FileRefusedError, match="not a FIT, GPX or TCX file"):
        content_of(b"date,distance\n2026-11-01,5.0\n", "runs.csv")


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileRefusedError, match="directory"):
        read_file(tmp_path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads every file")
def test_an_unreadable_file_is_refused(tmp_path: Path) -> None:  # pragma: no cover - as root
    path = tmp_path / "secret.fit"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(FileRefusedError, match="permission denied"):
        read_file(path)


# --- climb -------------------------------------------------------------------------------------


@given(st.lists(st.floats(0.0, ELEVATION_HYSTERESIS_M * 0.99), min_size=2, max_size=200))
def test_noise_smaller_than_the_hysteresis_adds_no_climb(noise: list[float]) -> None:
    assert elevation_gain([400.0 + n for n in noise]) == 0.0


@given(st.lists(st.floats(0.0, 50.0), min_size=1, max_size=100))
def test_a_climb_that_only_rises_counts_in_full(steps: list[float]) -> None:
    elevations = [100.0]
    for step in steps:
        elevations.append(elevations[-1] + step)
    rise = elevations[-1] - elevations[0]
    expected = rise if rise >= ELEVATION_HYSTERESIS_M else 0.0
    assert elevation_gain(elevations) == pytest.approx(expected)
