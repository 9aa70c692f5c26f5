"""What the activity-file readers produce: runs in metres and seconds, or a reason for none."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


class FileRefusedError(ValueError):
    """The file cannot be read (corrupt, truncated, too large, no time stamps...).

    The message is one line for the person importing it, safe to show: it never holds the
    file's contents.
    """


class NotARunError(ValueError):
    """A readable activity file that holds no run (a ride, a swim, a course...)."""


@dataclass(frozen=True, slots=True)
class ActivityRun:
    """One run read from a file.

    `index` numbers the runs of one file in file order (a FIT session index, a GPX track or a
    TCX activity); with the file's content it makes the run's uuid. Times are timezone-aware.
    """

    index: int
    start: datetime
    end: datetime
    distance_m: float
    moving_s: float
    source_name: str
    created: datetime | None = None
    elevation_gain_m: float | None = None
    cadence_spm: float | None = None
    hr_avg_bpm: float | None = None
    hr_max_bpm: float | None = None
