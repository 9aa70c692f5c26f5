"""The facts rules read and the findings they produce: plain data, no database, no clock."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


class Severity(enum.IntEnum):
    """Ordered, so that "the severity rose" is a comparison."""

    INFO = 1
    WARNING = 2
    URGENT = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, label: str) -> Severity:
        return cls[label.upper()]


class Recommendation(enum.StrEnum):
    """Weakest to strongest (RULES.md): `rank` orders them, so "stronger" is a comparison."""

    MONITOR = "monitor"
    REDUCE_LOAD = "reduce_load"
    REST = "rest"
    PROFESSIONAL_ASSESSMENT = "professional_assessment"
    URGENT_CARE = "urgent_care"  # the same day
    EMERGENCY = "emergency"  # now

    @property
    def rank(self) -> int:
        return _RECOMMENDATION_RANK[self]


_RECOMMENDATION_RANK = {rec: index for index, rec in enumerate(Recommendation)}


@dataclass(frozen=True, slots=True)
class RunFact:
    """One stored run. `start` is UTC; distance in metres, duration in seconds."""

    id: int
    uuid: str
    start: datetime
    distance_m: float
    duration_s: float
    rpe: float | None = None
    cadence_spm: float | None = None
    # Imported long after it was run: load and reference, never judged on its own.
    history: bool = False


@dataclass(frozen=True, slots=True)
class PainSite:
    side: str  # left | right | both
    aspect: str  # anterior | lateral | medial | posterior | diffuse


@dataclass(frozen=True, slots=True)
class CheckinFact:
    """One stored check-in. `recorded_at` is UTC."""

    id: int
    uuid: str
    recorded_at: datetime
    context: str  # post_run | next_morning | daily
    pain_score: int
    pain_sites: tuple[PainSite, ...] = ()
    swelling: bool = False
    locking: bool = False
    giving_way: bool = False
    cannot_bear_weight: bool = False
    night_pain: bool = False
    fever: bool = False
    trauma: bool = False
    redness_warmth: bool = False
    numbness: bool = False  # numbness or pins and needles below the knee
    stopped_run: bool = False  # a run stopped or shortened because of knee pain
    ostrc: tuple[int, int, int, int] | None = None  # option indices 0-3 of q1..q4
    related_run_uuid: str | None = None


@dataclass(frozen=True, slots=True)
class AthleteHistory:
    """What the sweep knows about one athlete: runs and check-ins sorted by time (UTC)."""

    athlete_id: str
    timezone: str  # IANA name; days are the athlete's local calendar days
    runs: Sequence[RunFact]
    checkins: Sequence[CheckinFact]
    # When the athlete's oldest unresolved warning or urgent alert opened (engagement.quiet).
    attention_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """A rule that fired.

    `observed_at` is the instant of the data that made it fire (the run's start, the check-in's
    time, or the end of the window). The alert lifecycle keeps the latest `observed_at` as
    `last_triggered_at`, so evaluating the same data twice changes nothing, and an alert resolves
    itself once nothing has fired for 7 days.
    """

    rule_id: str
    severity: Severity
    recommendation: Recommendation
    observed_at: datetime
    message: str
    evidence: Mapping[str, float | int | str | None] = field(default_factory=dict)
    # The same finding told to the coach, in the third person; `{athlete}` stands for the
    # athlete's name, filled in when the notice is rendered.
    coach_message: str = ""
    # The datum that fired a red flag ("checkin:<id>"): a red flag notifies once per check-in.
    source: str | None = None
