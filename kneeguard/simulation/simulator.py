"""Realistic runs and knee check-ins for simulated athletes: the data of `kneeguard simulate`
and `kneeguard demo`.

Pure: `generate(plan)` yields `Message`s (topic, payload bytes, the instant the device would
publish) in time order and does no I/O, reads no clock and no OS randomness. Each athlete draws
from their own generator seeded by the plan's seed and their index, uuids included
(`uuid.UUID(int=rng.getrandbits(128), version=4)`), so one seed gives a byte-identical payload
sequence on every machine, and adding athletes does not change the others' data.

A scenario is a story told over an otherwise healthy training history. Each story is shaped so
that the rule sweep as of `plan.end` raises the rules `SCENARIO_RULES` names, and a healthy
athlete raises no rule at all (over two weeks or more). The numbers that make that true are in
docs/SIMULATOR.md; tests/test_simulator.py proves it through the real broker, service and sweep.
"""

from __future__ import annotations

import heapq
import json
import random
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from contract.topics import ID_PATTERN, Kind, Topics, clean_prefix

__all__ = [
    "MIN_DAYS",
    "SCENARIOS",
    "SCENARIO_RULES",
    "STORIES",
    "Message",
    "Plan",
    "PlanError",
    "SimAthlete",
    "generate",
]

STORIES: Final = (
    "long_run_spike",
    "rising_pain",
    "locked_knee",
    "lateral_pain",
    "no_weight_bearing",
    "gives_way_twice",
)
"""The stories, in the order a `mixed` club hands them out (then everyone else is healthy)."""

SCENARIOS: Final = ("healthy", *STORIES, "mixed")

SCENARIO_RULES: Final[Mapping[str, frozenset[str]]] = MappingProxyType(
    {
        "healthy": frozenset(),
        "long_run_spike": frozenset({"load.single_run_spike"}),
        "rising_pain": frozenset({"pain.rising"}),
        "locked_knee": frozenset({"redflag.locked_knee"}),
        "lateral_pain": frozenset({"pain.high"}),
        "no_weight_bearing": frozenset({"redflag.cannot_bear_weight"}),
        "gives_way_twice": frozenset({"redflag.professional_signs"}),
    }
)
"""Rules each story raises by the end of the plan (a story may add info-level load rules
that are also true of its data, e.g. load.acwr after a spike; healthy raises none)."""

MIN_DAYS: Final[Mapping[str, int]] = MappingProxyType(
    {
        "healthy": 1,
        # load.single_run_spike judges a run only after 30 days of history.
        "long_run_spike": 35,
        # pain.rising compares two weeks; the story builds up over three.
        "rising_pain": 21,
        # The knee locks after the last run, which falls in the last 3 days of a week's pattern.
        "locked_knee": 7,
        "lateral_pain": 21,
        # A rest day and two runs of the last week.
        "no_weight_bearing": 7,
        "gives_way_twice": 14,
    }
)

Stage = Literal["easy", "long", "spike"]

KM_PER_MILE: Final = 1.609344
FT_PER_M: Final = 1 / 0.3048

# Weekly run days as offsets from the long run's weekday: always a rest day after the long run
# and one before it.
_WEEK_PATTERNS: Final[Mapping[int, tuple[int, ...]]] = MappingProxyType(
    {3: (0, 2, 4), 4: (0, 2, 3, 5), 5: (0, 2, 3, 4, 5)}
)
_WATCHES: Final = (
    "ExampleWatch 5",
    "ExampleWatch 6 Pro",
    "TrailBand 2",
    "StrideSense Run",
    "ExampleRun for Android 2.3",
    "ExampleRun for iOS 2.4",
)
_FIRST_NAMES: Final = (
    "Ann", "Ben", "Chloe", "Dev", "Ema", "Finn", "Gita", "Hugo", "Ines", "Jon", "Kai", "Lena",
    "Mo", "Nia", "Oskar", "Priya", "Quinn", "Rosa", "Sami", "Tove", "Uma", "Vik", "Wen", "Yara",
)  # fmt: skip
_SURNAMES: Final = ("Runner", "Strider", "Pacer", "Miles", "Hill", "Trail", "Road", "Track")
_EASY_NOTES: Final = (
    "Felt good.",
    "Legs a bit heavy.",
    "Windy, kept it easy.",
    "Nice and relaxed.",
    "Ran with the club.",
)


