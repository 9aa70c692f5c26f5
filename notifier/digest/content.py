"""Digest content: the coach's own athletes, their open (and acknowledged) alerts by severity,
the alerts opened in the period, and a few numbers per athlete read from the same metrics the
rules use (`rules.metrics`), over each athlete's local calendar days."""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from functools import cache
from typing import Any, Final, NamedTuple
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from sqlalchemy import Connection, Text, and_, cast, or_, select

from db.models import Alert, Athlete, Checkin, Coach, Run
from notifier.digest.periods import WEEK_DAYS, require_aware
from notifier.render import coach_phrase
from rules import metrics
from rules.catalog import CATALOG
from rules.config import RulesConfig
from rules.evaluate import history_days_needed
from rules.model import PainSite, Recommendation
from rules.text import coach_text, pain_site_notes, site_words

__all__ = ["AlertLine", "AthleteLine", "DigestContent", "build_digest", "build_digests"]

SEVERITY_ORDER: Final = ("urgent", "warning", "info")
PAIN_TRENDS: Final = ("rising", "falling", "steady", "no earlier week", "no check-ins")
"""Week on week, one score a day (the day's highest), by the pain.rising threshold of the rules
configuration. A week of check-ins with none the week before has nothing to compare with: it is
"no earlier week", never "steady"."""

NO_VALUE: Final = "–"
"""Shown for the ACWR before load.acwr's `min_history_days`, as the rule stays silent then."""

NOTE_CHARS: Final = 300

# How far back to read check-ins, in UTC, so every athlete's local weeks and a weekly period
# are covered whatever their offset (at most ±14 h); per-athlete local days are cut in Python.
# Runs are read as far back as the rule sweep reads them (`history_days_needed`), so the ACWR
# here is the one load.acwr computes.
_CHECKIN_LOOKBACK: Final = timedelta(days=2 * WEEK_DAYS + 2)


@dataclass(frozen=True, slots=True)
class DigestContent:
    """A rendered digest: mail subject, text and HTML bodies, and the webhook's JSON document."""

    subject: str
    text: str
    html: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class AlertLine:
    """One alert as the digest shows it; `opened` is the opening date on the coach's calendar."""

    id: int
    athlete_id: str
    athlete_name: str
    rule_id: str
    severity: str
    recommendation: str
    status: str
    opened_at: datetime
    opened: str
    summary: str
    title: str = ""
    action: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "athlete_id": self.athlete_id,
            "athlete_name": self.athlete_name,
            "rule_id": self.rule_id,
            "severity": self.severity,
            "recommendation": self.recommendation,
            "status": self.status,
            "opened_at": self.opened_at.isoformat(),
            "summary": self.summary,
        }


@dataclass(frozen=True, slots=True)
class AthleteLine:
    """One athlete's numbers: distance, load ratio, pain trend and unanswered runs."""

    id: str
    name: str
    km_7d: float
    runs_7d: int
    acwr: float | None
    pain_trend: str
    pain_mean_7d: float | None
    pain_mean_prev_7d: float | None
    missing_checkins: int
    # Of the period, for athletes with an open alert only (None otherwise).
    pain_latest: int | None = None
    pain_highest: int | None = None
    pain_sites: tuple[str, ...] = ()
    site_notes: tuple[str, ...] = ()
    note: str | None = None

    @property
    def pain_text(self) -> str:
        if self.pain_latest is None:
            return ""
        parts = [f"latest {self.pain_latest}/10, highest {self.pain_highest}/10"]
        if self.pain_sites:
            parts.append("sites: " + ", ".join(self.pain_sites))
        return "; ".join(parts)

    @property
    def km_text(self) -> str:
        return f"{self.km_7d:.1f}"

    @property
    def acwr_text(self) -> str:
        return NO_VALUE if self.acwr is None else f"{self.acwr:.2f}"

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "km_7d": round(self.km_7d, 1),
            "runs_7d": self.runs_7d,
            "acwr": None if self.acwr is None else round(self.acwr, 3),
            "pain_trend": self.pain_trend,
            "pain_mean_7d": _round(self.pain_mean_7d),
            "pain_mean_prev_7d": _round(self.pain_mean_prev_7d),
            "missing_checkins": self.missing_checkins,
            "pain_latest": self.pain_latest,
            "pain_highest": self.pain_highest,
            "pain_sites": list(self.pain_sites),
            "note": self.note,
        }


