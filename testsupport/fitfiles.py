"""FIT activity files written with `fit-tool`, an implementation independent of the Garmin SDK
the product reads them with: what the tests and the import benchmark feed the importer.

A leg is one session with its 1 s records; the records move due north along a meridian at a
constant speed, so the track's length is the session's distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from fit_tool.fit_file_builder import FitFileBuilder
from fit_tool.profile.messages.activity_message import ActivityMessage
from fit_tool.profile.messages.device_info_message import DeviceInfoMessage
from fit_tool.profile.messages.event_message import EventMessage
from fit_tool.profile.messages.file_id_message import FileIdMessage
from fit_tool.profile.messages.lap_message import LapMessage
from fit_tool.profile.messages.record_message import RecordMessage
from fit_tool.profile.messages.session_message import SessionMessage
from fit_tool.profile.profile_type import (
    Event,
    EventType,
    FileType,
    Manufacturer,
    Sport,
    SubSport,
)

EARTH_RADIUS_M = 6_371_008.8


@dataclass(frozen=True)
class Leg:
    """One session: a run unless `sport` says otherwise."""

    start: datetime
    seconds: int = 1800
    distance_m: float = 5000.0
    sport: Sport = Sport.RUNNING
    sub_sport: SubSport = SubSport.GENERIC
    timer_s: float | None = None  # moving time; the elapsed time when None
    ascent_m: int | None = 42
    strides_per_min: int | None = 86  # FIT running cadence: one foot
    fractional_cadence: float | None = 0.5
    hr_avg: int | None = 148
    hr_max: int | None = 171
    gps: bool = True
    records: bool = True


def _ms(instant: datetime) -> int:
    return round(instant.timestamp() * 1000)


def fit_bytes(
    legs: Sequence[Leg],
    product_name: str | None = "Forerunner 265",
    file_type: FileType = FileType.ACTIVITY,
) -> bytes:
    """A FIT activity file with one session per leg."""
    builder = FitFileBuilder(auto_define=True, min_string_size=50)
    first = legs[0].start if legs else datetime(2026, 1, 1, tzinfo=UTC)
    file_id = FileIdMessage()
    file_id.type = file_type
    file_id.manufacturer = Manufacturer.GARMIN.value
    file_id.product = 4315
    file_id.serial_number = 0x12345678
    file_id.time_created = _ms(first)
    builder.add(file_id)
    device = DeviceInfoMessage()
    device.timestamp = _ms(first)
    device.device_index = 0
    device.manufacturer = Manufacturer.GARMIN.value
    device.product = 4315
    if product_name is not None:
        device.product_name = product_name
    builder.add(device)
    for index, leg in enumerate(legs):
        end = leg.start + timedelta(seconds=leg.seconds)
        event = EventMessage()
        event.event = Event.TIMER
        event.event_type = EventType.START
        event.timestamp = _ms(leg.start)
        builder.add(event)
        if leg.records:
            builder.add_all(_records(leg))
        stop = EventMessage()
        stop.event = Event.TIMER
        stop.event_type = EventType.STOP_ALL
        stop.timestamp = _ms(end)
        builder.add(stop)
        lap = LapMessage()
        lap.message_index = index
        lap.timestamp = _ms(end)
        lap.start_time = _ms(leg.start)
        lap.total_elapsed_time = float(leg.seconds)
        lap.total_timer_time = float(leg.timer_s or leg.seconds)
        lap.total_distance = leg.distance_m
        builder.add(lap)
        session = SessionMessage()
        session.message_index = index
        session.timestamp = _ms(end)
        session.start_time = _ms(leg.start)
        session.sport = leg.sport
        session.sub_sport = leg.sub_sport
        session.total_elapsed_time = float(leg.seconds)
        session.total_timer_time = float(leg.timer_s or leg.seconds)
        session.total_distance = leg.distance_m
        session.first_lap_index = index
        session.num_laps = 1
        if leg.ascent_m is not None:
            session.total_ascent = leg.ascent_m
        if leg.strides_per_min is not None:
            session.avg_running_cadence = leg.strides_per_min
        if leg.fractional_cadence is not None:
            session.avg_fractional_cadence = leg.fractional_cadence
        if leg.hr_avg is not None:
            session.avg_heart_rate = leg.hr_avg
        if leg.hr_max is not None:
            session.max_heart_rate = leg.hr_max
        builder.add(session)
    last = legs[-1].start + timedelta(seconds=legs[-1].seconds) if legs else first
    activity = ActivityMessage()
    activity.timestamp = _ms(last)
    activity.num_sessions = len(legs)
    activity.total_timer_time = float(sum(leg.timer_s or leg.seconds for leg in legs))
    builder.add(activity)
    data: bytes = builder.build().to_bytes()
    return data


def _records(leg: Leg) -> list[RecordMessage]:
    speed = leg.distance_m / leg.seconds
    records = []
    for second in range(leg.seconds + 1):
        distance = speed * second
        record = RecordMessage()
        record.timestamp = _ms(leg.start + timedelta(seconds=second))
        record.distance = distance
        if leg.gps:
            record.position_lat = 48.0 + math.degrees(distance / EARTH_RADIUS_M)
            record.position_long = 11.0
        record.altitude = 500.0 + 10.0 * math.sin(second / 120.0)
        if leg.hr_avg is not None:
            record.heart_rate = leg.hr_avg
        if leg.strides_per_min is not None and leg.sport is Sport.RUNNING:
            record.cadence = leg.strides_per_min
        records.append(record)
    return records