class PlanError(ValueError):
    """A plan that cannot be simulated; the message is one line for the user."""


@dataclass(frozen=True, slots=True)
class SimAthlete:
    """One simulated athlete: what `--register` puts in the registry, and their story."""

    index: int
    athlete_id: str
    device_id: str
    name: str
    email: str
    scenario: str


@dataclass(frozen=True, slots=True)
class Message:
    """One device publication. `at` is the instant the device publishes it (the payload's
    `source_creation_date_time`); `payload` is the exact bytes to publish."""

    at: datetime
    topic: str
    payload: bytes
    kind: Kind
    athlete_id: str
    uuid: str


@dataclass(frozen=True, slots=True)
class Plan:
    """What to simulate: `athletes` athletes over the `days` local days from `first_day`.

    The period ends at local midnight after its last day (`end`); a sweep as of `end` sees
    every story. Ids are `{id_prefix}-01`, `{id_prefix}-02`, …; every athlete has one device.
    """

    athletes: int
    days: int
    seed: int = 0
    scenario: str = "mixed"
    first_day: date = date(2026, 1, 5)
    timezone: str = "UTC"
    prefix: str = "kneeguard/v1"
    id_prefix: str = "sim"
    device_id: str = "watch"

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            raise PlanError(
                f"unknown scenario {self.scenario!r}: choose from {', '.join(SCENARIOS)}"
            )
        if not 1 <= self.athletes <= 100_000:
            raise PlanError("the number of athletes must be between 1 and 100000")
        if not 1 <= self.days <= 3650:
            raise PlanError("the number of days must be between 1 and 3650")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise PlanError(
                f"unknown timezone {self.timezone!r}: use an IANA name such as Europe/London"
            ) from None
        try:
            clean_prefix(self.prefix)
        except ValueError as exc:
            raise PlanError(f"the topic prefix {exc}") from None
        if not ID_PATTERN.fullmatch(self.device_id):
            raise PlanError("the device id must be 1 to 64 of A-Z a-z 0-9 _ -")
        if not ID_PATTERN.fullmatch(self._athlete_id(self.athletes - 1)):
            raise PlanError("the id prefix must be 1 to 58 of A-Z a-z 0-9 _ -")
        told = {self.scenario_of(i) for i in range(min(self.athletes, len(STORIES)))}
        story = max(sorted(told), key=lambda name: MIN_DAYS[name])
        if self.days < MIN_DAYS[story]:
            raise PlanError(
                f"the {story} scenario needs at least {MIN_DAYS[story]} days; got {self.days}"
            )

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def start(self) -> datetime:
        """Local midnight at the start of the first day."""
        return datetime.combine(self.first_day, time(0), tzinfo=self.zone)

    @property
    def end(self) -> datetime:
        """Local midnight after the last day: no message is later."""
        return datetime.combine(
            self.first_day + timedelta(days=self.days), time(0), tzinfo=self.zone
        )

    def scenario_of(self, index: int) -> str:
        """The story of athlete `index`: the plan's, or in a `mixed` club the stories first."""
        if self.scenario != "mixed":
            return self.scenario
        return STORIES[index] if index < len(STORIES) else "healthy"

    def _athlete_id(self, index: int) -> str:
        width = max(2, len(str(self.athletes)))
        return f"{self.id_prefix}-{index + 1:0{width}d}"

    def roster(self) -> list[SimAthlete]:
        """Every athlete of the plan, in index order."""
        athletes = []
        for index in range(self.athletes):
            athlete_id = self._athlete_id(index)
            first = _FIRST_NAMES[index % len(_FIRST_NAMES)]
            surname = _SURNAMES[(index // len(_FIRST_NAMES)) % len(_SURNAMES)]
            athletes.append(
                SimAthlete(
                    index=index,
                    athlete_id=athlete_id,
                    device_id=self.device_id,
                    name=f"{first} {surname}",
                    email=f"{athlete_id}@example.com",
                    scenario=self.scenario_of(index),
                )
            )
        return athletes

    def topic(self, athlete: SimAthlete, kind: Kind) -> str:
        topics = Topics(clean_prefix(self.prefix))
        return topics.inbound(athlete.athlete_id, athlete.device_id, kind)


def generate(plan: Plan) -> Iterator[Message]:
    """Every message of the plan, ordered by publish instant (ties: athlete order)."""
    streams = [_Athlete(plan, athlete).messages() for athlete in plan.roster()]
    return heapq.merge(*streams, key=lambda message: message.at)


# --- one athlete ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Profile:
    """An athlete's habits, drawn once: everything their runs and check-ins vary around."""

    easy_pace_s: float  # seconds per km on easy runs
    runs_per_week: int
    easy_km: float
    long_km: float
    long_weekday: int  # 0 = Monday
    morning: bool
    hr_max: int
    cadence_offset: float
    weight_kg: float
    climb_m_per_km: float
    imperial: bool
    watch: str
    checkin_rate: float
    side: str  # the knee that niggles, when one does


@dataclass(frozen=True, slots=True)
class _Run:
    uuid: str
    start: datetime
    end: datetime
    km: float
    moving_s: float
    stage: Stage


class _Athlete:
    """Generates one athlete's messages day by day, from their own seeded generator."""

    def __init__(self, plan: Plan, athlete: SimAthlete) -> None:
        self.plan = plan
        self.athlete = athlete
        self.story = athlete.scenario
        # A string seed is hashed with SHA-512: stable across runs, machines and Python versions.
        self.rng = random.Random(f"kneeguard-sim:{plan.seed}:{athlete.index}")  # noqa: S311
        self.profile = self._draw_profile()
        self.niggle_week: int | None = None
        # The last run of the plan: within its last 3 days, whatever the weekly pattern.
        self.last_run_back = next(back for back in range(7) if self._runs_on(self._day(back)))
        # The last rest day of the plan (no_weight_bearing), and the last two runs
        # (gives_way_twice).
        self.rest_back = next(back for back in range(7) if not self._runs_on(self._day(back)))
        self.flag_backs = [back for back in range(14) if self._runs_on(self._day(back))][:2]

    # --- habits ---------------------------------------------------------------------------

    def _draw_profile(self) -> _Profile:
        rng = self.rng
        runs_per_week = rng.choices((3, 4, 5), weights=(3, 5, 3))[0]
        if self.story == "lateral_pain":
            # pain.persistent counts painful days; four runs a week keep the story to pain.high.
            runs_per_week = min(runs_per_week, 4)
        easy_km = rng.uniform(5.0, 9.0)
        last_day = self.plan.first_day + timedelta(days=self.plan.days - 1)
        if self.story in ("long_run_spike", "lateral_pain"):
            # The story's long run is on the last day of the plan.
            long_weekday = last_day.weekday()
        else:
            long_weekday = rng.choice((5, 6))
        return _Profile(
            easy_pace_s=rng.uniform(300.0, 400.0),
            runs_per_week=runs_per_week,
            easy_km=easy_km,
            long_km=easy_km * rng.uniform(1.7, 2.0),
            long_weekday=long_weekday,
            morning=rng.random() < 0.6,
            hr_max=rng.randint(172, 196),
            cadence_offset=rng.gauss(0.0, 3.0),
            weight_kg=rng.uniform(52.0, 88.0),
            climb_m_per_km=rng.uniform(4.0, 18.0),
            imperial=rng.random() < 0.2,
            watch=rng.choice(_WATCHES),
            checkin_rate=rng.uniform(0.75, 0.95),
            side=rng.choice(("left", "right")),
        )

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _at(self, day: date, earliest: time, latest: time) -> datetime:
        """A uniformly drawn local instant between two wall-clock times of `day`."""
        low = datetime.combine(day, earliest, tzinfo=self.plan.zone)
        span = (datetime.combine(day, latest, tzinfo=self.plan.zone) - low).total_seconds()
        return low + timedelta(seconds=round(self.rng.uniform(0.0, span)))

    # --- the day loop ---------------------------------------------------------------------

    def messages(self) -> Iterator[Message]:
        plan = self.plan
        carry: list[Message] = []  # next_morning check-ins, published on the following day
        for offset in range(plan.days):
            day = plan.first_day + timedelta(days=offset)
            back = plan.days - 1 - offset  # days before the last day of the plan
            if self.story == "locked_knee" and back < self.last_run_back:
                return  # after the knee locked: no running, and no more data
            if self.story == "no_weight_bearing" and back < self.rest_back:
                return  # after the day the leg took no weight: no more data
            today = carry
            carry = []
            stage = self._stage(day, back)
            if stage is not None:
                run = self._run(day, stage)
                today.append(self._run_message(run))
                if self._wants_post_run(run, back):
                    today.append(self._post_run(run, back))
                if back > 0 and self._wants_next_morning(run, back):
                    carry.append(self._next_morning(run, back - 1))
            elif self._wants_daily(back):
                today.append(self._daily(day, back))
            today.sort(key=lambda message: message.at)
            yield from today

    def _day(self, back: int) -> date:
        return self.plan.first_day + timedelta(days=self.plan.days - 1 - back)

    def _runs_on(self, day: date) -> bool:
        offset = (day.weekday() - self.profile.long_weekday) % 7
        return offset in _WEEK_PATTERNS[self.profile.runs_per_week]

    def _stage(self, day: date, back: int) -> Stage | None:
        """Whether the athlete runs on `day`, and which kind of run."""
        if not self._runs_on(day):
            return None
        if (day.weekday() - self.profile.long_weekday) % 7 != 0:
            return "easy"
        if self.story == "long_run_spike" and back == 0:
            return "spike"
        return "long"

    # --- runs -----------------------------------------------------------------------------

    def _run(self, day: date, stage: Stage) -> _Run:
        rng, p = self.rng, self.profile
        if stage == "easy":
            km = p.easy_km * rng.uniform(0.85, 1.15)
            pace = p.easy_pace_s * rng.uniform(0.97, 1.03)
            start = (
                self._at(day, time(6, 50), time(7, 40))
                if p.morning
                else self._at(day, time(17, 30), time(19, 0))
            )
        else:
            # Long runs vary little (0.95-1.03x), so a healthy week never looks like a spike
            # (> 1.10x the longest of the last 30 days); the spike is 1.5-1.6x.
            factor = rng.uniform(1.50, 1.60) if stage == "spike" else rng.uniform(0.95, 1.03)
            km = p.long_km * factor
            pace = p.easy_pace_s * rng.uniform(1.02, 1.07) * (1.04 if stage == "spike" else 1.0)
            start = self._at(day, time(8, 0), time(9, 30))
        km = round(km, 2)
        moving = km * pace
        # Elapsed time is moving time plus stops (lights, a drink on long runs); at least 5 s,
        # so the moving time a device rounds to 0.1 min never exceeds the interval.
        stops = rng.uniform(5.0, 60.0) + (rng.uniform(30.0, 240.0) if km > 12 else 0.0)
        end = start + timedelta(seconds=round(moving + stops))
        return _Run(self._uuid(), start, end, km, moving, stage)

    def _run_message(self, run: _Run) -> Message:
        rng, p = self.rng, self.profile
        pace = run.moving_s / run.km
        tired = {"easy": 0.0, "long": 1.0, "spike": 3.0}[run.stage]
        # Faster running means shorter ground contact and a higher step rate (about 172
        # steps/min at 5:00 /km, 161 at 6:40 /km), and a little lower when tired.
        cadence = 205.0 - 0.11 * pace + p.cadence_offset - tired + rng.gauss(0.0, 1.2)
        cadence = min(max(cadence, 150.0), 195.0)
        speed = 1000.0 / pace  # m/s
        # Easy running sits near 70 % of maximum heart rate; faster than usual costs more, and
        # heart rate drifts up over a long run.
        intensity = 0.70 + 0.55 * (p.easy_pace_s / pace - 1.0)
        hr_avg = p.hr_max * intensity + 3.0 * tired + rng.gauss(0.0, 2.0)
        hr_peak = min(float(p.hr_max), hr_avg + rng.uniform(10.0, 22.0))
        rpe = {
            "easy": rng.choice((2, 3, 3, 4)),
            "long": rng.choice((4, 5, 5, 6)),
            "spike": rng.choice((7, 8)),
        }[run.stage]
        climb = run.km * p.climb_m_per_km * rng.uniform(0.7, 1.3)
        if p.imperial:
            distance = {"value": round(run.km / KM_PER_MILE, 2), "unit": "mi"}
            duration = {"value": round(run.moving_s / 60.0, 1), "unit": "min"}
            elevation = {"value": round(climb * FT_PER_M), "unit": "ft"}
        else:
            distance = {"value": run.km, "unit": "km"}
            duration = {"value": round(run.moving_s), "unit": "sec"}
            elevation = {"value": round(climb), "unit": "m"}
        local_start = run.start.astimezone(self.plan.zone)
        published = run.end + timedelta(seconds=round(rng.uniform(60.0, 900.0)))
        body: dict[str, Any] = {
            "activity_name": "running",
            "effective_time_frame": {
                "time_interval": {
                    "start_date_time": _stamp(run.start),
                    "end_date_time": _stamp(run.end),
                }
            },
            "distance": distance,
            "duration": duration,
            "cumulative_elevation_gain": elevation,
            "average_cadence": {"value": round(cadence), "unit": "steps/min"},
            "heart_rate": {
                "average": {"value": round(hr_avg), "unit": "beats/min"},
                "maximum": {"value": round(hr_peak), "unit": "beats/min"},
            },
            "perceived_exertion": rpe,
            "running_dynamics": {
                "ground_contact_time_ms": round(230.0 + 0.28 * (pace - 300.0) + rng.gauss(0, 5)),
                "vertical_oscillation_mm": round(rng.gauss(80.0, 4.0)),
                "step_length_mm": round(speed * 60.0 / cadence * 1000.0),
                "power_w": round(p.weight_kg * speed * 1.04),
            },
        }
        header = self._header(
            run.uuid,
            ("ieee", "physical-activity"),
            published,
            "sensed",
            f"act-{local_start:%Y%m%d-%H%M}",
        )
        return self._message(Kind.RUN, published, {"header": header, "body": body}, run.uuid)

    # --- check-ins ------------------------------------------------------------------------

    def _wants_post_run(self, run: _Run, back: int) -> bool:
        if self.story != "healthy" and _week(back) <= 2:
            return True  # a story's check-ins are complete in its last three weeks
        if run.stage != "easy":
            return True  # the weekly OSTRC answers ride on the long run's check-in
        return self.rng.random() < self.profile.checkin_rate

    def _wants_daily(self, back: int) -> bool:
        if self.story != "healthy" and _week(back) <= 2:
            # A story's weeks have a check-in every day, so one bad day moves the weekly mean
            # (pain.rising) only as far as the story means it to.
            return True
        return self.rng.random() < 0.3

    def _wants_next_morning(self, run: _Run, back: int) -> bool:
        if self.story in ("rising_pain", "lateral_pain") and _week(back) <= 2:
            return self.rng.random() < 0.5
        return self.rng.random() < (0.5 if run.stage != "easy" else 0.1)

    def _post_run(self, run: _Run, back: int) -> Message:
        at = run.end + timedelta(seconds=round(self.rng.uniform(300.0, 2700.0)))
        pain, sites, symptoms, note = self._pain("post_run", back, run.stage)
        ostrc = self._ostrc(back) if run.stage != "easy" else None
        return self._checkin(at, "post_run", pain, sites, symptoms, note, ostrc, run.uuid)

    def _next_morning(self, run: _Run, back: int) -> Message:
        morning = run.start.astimezone(self.plan.zone).date() + timedelta(days=1)
        at = self._at(morning, time(6, 0), time(6, 45))
        pain, sites, symptoms, note = self._pain("next_morning", back, run.stage)
        return self._checkin(at, "next_morning", pain, sites, symptoms, note, None, run.uuid)

    def _daily(self, day: date, back: int) -> Message:
        at = self._at(day, time(20, 0), time(21, 30))
        pain, sites, symptoms, note = self._pain("daily", back, None)
        return self._checkin(at, "daily", pain, sites, symptoms, note, None, None)

    def _pain(
        self, context: str, back: int, stage: Stage | None
    ) -> tuple[int, list[dict[str, str]], dict[str, bool], str | None]:
        """Pain score, sites, symptoms and note of one check-in, by story and day."""
        rng, side = self.rng, self.profile.side
        after_run = context == "post_run"
        if self.story == "locked_knee" and back == self.last_run_back and after_run:
            return (
                3,
                [{"side": side, "aspect": "medial"}],
                {"swelling": True, "locking": True},
                "Knee locked mid-stride and I could not straighten it; walked home.",
            )
        if self.story == "long_run_spike" and stage == "spike":
            return (
                3,
                [{"side": "both", "aspect": "anterior"}],
                {},
                "Longest run ever. Knees sore over the last few km.",
            )
        if self.story == "no_weight_bearing" and back == self.rest_back and context == "daily":
            return (
                4,
                [{"side": side, "aspect": "diffuse"}],
                {"cannot_bear_weight": True},
                "Rest day. Woke up and could not put weight on the leg; no fall.",
            )
        if self.story == "gives_way_twice" and after_run and back in self.flag_backs:
            return (
                2,
                [{"side": side, "aspect": "medial"}],
                {"giving_way": True},
                "Knee gave way stepping off a kerb after the run.",
            )
        week = _week(back)
        if self.story == "rising_pain" and week <= 2:
            # Three weeks, each about two points worse than the one before, kept below the
            # other pain rules: post-run pain at most 5 (pain.high is > 5), mornings at most 2
            # (pain.not_settled needs 3), painful days only in the last week (pain.persistent
            # needs 10 of 14).
            if after_run:
                low, high = ((4, 5), (1, 2), (0, 1))[week]
            elif context == "daily":
                low, high = ((3, 3), (1, 1), (0, 1))[week]
            else:
                low, high = ((1, 2), (1, 1), (0, 1))[week]
            pain = rng.randint(low, high)
            sites = [{"side": side, "aspect": "anterior"}] if pain else []
            return pain, sites, {}, "Front of the knee aches on stairs." if pain >= 3 else None
        if self.story == "lateral_pain" and back <= 13:
            # Pain on the outside of the knee that comes on during runs and settles at rest:
            # 2 after easy runs, 3 after long ones, 6 after the last long run (pain.high > 5).
            if after_run:
                pain = 6 if back == 0 else (3 if stage == "long" else 2)
                note = (
                    "Sharp pain on the outside of the knee from about 8 km, worse downhill; "
                    "had to stop."
                    if pain == 6
                    else "Tight on the outside of the knee late in the run."
                )
                return pain, [{"side": side, "aspect": "lateral"}], {}, note
            return 1, [{"side": side, "aspect": "lateral"}], {}, None
        # Healthy: no pain, but about one check-in a week reports a passing niggle of 1/10.
        # Never two in one week: then any 7 days hold at most two, and a week's mean pain
        # (with the 3 check-ins pain.rising needs) can never rise by a whole point.
        pain = 0
        if week != self.niggle_week and rng.random() < 0.25:
            self.niggle_week = week
            pain = 1
        sites = (
            [{"side": side, "aspect": rng.choice(("anterior", "diffuse", "medial"))}]
            if pain
            else []
        )
        remark = rng.choice(_EASY_NOTES) if after_run and rng.random() < 0.2 else None
        return pain, sites, {}, remark

    def _ostrc(self, back: int) -> dict[str, int]:
        """The weekly OSTRC-O2 answers (option indices): a problem that limits training
        (q2 or q3 ≥ option 2) never occurs, so ostrc.substantial stays quiet."""
        troubled = (self.story == "rising_pain" and _week(back) == 0) or (
            self.story == "lateral_pain" and back <= 13
        )
        if troubled:
            return {"q1": 1, "q2": 1, "q3": 1, "q4": 2}
        return {"q1": 0, "q2": 0, "q3": 0, "q4": self.rng.choice((0, 0, 0, 1))}

    def _checkin(
        self,
        at: datetime,
        context: str,
        pain: int,
        sites: list[dict[str, str]],
        symptoms: dict[str, bool],
        note: str | None,
        ostrc: dict[str, int] | None,
        related: str | None,
    ) -> Message:
        checkin_uuid = self._uuid()
        published = at + timedelta(seconds=round(self.rng.uniform(5.0, 120.0)))
        body: dict[str, Any] = {
            "effective_time_frame": {"date_time": _stamp(at)},
            "context": context,
            "pain_score": pain,
            "pain_sites": sites,
            "symptoms": {
                name: symptoms.get(name, False)
                for name in (
                    "swelling",
                    "locking",
                    "giving_way",
                    "cannot_bear_weight",
                    "night_pain",
                    "fever",
                    "trauma",
                )
            },
        }
        if related is not None:
            body["related_run_uuid"] = related
        if ostrc is not None:
            body["ostrc"] = ostrc
        if note is not None:
            body["note"] = note
        header = self._header(
            checkin_uuid, ("kneeguard", "knee-checkin"), published, "self-reported", None
        )
        return self._message(
            Kind.CHECKIN, published, {"header": header, "body": body}, checkin_uuid
        )

    # --- wire format ----------------------------------------------------------------------

    def _header(
        self,
        data_uuid: str,
        schema: tuple[str, str],
        created: datetime,
        modality: str,
        point_id: str | None,
    ) -> dict[str, Any]:
        provenance: dict[str, str] = {"source_name": self.profile.watch}
        if point_id is not None:
            provenance["source_data_point_id"] = point_id
        return {
            "uuid": data_uuid,
            "schema_id": {"namespace": schema[0], "name": schema[1], "version": "1.0"},
            "source_creation_date_time": _stamp(created),
            "modality": modality,
            "acquisition_provenance": provenance,
        }

    def _message(
        self, kind: Kind, at: datetime, payload: dict[str, Any], data_uuid: str
    ) -> Message:
        encoded = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
        return Message(
            at=at,
            topic=self.plan.topic(self.athlete, kind),
            payload=encoded,
            kind=kind,
            athlete_id=self.athlete.athlete_id,
            uuid=data_uuid,
        )


def _week(back: int) -> int:
    """Which week before the end a day falls in, as the sweep the day after the plan counts
    weeks: the 7 local days ending today (the day after the last one, which has no data), so
    week 0 holds the last 6 days of the plan, week 1 the 7 before them, and so on."""
    return (back + 1) // 7


def _stamp(instant: datetime) -> str:
    """RFC 3339 with the local offset, to the second (what a device sends)."""
    return instant.isoformat(timespec="seconds")