# Named tuples, not frozen dataclasses: a digest round makes one per run and check-in, and a
# frozen dataclass's __init__ (one object.__setattr__ per field) was 7 % of building the digests.
class _RunRow(NamedTuple):
    uuid: str
    start: datetime
    distance_m: float


class _CheckinRow(NamedTuple):
    recorded_at: datetime
    context: str
    pain_score: int
    related_run_uuid: str | None
    pain_sites: tuple[PainSite, ...] = ()
    note: str | None = None


@dataclass(slots=True)
class _Facts:
    runs: list[_RunRow] = field(default_factory=list)
    checkins: list[_CheckinRow] = field(default_factory=list)


def build_digest(
    conn: Connection,
    coach_id: str,
    start: datetime,
    end: datetime,
    now: datetime,
    config: RulesConfig | None = None,
) -> DigestContent:
    """The digest of one coach for the period [start, end), with athletes' numbers as of `now`.

    Lists only athletes whose coach is `coach_id`. Alert state and the numbers are read as of
    `now` (the moment of sending, normally the period end), so a late digest is not stale;
    "opened in the period" uses [start, end). For each athlete with an open alert it adds the
    latest and highest pain of the period, the reported pain sites (with a hedged association
    unless an urgent alert is open) and the latest note. Alerts are summarised by their coach
    text. The ACWR windows and the pain-trend threshold are those of `config` (the rules
    configuration; defaults when None). Five queries whatever the number of athletes.
    Raises `LookupError` for an unknown coach.
    """
    return build_digests(conn, {coach_id: (start, end)}, now, config)[coach_id]


def build_digests(
    conn: Connection,
    periods: Mapping[str, tuple[datetime, datetime]],
    now: datetime,
    config: RulesConfig | None = None,
) -> dict[str, DigestContent]:
    """The digests of many coaches at once: coach id -> its `build_digest`, for the period
    (start, end) given for it, all as of `now`.

    Each digest is the one `build_digest` gives for that coach alone, byte for byte; the rows
    of all the coaches are read together, in the same five queries whatever the number of
    coaches, and each coach's content is then built from memory. Raises `LookupError` if any
    coach is unknown.
    """
    require_aware(now)
    now = now.astimezone(UTC)
    config = config or RulesConfig()
    if not periods:
        return {}
    ids = list(periods)
    coaches = {
        row.id: row
        for row in conn.execute(
            select(Coach.id, Coach.name, Coach.timezone).where(Coach.id.in_(ids))
        )
    }
    for coach_id in ids:
        if coach_id not in coaches:
            raise LookupError(f"unknown coach {coach_id!r}")
    rows = _load(
        conn,
        ids,
        min(start for start, _ in periods.values()),
        max(end for _, end in periods.values()),
        now,
        timedelta(days=history_days_needed(config) + 1),
    )
    return {
        coach_id: _compose(
            coach_id,
            coaches[coach_id],
            rows.athletes.get(coach_id, []),
            rows.alerts.get(coach_id, []),
            rows.facts,
            *periods[coach_id],
            now,
            config,
        )
        for coach_id in ids
    }


@dataclass(slots=True)
class _Rows:
    """What the digests of some coaches read, keyed by coach (athletes, alerts) or athlete."""

    athletes: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    alerts: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))
    facts: dict[str, _Facts] = field(default_factory=lambda: defaultdict(_Facts))


