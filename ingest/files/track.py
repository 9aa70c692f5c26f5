"""Summaries computed from a recorded track, for files that do not carry them (GPX, some TCX).

Distance is the haversine great-circle distance on a sphere of the Earth's mean radius
(IUGG, 6,371,008.8 m), which is within 0.5 % of the WGS 84 ellipsoid's geodesic at every
latitude. Moving time counts the intervals between consecutive points in which the runner
moved at walking speed or faster (`MOVING_SPEED`); standing still for a light, or a watch's
auto-pause that leaves a gap in the points, is not moving time.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

EARTH_RADIUS_M: Final = 6_371_008.8
# Below this average speed between two points the runner is taken to be standing still (slow
# walking is about 1 m/s; GPS jitter while standing still stays well below 0.5 m/s).
MOVING_SPEED: Final = 0.5
# Elevation changes smaller than this are GPS and barometer noise, not climbing.
ELEVATION_HYSTERESIS_M: Final = 2.0


@dataclass(frozen=True, slots=True)
class TrackPoint:
    time: datetime
    lat: float | None = None
    lon: float | None = None
    elevation_m: float | None = None
    distance_m: float | None = None  # a cumulative distance recorded by the device (TCX)
    hr_bpm: float | None = None


@dataclass(frozen=True, slots=True)
class TrackSummary:
    start: datetime
    end: datetime
    distance_m: float
    moving_s: float
    elevation_gain_m: float | None
    hr_avg_bpm: float | None
    hr_max_bpm: float | None


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two points in degrees."""
    phi1, phi2 = math.radians(lat1), math.radians(lat2)
    dphi = phi2 - phi1
    dlambda = math.radians(lon2 - lon1)
    a = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlambda / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _step_m(a: TrackPoint, b: TrackPoint) -> float | None:
    """Distance between two consecutive points: the device's own where it recorded one."""
    if a.distance_m is not None and b.distance_m is not None:
        return max(0.0, b.distance_m - a.distance_m)
    if a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None:
        return haversine_m(a.lat, a.lon, b.lat, b.lon)
    return None


def elevation_gain(elevations: Sequence[float]) -> float | None:
    """Total climb: each climb from a low to a peak counts once it is `ELEVATION_HYSTERESIS_M`
    or more, so that noise on the flat adds nothing and a real hill counts in full."""
    if len(elevations) < 2:
        return None
    gain = 0.0
    low = high = elevations[0]
    for value in elevations[1:]:
        if value >= high:
            high = value
        elif high - value >= ELEVATION_HYSTERESIS_M:
            # Well below the peak: the climb from `low` to `high` is over.
            if high - low >= ELEVATION_HYSTERESIS_M:
                gain += high - low
            low = high = value
        elif value < low:
            low = high = value
    if high - low >= ELEVATION_HYSTERESIS_M:
        gain += high - low
    return gain


def summarise(segments: Sequence[Sequence[TrackPoint]]) -> TrackSummary | None:
    """Distance, moving time, climb and heart rate of a track made of segments.

    Each segment is summed on its own: a gap between segments (a pause in most apps) adds
    neither distance nor moving time. Returns None when no segment has two timed points.
    """
    points = [p for segment in segments for p in segment]
    if not any(len(segment) >= 2 for segment in segments):
        return None
    distance = moving = 0.0
    for segment in segments:
        for a, b in itertools.pairwise(segment):
            step = _step_m(a, b)
            seconds = (b.time - a.time).total_seconds()
            if step is None or seconds <= 0:
                continue
            distance += step
            if step / seconds >= MOVING_SPEED:
                moving += seconds
    elevations = [p.elevation_m for p in points if p.elevation_m is not None]
    rates = [p.hr_bpm for p in points if p.hr_bpm is not None and p.hr_bpm > 0]
    return TrackSummary(
        start=min(p.time for p in points),
        end=max(p.time for p in points),
        distance_m=distance,
        moving_s=moving,
        elevation_gain_m=elevation_gain(elevations),
        hr_avg_bpm=round(math.fsum(rates) / len(rates), 1) if rates else None,
        hr_max_bpm=max(rates) if rates else None,
    )
