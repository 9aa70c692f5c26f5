"""TCX (Garmin Training Center) activities, read with the standard XML library (through
defusedxml).

Every `<Activity Sport="Running">` is one run; other sports are skipped. The laps give the
distance (`DistanceMeters`) and moving time (`TotalTimeSeconds`, which excludes pauses); where a
lap lacks them they are computed from the track points (`ingest.files.track`): from the
recorded cumulative `DistanceMeters` where there is one (a treadmill run has no positions),
else from the positions. Heart rate comes from the laps or the points, cadence from Garmin's
`AvgRunCadence` lap extension (strides per minute, doubled to steps), climb from the altitudes.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from xml.etree.ElementTree import Element

from ingest.files.model import ActivityRun, FileRefusedError, NotARunError
from ingest.files.track import TrackPoint, elevation_gain, summarise
from ingest.files.xmlsafe import local, parse_xml


def _children(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element if local(child.tag) == name)


def _child(element: Element, name: str) -> Element | None:
    return next(_children(element, name), None)


def _descendants(element: Element, name: str) -> Iterator[Element]:
    return (child for child in element.iter() if local(child.tag) == name)


def _number(element: Element | None, name: str) -> float | None:
    """The number in a child element (`<Value>` inside it for heart rates), if any."""
    if element is None:
        return None
    child = _child(element, name)
    if child is None:
        return None
    value = _child(child, "Value")
    text = (value if value is not None else child).text
    try:
        number = float(text) if text else None
    except ValueError:
        return None
    return number if number is not None and math.isfinite(number) else None


def _time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _point(element: Element) -> TrackPoint | None:
    when = _time(getattr(_child(element, "Time"), "text", None))
    if when is None:
        return None
    position = _child(element, "Position")
    return TrackPoint(
        time=when,
        lat=_number(position, "LatitudeDegrees"),
        lon=_number(position, "LongitudeDegrees"),
        elevation_m=_number(element, "AltitudeMeters"),
        distance_m=_number(element, "DistanceMeters"),
        hr_bpm=_number(element, "HeartRateBpm"),
    )


def _creator(activity: Element) -> str:
    creator = _child(activity, "Creator")
    if creator is None:
        return "TCX file"
    name = getattr(_child(creator, "Name"), "text", None)
    return (name or "").strip()[:200] or "TCX file"


def _run(index: int, activity: Element) -> ActivityRun:
    laps = list(_children(activity, "Lap"))
    segments = [
        [p for p in (_point(tp) for tp in _descendants(track, "Trackpoint")) if p is not None]
        for lap in laps
        for track in _children(lap, "Track")
    ]
    summary = summarise(segments)
    lap_starts = [t for t in (_time(lap.get("StartTime")) for lap in laps) if t is not None]
    lap_seconds = [_number(lap, "TotalTimeSeconds") for lap in laps]
    lap_metres = [_number(lap, "DistanceMeters") for lap in laps]
    have_lap_totals = bool(laps) and None not in lap_seconds and None not in lap_metres
    if have_lap_totals:
        moving = math.fsum(s for s in lap_seconds if s is not None)
        distance = math.fsum(m for m in lap_metres if m is not None)
    elif summary is not None:
        moving, distance = summary.moving_s, summary.distance_m
    else:
        raise FileRefusedError(
            f"TCX activity {index} has neither lap totals nor timed track points"
        )
    starts = [*lap_starts, *([summary.start] if summary else [])]
    if not starts:
        raise FileRefusedError(f"TCX activity {index} has no time stamps")
    start = min(starts)
    end = summary.end if summary is not None and summary.end > start else None
    if end is None:
        end = start + timedelta(seconds=moving)
    averages = [_number(lap, "AverageHeartRateBpm") for lap in laps]
    weights = [s or 0.0 for s in lap_seconds]
    hr_avg = summary.hr_avg_bpm if summary else None
    if averages and None not in averages and math.fsum(weights) > 0:
        hr_avg = round(
            math.fsum((a or 0.0) * w for a, w in zip(averages, weights, strict=True))
            / math.fsum(weights),
            1,
        )
    maxima = [m for m in (_number(lap, "MaximumHeartRateBpm") for lap in laps) if m]
    hr_max = max(maxima) if maxima else (summary.hr_max_bpm if summary else None)
    cadences = [
        (float(c.text), w)
        for lap, w in zip(laps, weights, strict=True)
        for c in _descendants(lap, "AvgRunCadence")
        if c.text and c.text.strip().replace(".", "", 1).isdigit()
    ]
    cadence = None
    if cadences and math.fsum(w for _, w in cadences) > 0:
        strides = math.fsum(c * w for c, w in cadences) / math.fsum(w for _, w in cadences)
        cadence = round(2.0 * strides, 2) if strides > 0 else None
    elevations = [
        p.elevation_m for segment in segments for p in segment if p.elevation_m is not None
    ]
    return ActivityRun(
        index=index,
        start=start,
        end=end,
        distance_m=distance,
        moving_s=moving,
        source_name=_creator(activity),
        elevation_gain_m=elevation_gain(elevations),
        cadence_spm=cadence,
        hr_avg_bpm=hr_avg,
        hr_max_bpm=hr_max,
    )


def read_tcx(content: bytes) -> list[ActivityRun]:
    """The running activities of a TCX file; raises `FileRefusedError` or `NotARunError`."""
    root = parse_xml(content, "TCX")
    if local(root.tag) != "TrainingCenterDatabase":
        raise FileRefusedError("not a TCX file (no TrainingCenterDatabase)")
    activities = list(_descendants(root, "Activity"))
    if not activities:
        raise FileRefusedError("TCX file without an activity")
    runs: list[ActivityRun] = []
    others: list[str] = []
    for index, activity in enumerate(activities):
        sport = activity.get("Sport", "")
        if sport.lower() != "running":
            others.append(sport.lower() or "unknown sport")
            continue
        runs.append(_run(index, activity))
    if not runs:
        raise NotARunError(", ".join(sorted(set(others))))
    return runs