def _load(
    conn: Connection,
    coach_ids: Sequence[str],
    earliest: datetime,
    latest: datetime,
    now: datetime,
    run_lookback: timedelta,
) -> _Rows:
    """The coaches' athletes, their alerts open or opened in [earliest, latest), their runs over
    `run_lookback` and check-ins over the digest's look-back, up to `now`, in four queries.

    Alerts are grouped by coach in the order they opened; each athlete's runs and check-ins are
    in the order the rules read them (by time, then id)."""
    rows = _Rows()
    for athlete in conn.execute(
        select(Athlete.id, Athlete.name, Athlete.timezone, Athlete.coach_id).where(
            Athlete.coach_id.in_(coach_ids)
        )
    ):
        rows.athletes[athlete.coach_id].append(athlete)
    mine = select(Athlete.id).where(Athlete.coach_id.in_(coach_ids)).scalar_subquery()

    for alert in conn.execute(
        select(
            Alert.id,
            Alert.athlete_id,
            Alert.rule_id,
            Alert.severity,
            Alert.recommendation,
            Alert.status,
            Alert.opened_at,
            Alert.message,
            Alert.coach_message,
            Athlete.coach_id,
        )
        .join(Athlete, Athlete.id == Alert.athlete_id)
        .where(
            Athlete.coach_id.in_(coach_ids),
            or_(
                Alert.status != "resolved",
                and_(Alert.opened_at >= earliest, Alert.opened_at < latest),
            ),
        )
        .order_by(Alert.opened_at, Alert.id)
    ):
        rows.alerts[alert.coach_id].append(alert)

    facts = rows.facts
    for athlete_id, uuid, start_time, distance_m in conn.execute(
        select(Run.athlete_id, Run.uuid, Run.start_time, Run.distance_m)
        .where(
            Run.athlete_id.in_(mine),
            Run.start_time >= now - run_lookback,
            Run.start_time <= now,
        )
        .order_by(Run.athlete_id, Run.start_time, Run.id)
    ):
        facts[athlete_id].runs.append(_RunRow(uuid, start_time, distance_m))
    # The sites as text, decoded here only when there are any: nearly every check-in has none,
    # and decoding each one's JSON was 8 % of building the digests.
    for athlete_id, recorded_at, context, pain_score, related, sites, note in conn.execute(
        select(
            Checkin.athlete_id,
            Checkin.recorded_at,
            Checkin.context,
            Checkin.pain_score,
            Checkin.related_run_uuid,
            cast(Checkin.pain_sites, Text),
            Checkin.note,
        )
        .where(
            Checkin.athlete_id.in_(mine),
            Checkin.recorded_at >= now - _CHECKIN_LOOKBACK,
            Checkin.recorded_at <= now,
        )
        .order_by(Checkin.athlete_id, Checkin.recorded_at, Checkin.id)
    ):
        facts[athlete_id].checkins.append(
            _CheckinRow(recorded_at, context, pain_score, related, _sites(sites), note)
        )
    return rows


def _sites(text: str | None) -> tuple[PainSite, ...]:
    """A check-in's stored `pain_sites` JSON, as sites."""
    if not text or text == "[]":
        return ()
    return tuple(PainSite(s["side"], s["aspect"]) for s in json.loads(text) or ())


