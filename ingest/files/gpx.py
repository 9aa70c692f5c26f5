"""GPX tracks, read with `gpxpy`.

Every track is one activity; a track whose `<type>` names another sport is skipped, and a track
without a type is taken as a run. GPX carries no summary, so the distance (haversine), moving
time (pauses excluded), climb and heart rate (Garmin's TrackPointExtension `hr`) are computed
from the points (`ingest.files.track`). Points without a time stamp cannot give a duration: a
track with fewer than two timed points is refused.
"""

from __future__ import annotations

from datetime import UTC, datetime

import gpxpy
import gpxpy.gpx
from gpxpy.gpx import GPXException

from ingest.files.model import ActivityRun, FileRefusedError, NotARunError
from ingest.files.track import TrackPoint, summarise
from ingest.files.xmlsafe import local, parse_xml

RUN_TYPES = frozenset({"running", "run", "trail_running", "treadmill_running", "street_running",
                       "track_running", "indoor_running", "virtual_running", "9"})  # fmt: skip


def _hr(point: gpxpy.gpx.GPXTrackPoint) -> float | None:
    for extension in point.extensions:
        for element in extension.iter():
            if local(element.tag) == "hr" and element.text:
                try:
                    return float(element.text)
                except ValueError:
                    return None
    return None


def _utc(value: datetime) -> datetime:
    # GPX times are UTC by the standard; a time written without a zone is read as UTC.
    return value.astimezone(UTC) if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _is_run(track: gpxpy.gpx.GPXTrack) -> bool:
    kind = (track.type or "").strip().lower().replace(" ", "_")
    return not kind or kind in RUN_TYPES


def read_gpx(content: bytes) -> list[ActivityRun]:
    """The runs of a GPX file; raises `FileRefusedError` or `NotARunError`."""
    parse_xml(content, "GPX")  # refuses DTDs and invalid XML before gpxpy sees the text
    try:
        document = gpxpy.parse(content.decode("utf-8", "replace"))
    except GPXException as exc:
        raise FileRefusedError(f"not a valid GPX file ({str(exc)[:100]})") from None
    if not document.tracks:
        raise FileRefusedError("GPX file without a track")
    creator = (document.creator or "").strip()[:200] or "GPX file"
    runs: list[ActivityRun] = []
    others: list[str] = []
    untimed = 0
    for index, track in enumerate(document.tracks):
        if not _is_run(track):
            others.append(str(track.type))
            continue
        segments = [
            [
                TrackPoint(
                    time=_utc(p.time),
                    lat=p.latitude,
                    lon=p.longitude,
                    elevation_m=p.elevation,
                    hr_bpm=_hr(p),
                )
                for p in segment.points
                if p.time is not None
            ]
            for segment in track.segments
        ]
        summary = summarise(segments)
        if summary is None:
            untimed += 1
            continue
        runs.append(
            ActivityRun(
                index=index,
                start=summary.start,
                end=summary.end,
                distance_m=summary.distance_m,
                moving_s=summary.moving_s,
                source_name=creator,
                created=_utc(document.time) if document.time else None,
                elevation_gain_m=summary.elevation_gain_m,
                hr_avg_bpm=summary.hr_avg_bpm,
                hr_max_bpm=summary.hr_max_bpm,
            )
        )
    if untimed and not runs:
        raise FileRefusedError(
            "GPX track without time stamps: the run's time and duration are unknown"
        )
    if not runs:
        raise NotARunError(", ".join(sorted(set(others))))
    return runs