def _compose(
    coach_id: str,
    coach: Any,
    athlete_rows: Sequence[Any],
    alert_rows: Sequence[Any],
    facts: Mapping[str, _Facts],
    start: datetime,
    end: datetime,
    now: datetime,
    config: RulesConfig,
) -> DigestContent:
    """One coach's digest from the rows `_load` read; its alerts may include some resolved
    outside its period (read for another coach's), which no part of the digest shows."""
    coach_zone = ZoneInfo(coach.timezone)
    # Sorted here, not by the database: collations differ between SQLite and PostgreSQL.
    athletes = sorted(athlete_rows, key=lambda row: (row.name.casefold(), row.id))
    names = {row.id: row.name for row in athletes}
    no_facts = _Facts()

    def line(alert: Any) -> AlertLine:
        name = names.get(alert.athlete_id, alert.athlete_id)
        # The coach's own text, third person; the athlete's for alerts stored before it existed.
        text = coach_text(alert.coach_message, name) if alert.coach_message else alert.message
        first_line = next((part for part in text.splitlines() if part.strip()), "")
        return AlertLine(
            id=alert.id,
            athlete_id=alert.athlete_id,
            athlete_name=names.get(alert.athlete_id, alert.athlete_id),
            rule_id=alert.rule_id,
            severity=alert.severity,
            recommendation=alert.recommendation,
            status=alert.status,
            opened_at=alert.opened_at,
            opened=alert.opened_at.astimezone(coach_zone).date().isoformat(),
            summary=first_line.strip(),
            title=_rule_title(alert.rule_id),
            action=_action(alert.recommendation),
        )

    open_alerts = sorted(
        (line(a) for a in alert_rows if a.status != "resolved"),
        key=lambda a: (SEVERITY_ORDER.index(a.severity), a.opened_at, a.id),
    )
    opened_in_period = [line(a) for a in alert_rows if start <= a.opened_at < end]
    groups = [
        (severity, [a for a in open_alerts if a.severity == severity])
        for severity in SEVERITY_ORDER
    ]
    attention = {a.athlete_id: a.severity for a in reversed(open_alerts)}
    people = [
        _athlete_line(
            row.id,
            row.name,
            ZoneInfo(row.timezone),
            facts.get(row.id, no_facts),
            now,
            config,
            (start, now) if row.id in attention else None,
            urgent=attention.get(row.id) == "urgent",
        )
        for row in athletes
    ]
    counts = {severity: len(group) for severity, group in groups}
    counts["open"] = len(open_alerts)
    counts["opened_in_period"] = len(opened_in_period)
    all_clear = not open_alerts and not opened_in_period
    subject = _subject(coach.name, counts, all_clear)

    start_local, end_local = start.astimezone(coach_zone), end.astimezone(coach_zone)
    period = f"{start_local:%a %d %b %Y %H:%M} – {end_local:%a %d %b %Y %H:%M} ({coach.timezone})"
    context = {
        "subject": subject,
        "coach_name": coach.name,
        "period": period,
        "all_clear": all_clear,
        "counts": counts,
        "groups": [(severity, group) for severity, group in groups if group],
        "opened_in_period": opened_in_period,
        "athletes": people,
        "no_value": NO_VALUE,
        "acwr_windows": f"{config.rules.load.acwr.acute_days} and "
        f"{config.rules.load.acwr.chronic_days} days",
        "acwr_min_days": config.rules.load.acwr.min_history_days,
    }
    env = _environment()
    data = {
        "kind": "digest",
        "coach_id": coach_id,
        "period_start": start.astimezone(UTC).isoformat(),
        "period_end": end.astimezone(UTC).isoformat(),
        "generated_at": now.isoformat(),
        "all_clear": all_clear,
        "counts": counts,
        "open_alerts": [a.as_json() for a in open_alerts],
        "opened_in_period": [a.as_json() for a in opened_in_period],
        "athletes": [p.as_json() for p in people],
    }
    return DigestContent(
        subject=subject,
        text=env.get_template("digest.txt").render(context),
        html=env.get_template("digest.html").render(context),
        data=data,
    )


def _athlete_line(
    athlete_id: str,
    name: str,
    zone: ZoneInfo,
    facts: _Facts,
    now: datetime,
    config: RulesConfig,
    period: tuple[datetime, datetime] | None,
    *,
    urgent: bool = False,
) -> AthleteLine:
    """One athlete's numbers over their own local days (runs and check-ins sorted by time).

    `period` is given for athletes with an open alert: their pain, sites and note of it.
    """

    def day(instant: datetime) -> date:
        return instant.astimezone(zone).date()

    acwr_cfg = config.rules.load.acwr
    today = day(now)
    week_first = today - timedelta(days=WEEK_DAYS - 1)
    prev_first = week_first - timedelta(days=WEEK_DAYS)

    # Each run's local day once: they are read three times below.
    run_days = [day(r.start) for r in facts.runs]
    points = [(d, r.distance_m / 1000.0) for d, r in zip(run_days, facts.runs, strict=True)]
    first_run = run_days[0] if run_days else today
    # From the first run loaded, as load.acwr reads it (its averages start from that week).
    series_first = min(first_run, today - timedelta(days=WEEK_DAYS - 1))
    series = metrics.daily_series(points, series_first, today)
    km_7d = math.fsum(series[-WEEK_DAYS:])
    enough_history = bool(facts.runs) and (today - first_run).days >= acwr_cfg.min_history_days
    ratio = (
        metrics.acwr(
            series if series_first == first_run else metrics.daily_series(points, first_run, today),
            acwr_cfg.acute_days,
            acwr_cfg.chronic_days,
            acwr_cfg.seed_days,
        )
        if enough_history
        else None
    )

    dated = [(day(c.recorded_at), c.pain_score) for c in facts.checkins]
    last = [(d, score) for d, score in dated if d >= week_first]
    prev = [(d, score) for d, score in dated if prev_first <= d < week_first]

    recent = [(i, r) for i, r in enumerate(facts.runs) if run_days[i] >= week_first]
    post_run = [c for c in facts.checkins if c.context == "post_run"]
    missing = 0
    for index, run in recent:
        following = facts.runs[index + 1].start if index + 1 < len(facts.runs) else None
        if not any(_answers(c, run, following) for c in post_run):
            missing += 1

    extra: dict[str, Any] = {}
    in_period = (
        [c for c in facts.checkins if period[0] <= c.recorded_at <= period[1]]
        if period is not None
        else []
    )
    if in_period:
        sites = tuple(dict.fromkeys(site for c in in_period for site in c.pain_sites))
        notes = [c.note for c in in_period if c.note and c.note.strip()]
        extra = {
            "pain_latest": in_period[-1].pain_score,
            "pain_highest": max(c.pain_score for c in in_period),
            "pain_sites": tuple(site_words(sites)),
            # Hedged associations are for coaches, and never beside an urgent alert.
            "site_notes": () if urgent else pain_site_notes(sites),
            "note": " ".join(notes[-1].split())[:NOTE_CHARS] if notes else None,
        }

    return AthleteLine(
        id=athlete_id,
        name=name,
        km_7d=km_7d,
        runs_7d=len(recent),
        acwr=ratio,
        pain_trend=_pain_trend(
            list(metrics.daily_pain(last).values()),
            list(metrics.daily_pain(prev).values()),
            config.rules.pain.rising.min_rise_points,
        ),
        pain_mean_7d=metrics.pain_stats(last).mean,
        pain_mean_prev_7d=metrics.pain_stats(prev).mean,
        missing_checkins=missing,
        **extra,
    )


def _answers(checkin: _CheckinRow, run: _RunRow, following: datetime | None) -> bool:
    """Whether a post_run check-in belongs to `run`: it names the run, or it was recorded after
    the run started and before the next run (or now: later check-ins were not loaded)."""
    if checkin.related_run_uuid == run.uuid:
        return True
    return checkin.recorded_at >= run.start and (
        following is None or checkin.recorded_at < following
    )


def _pain_trend(last: Sequence[int], prev: Sequence[int], points: float) -> str:
    """rising / falling by ≥ `points` (pain.rising's threshold) of the mean daily score week on
    week, else steady; "no earlier week" when the week before has no score to compare with.

    Unlike the pain.rising rule this needs only one scored day a week: the digest describes, it
    does not alert.
    """
    if not last:
        return "no check-ins"
    if not prev:
        return "no earlier week"
    if metrics.pain_rising(last, prev, points, 1):
        return "rising"
    if metrics.pain_rising(prev, last, points, 1):
        return "falling"
    return "steady"


def _subject(coach_name: str, counts: Mapping[str, int], all_clear: bool) -> str:
    # One line whatever the name holds: a newline in a mail subject is a header injection.
    lead = f"KneeGuard digest for {' '.join(coach_name.split())}"
    if all_clear:
        return f"{lead} — all clear"[:300]
    total = counts["open"]
    if total == 0:
        new = counts["opened_in_period"]
        return f"{lead} — no open alerts ({new} opened and resolved)"[:300]
    urgent = f" ({counts['urgent']} urgent)" if counts["urgent"] else ""
    plural = "" if total == 1 else "s"
    return f"{lead} — {total} open alert{plural}{urgent}"[:300]


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


@cache
def _rule_title(rule_id: str) -> str:
    spec = CATALOG.get(rule_id)
    return spec.title if spec is not None else rule_id


def _action(recommendation: str) -> str:
    """What the coach reads for a recommendation, in words ("stop running, same-day help")."""
    try:
        return coach_phrase(Recommendation(recommendation))
    except ValueError:
        return recommendation.replace("_", " ")


WORDS: Mapping[str, Any] = {
    "rule_title": _rule_title,
    "recommendation_words": _action,
    "severity_colour": lambda value: {"urgent": "#b00020", "warning": "#a34f00"}.get(
        str(value), "#2f5d8a"
    ),
}
"""Template filters: rule titles and recommendations in words, a colour per severity."""


@cache
def _environment() -> Environment:
    """The templates, compiled once per process (each digest used to compile both again); HTML
    is autoescaped (athlete and coach names are user input), text not."""
    env = Environment(
        loader=PackageLoader("notifier", "templates"),
        autoescape=select_autoescape(
            enabled_extensions=("html",), disabled_extensions=("txt",), default=True
        ),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(WORDS)
    return env
