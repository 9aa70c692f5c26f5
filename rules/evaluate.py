"""Rule evaluation: facts in, findings out. Pure functions, no I/O, no clock.

`evaluate_checkin` runs section A of shared/RULES.md (red flags and pain.high) on one check-in;
`evaluate_history` runs section B (the scheduled rules) on one athlete's history as of an
instant. Both return at most one `Finding` per rule id.

Conventions of `evaluate_history`:

- Data after `now` does not exist: runs that start after `now` and check-ins recorded after
  `now` are dropped first, so a sweep replayed "as of" a past instant sees what was known then.
- Days are the athlete's local calendar days (`history.timezone`). "The last N days" as of
  `now` means the N local days ending with today (today included, up to `now`). Windows that
  hang off one run (the 30 days before a run, the 24 h after it) are exact instants.
- Daily series have one value per local day with 0 for rest days (`rules.metrics.daily_series`).
- `observed_at` is the instant of the newest datum that made the rule fire (a run's start or a
  check-in's time), never `now`: re-evaluating the same data later gives the same finding, so
  the alert lifecycle can use it as `last_triggered_at` and resolve quiet alerts.
- The caller passes enough history: `history_days_needed(config)` days before `now`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from rules import metrics
from rules.catalog import CATALOG
from rules.config import RulesConfig
from rules.model import (
    AthleteHistory,
    CheckinFact,
    Finding,
    Recommendation,
    RunFact,
    Severity,
)
from rules.text import ATHLETE, km, pain_site_notes, ratio, render

__all__ = ["evaluate_checkin", "evaluate_history", "history_days_needed"]

Evidence = dict[str, float | int | str | None]

# Catalog thresholds are round decimals ("1.10 ×", "≥ 1.5") that binary floats mostly cannot
# represent, and a ratio computed from round distances can land one ulp either side. This
# slack (the same as rules.metrics uses) keeps a value exactly on a threshold on the side the
# catalog states: "> 1.10" stays silent at 1.10, "≥ 1.5" fires at 1.5. It also keeps the
# result of a ratio rule independent of the unit and scale of the inputs.
_REL_TOL = 1e-9


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - _REL_TOL * max(1.0, abs(bound))


def _above(value: float, bound: float) -> bool:
    return value > bound + _REL_TOL * max(1.0, abs(bound))


def _finding(
    rule_id: str,
    observed_at: datetime,
    seen: str,
    coach_seen: str,
    evidence: Evidence,
    *,
    severity: Severity | None = None,
    recommendation: Recommendation | None = None,
    advice: str | None = None,
    coach_advice: str | None = None,
    sites: CheckinFact | None = None,
    source: str | None = None,
) -> Finding:
    spec = CATALOG[rule_id]
    severity = severity or spec.severity
    recommendation = recommendation or spec.recommendation
    # Pain-site associations are for the coach, and never on urgent alerts (RULES.md, D).
    notes = (
        pain_site_notes(sites.pain_sites, swelling=sites.swelling)
        if sites is not None and severity is not Severity.URGENT
        else ()
    )
    texts = render(
        spec,
        seen,
        coach_seen,
        recommendation=recommendation,
        advice=advice,
        coach_advice=coach_advice,
        notes=notes,
    )
    return Finding(
        rule_id=rule_id,
        severity=severity,
        recommendation=recommendation,
        observed_at=observed_at,
        message=texts.athlete,
        evidence=evidence,
        coach_message=texts.coach,
        source=source,
    )


def _coach(seen: str) -> str:
    """A second-person `seen` sentence in the coach's third person.

    Only the fixed phrases the rules below use are turned; a test checks that no "you" or
    "your" is left in any coach text.
    """
    for mine, theirs in (
        ("Your ", f"{ATHLETE}'s "),
        (" your ", f" {ATHLETE}'s "),
        ("You reported", f"{ATHLETE} reported"),
        ("You ran", f"{ATHLETE} ran"),
        (" you ", f" {ATHLETE} "),
    ):
        seen = seen.replace(mine, theirs)
    return seen


# --- Section A: one check-in --------------------------------------------------------------

# Every sign a check-in can report, in words, in the order they are listed.
_SIGNS: tuple[tuple[str, str], ...] = (
    ("trauma", "an injury"),
    ("swelling", "swelling"),
    ("redness_warmth", "redness or warmth"),
    ("fever", "a fever"),
    ("locking", "locking (the knee gets stuck)"),
    ("giving_way", "giving way"),
    ("cannot_bear_weight", "not being able to put weight on the leg"),
    ("numbness", "numbness or pins and needles below the knee"),
    ("night_pain", "pain at night"),
    ("stopped_run", "a run stopped because of knee pain"),
)


def _red_flag(checkin: CheckinFact, config: RulesConfig) -> str | None:
    """The first rule of RULES.md section A that matches the check-in, skipping disabled ones."""
    c = checkin
    rules = config.rules
    tests = (
        ("redflag.infection_signs", c.fever and (c.swelling or c.redness_warmth)),
        (
            "redflag.acute_injury",
            c.trauma and (c.swelling or c.giving_way or c.numbness or c.cannot_bear_weight),
        ),
        ("redflag.locked_knee", c.locking),
        ("redflag.cannot_bear_weight", c.cannot_bear_weight),
        ("redflag.severe_pain", c.pain_score >= rules.redflag.severe_pain.min_pain),
        (
            "redflag.professional_signs",
            c.swelling or c.giving_way or c.night_pain or c.numbness or c.redness_warmth,
        ),
        (
            "pain.high",
            c.stopped_run
            or (c.context == "post_run" and c.pain_score > rules.pain.high.max_post_run_pain),
        ),
    )
    return next((rule_id for rule_id, hit in tests if hit and config.is_enabled(rule_id)), None)


_CONTEXT_WORDS = {
    "post_run": "after a run",
    "next_morning": "the morning after a run",
    "daily": "daily",
}


def evaluate_checkin(checkin: CheckinFact, config: RulesConfig) -> list[Finding]:
    """Section A of RULES.md for one check-in: at most one finding, the first rule that matches.

    In order: redflag.infection_signs (fever with swelling or redness/warmth: emergency),
    redflag.acute_injury (trauma with swelling, giving way, numbness or no weight-bearing),
    redflag.locked_knee, redflag.cannot_bear_weight, redflag.severe_pain (pain ≥ 8, any
    context), redflag.professional_signs (swelling, giving way, night pain, numbness or
    redness/warmth), pain.high (post_run pain above 5, or a run stopped by knee pain). A disabled
    rule is skipped and the next is tried. The evidence lists every sign the check-in reported.

    Deterministic in the check-in alone, so the sweep can re-run it safely. `observed_at` is the
    check-in's `recorded_at`; `source` names the check-in, so it notifies once.
    """
    rule_id = _red_flag(checkin, config)
    if rule_id is None:
        return []
    pain = checkin.pain_score
    reported = [words for name, words in _SIGNS if getattr(checkin, name)]
    evidence: Evidence = {"pain_score": pain, "context": checkin.context}
    evidence.update({name: True for name, _ in _SIGNS if getattr(checkin, name)})
    context = _CONTEXT_WORDS.get(checkin.context, checkin.context)
    if reported:
        what = f"{_join(reported)}, with pain of {pain}/10 ({context} check-in)"
    else:
        what = f"pain of {pain}/10 ({context} check-in)"
    seen = f"Your check-in of {_date(checkin.recorded_at)} reports {what}."
    if rule_id == "pain.high" and not checkin.stopped_run:
        limit = config.rules.pain.high.max_post_run_pain
        evidence["limit"] = limit
        seen += f" Pain after running should stay at {limit}/10 or below."
    return [
        _finding(
            rule_id,
            checkin.recorded_at,
            seen,
            _coach(seen),
            evidence,
            sites=checkin,
            source=f"checkin:{checkin.id}",
        )
    ]


def _date(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- Section B: one athlete's history as of now -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """One athlete's facts known at `now`, sorted, with local-day helpers."""

    tz: ZoneInfo
    now: datetime
    today: date
    runs: tuple[RunFact, ...]
    checkins: tuple[CheckinFact, ...]
    attention_since: datetime | None = None

    def day(self, instant: datetime) -> date:
        return instant.astimezone(self.tz).date()

    def first_day(self, days: int) -> date:
        """First local day of "the last `days` days" (today included)."""
        return self.today - timedelta(days=days - 1)

    def runs_since(self, first: date) -> list[RunFact]:
        return [r for r in self.runs if self.day(r.start) >= first]

    def checkins_between(self, first: date, last: date) -> list[CheckinFact]:
        return [c for c in self.checkins if first <= self.day(c.recorded_at) <= last]

    def daily_km(self, first: date) -> list[float]:
        points = ((self.day(r.start), r.distance_m / 1000.0) for r in self.runs)
        return metrics.daily_series(points, first, self.today)


def _latest_with_sites(checkins: Sequence[CheckinFact]) -> CheckinFact | None:
    return next((c for c in reversed(checkins) if c.pain_sites), None)


def _pain_not_settled(ctx: _Context, config: RulesConfig) -> Finding | None:
    """pain.not_settled — pain-monitoring model (Silbernagel et al. 2007).

    Examines every `next_morning` check-in of the last `lookback_days` local days that falls on
    the local calendar day after a run (any hour: a run at 06:00 and a check-in at 07:00 the
    next day count). Its baseline is the latest `daily` or `next_morning` score in the
    `baseline_days` before the first run of that day started (0 if none). Fires when the score
    is ≥ `min_pain` and above the baseline; the most recent such check-in is reported.
    """
    cfg = config.rules.pain.not_settled
    first = ctx.first_day(cfg.lookback_days)
    for checkin in reversed(ctx.checkins_between(first, ctx.today)):
        if checkin.context != "next_morning" or checkin.pain_score < cfg.min_pain:
            continue
        run_day = ctx.day(checkin.recorded_at) - timedelta(days=1)
        runs = [r for r in ctx.runs if ctx.day(r.start) == run_day]
        if not runs:
            continue
        started = runs[0].start
        before = [
            c
            for c in ctx.checkins
            if c.context in {"next_morning", "daily"}
            and started - timedelta(days=cfg.baseline_days) <= c.recorded_at < started
        ]
        baseline = before[-1].pain_score if before else 0
        if checkin.pain_score <= baseline:
            continue
        distance = math.fsum(r.distance_m for r in runs)
        run_text = (
            f"your {km(distance)} run"
            if len(runs) == 1
            else (f"{len(runs)} runs totalling {km(distance)}")
        )
        seen = (
            f"On the morning of {ctx.day(checkin.recorded_at).isoformat()}, after {run_text} "
            f"on {run_day.isoformat()}, your pain was {checkin.pain_score}/10, up from "
            f"{baseline}/10 before the run."
        )
        return _finding(
            "pain.not_settled",
            checkin.recorded_at,
            seen,
            _coach(seen),
            {
                "pain_score": checkin.pain_score,
                "baseline_score": baseline,
                "run_distance_km": round(distance / 1000.0, 3),
            },
            sites=checkin,
        )
    return None


def _daily_scores(ctx: _Context, first: date, last: date) -> dict[date, int]:
    return metrics.daily_pain(
        (ctx.day(c.recorded_at), c.pain_score) for c in ctx.checkins_between(first, last)
    )


def _pain_rising(ctx: _Context, config: RulesConfig) -> Finding | None:
    """pain.rising — pain-monitoring model (Silbernagel et al. 2007).

    One score per local day, the day's highest (any context). Compares the mean of the last
    `week_days` local days' scores with the `week_days` before; fires when it rose by ≥
    `min_rise_points` and each week has ≥ `min_scored_days_per_week` scored days. A check-in
    sent twice, or twice in a day, counts once.
    """
    cfg = config.rules.pain.rising
    first = ctx.first_day(cfg.week_days)
    last = _daily_scores(ctx, first, ctx.today)
    prev = _daily_scores(ctx, first - timedelta(days=cfg.week_days), first - timedelta(days=1))
    if not metrics.pain_rising(
        list(last.values()), list(prev.values()), cfg.min_rise_points, cfg.min_scored_days_per_week
    ):
        return None
    mean_last = math.fsum(last.values()) / len(last)
    mean_prev = math.fsum(prev.values()) / len(prev)
    recent = ctx.checkins_between(first, ctx.today)
    seen = (
        f"Your mean daily pain over the last {cfg.week_days} days was {mean_last:.2f}/10 "
        f"({len(last)} days with a score), up {mean_last - mean_prev:.2f} points from "
        f"{mean_prev:.2f}/10 over the {cfg.week_days} days before ({len(prev)} days)."
    )
    return _finding(
        "pain.rising",
        recent[-1].recorded_at,
        seen,
        _coach(seen),
        {
            "mean_last": round(mean_last, 3),
            "mean_previous": round(mean_prev, 3),
            "rise": round(mean_last - mean_prev, 3),
            "scored_days_last": len(last),
            "scored_days_previous": len(prev),
        },
        sites=_latest_with_sites(recent),
    )


def _pain_persistent(ctx: _Context, config: RulesConfig) -> Finding | None:
    """pain.persistent — source article (pain that does not improve → professional help); NHS
    (see a GP if not better after a couple of weeks).

    One score per local day (the day's highest) over the last `window_days` local days. Fires
    on ≥ `min_scored_days` scored days whose first and last are ≥ `min_span_days` apart (both
    counted), with a score ≥ `min_pain` on ≥ `painful_fraction` of them.
    """
    cfg = config.rules.pain.persistent
    first = ctx.first_day(cfg.window_days)
    scores = _daily_scores(ctx, first, ctx.today)
    if len(scores) < cfg.min_scored_days:
        return None
    days = list(scores)
    span = (days[-1] - days[0]).days + 1
    painful = sum(1 for score in scores.values() if score >= cfg.min_pain)
    if span < cfg.min_span_days or not _at_least(painful / len(scores), cfg.painful_fraction):
        return None
    window = ctx.checkins_between(first, ctx.today)
    seen = (
        f"You reported pain of {cfg.min_pain}/10 or more on {painful} of the {len(scores)} "
        f"days with a check-in in the last {cfg.window_days} days (from {days[0].isoformat()} "
        f"to {days[-1].isoformat()}; highest {max(scores.values())}/10)."
    )
    return _finding(
        "pain.persistent",
        window[-1].recorded_at,
        seen,
        _coach(seen),
        {
            "painful_days": painful,
            "scored_days": len(scores),
            "span_days": span,
            "highest_score": max(scores.values()),
            "window_days": cfg.window_days,
        },
        sites=_latest_with_sites(window),
    )


def _days_before(ctx: _Context, instant: datetime, days: int) -> datetime:
    """The same wall-clock time `days` local calendar days before `instant` (DST-proof)."""
    local = instant.astimezone(ctx.tz)
    earlier = datetime.combine(local.date() - timedelta(days=days), local.time(), ctx.tz)
    return earlier.astimezone(UTC)


def _previous_run(ctx: _Context, run: RunFact) -> RunFact | None:
    return next((r for r in reversed(ctx.runs) if r.start < run.start), None)


def _after_break(ctx: _Context, run: RunFact, config: RulesConfig) -> int | None:
    """Local days without a run before `run`, when at least the break length; else None."""
    previous = _previous_run(ctx, run)
    if previous is None:
        return None
    days_off = (ctx.day(run.start) - ctx.day(previous.start)).days - 1
    return days_off if days_off >= config.rules.load.return_after_break.break_days else None


def _single_run_spike(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.single_run_spike — Frandsen et al., BJSM 2025;59:1203.

    Judges every run started in the last `lookback_days` local days, except a first run after
    a break (load.return_after_break) and runs stored as history (an activity file imported
    long after the run), which are references only. Its reference is the longest run started
    in the `window_days` local calendar days before it (from the same wall-clock time, so a DST
    change moves nothing), when its local day is ≥ `min_history_days` after the athlete's first
    run's; with `min_extrapolation_days` to `min_history_days` − 1 days of history, the longest
    run so far (marked "extrapolated"); with fewer, it is not judged. Ratio > `ratio` → warning,
    reduce_load, in the band small (≤ `moderate_ratio`), moderate (≤ `large_ratio`) or large.
    A check-in with pain ≥ `pain_upgrade_score` recorded between the run's start and
    `pain_upgrade_hours` after its end, or naming the run in `related_run_uuid`, makes it rest.
    The worst run is reported: rest first, then ratio, then the latest.
    """
    cfg = config.rules.load.single_run_spike
    if not ctx.runs:
        return None
    first_day = ctx.day(ctx.runs[0].start)
    history = [(r.start, r.distance_m) for r in ctx.runs]
    best: tuple[tuple[bool, float, datetime], Finding] | None = None
    for run in ctx.runs_since(ctx.first_day(cfg.lookback_days)):
        days = (ctx.day(run.start) - first_day).days
        if run.history or days < cfg.min_extrapolation_days:
            continue
        if _after_break(ctx, run, config) is not None:
            continue
        if days >= cfg.min_history_days:
            reference = "window"
            since = _days_before(ctx, run.start, cfg.window_days)
        else:
            reference = "extrapolated"
            since = ctx.runs[0].start
        longest = metrics.longest_run_between(history, since, run.start)
        spike = metrics.spike_ratio(run.distance_m, longest)
        if spike is None or longest is None or not _above(spike, cfg.ratio):
            continue
        if _above(spike, cfg.large_ratio):
            band = "large"
        elif _above(spike, cfg.moderate_ratio):
            band = "moderate"
        else:
            band = "small"
        recommendation = Recommendation.REDUCE_LOAD
        run_end = run.start + timedelta(seconds=run.duration_s)
        painful = [
            c
            for c in ctx.checkins
            if c.pain_score >= cfg.pain_upgrade_score
            and (
                c.related_run_uuid == run.uuid
                or run.start <= c.recorded_at <= run_end + timedelta(hours=cfg.pain_upgrade_hours)
            )
        ]
        worst_pain = max(painful, key=lambda c: (c.pain_score, c.recorded_at), default=None)
        of = (
            f"the longest run of the {cfg.window_days} days before it"
            if reference == "window"
            else f"the longest run so far, with only {days} days of history"
        )
        seen = (
            f"Your run on {ctx.day(run.start).isoformat()} was {km(run.distance_m)}, "
            f"{ratio(spike)} {of} ({km(longest)})."
        )
        coach_seen = _coach(seen) + f" That is a {band} spike in Frandsen 2025's bands."
        if worst_pain is not None:
            recommendation = Recommendation.REST
            after = f" A check-in after it reported pain of {worst_pain.pain_score}/10."
            seen += after
            coach_seen += after
        finding = _finding(
            "load.single_run_spike",
            run.start,
            seen,
            coach_seen,
            {
                "distance_km": round(run.distance_m / 1000.0, 3),
                "longest_before_km": round(longest / 1000.0, 3),
                "ratio": round(spike, 3),
                "band": band,
                "reference": reference,
                "window_days": cfg.window_days,
                "pain_score": worst_pain.pain_score if worst_pain is not None else None,
            },
            recommendation=recommendation,
            sites=worst_pain,
        )
        rank = (worst_pain is not None, spike, run.start)
        if best is None or rank > best[0]:
            best = (rank, finding)
    return best[1] if best is not None else None


def _return_after_break(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.return_after_break — information only: no reference run exists after a break.

    The latest run of the last `lookback_days` local days that follows ≥ `break_days` local
    days without a run (days strictly between the two runs' days), when an earlier run exists;
    a run stored as history is not judged.
    """
    cfg = config.rules.load.return_after_break
    for run in reversed(ctx.runs_since(ctx.first_day(cfg.lookback_days))):
        days_off = None if run.history else _after_break(ctx, run, config)
        if days_off is None:
            continue
        seen = (
            f"Your run on {ctx.day(run.start).isoformat()} was {km(run.distance_m)}, the first "
            f"after {days_off} days without a run."
        )
        return _finding(
            "load.return_after_break",
            run.start,
            seen,
            _coach(seen),
            {"distance_km": round(run.distance_m / 1000.0, 3), "days_without_run": days_off},
        )
    return None


def _weekly_ramp(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.weekly_ramp — Nielsen et al., JOSPT 2014 (weak evidence, information only).

    Distance of the last 7 local days against the 7 before (`rules.metrics.weekly_ramp`); fires
    when the earlier week has ≥ `min_earlier_week_km` (and more than 0) km and the last week is
    above `ratio` × the earlier one.
    """
    cfg = config.rules.load.weekly_ramp
    last, prev = metrics.weekly_ramp(ctx.daily_km(ctx.first_day(14)))
    if prev <= 0.0 or not _at_least(prev, cfg.min_earlier_week_km):
        return None
    if not _above(last, cfg.ratio * prev):
        return None
    recent = ctx.runs_since(ctx.first_day(7))
    seen = (
        f"You ran {last:.1f} km in the last 7 days, {ratio(last / prev)} the {prev:.1f} km "
        "of the 7 days before."
    )
    return _finding(
        "load.weekly_ramp",
        recent[-1].start,
        seen,
        _coach(seen),
        {
            "last_7d_km": round(last, 3),
            "previous_7d_km": round(prev, 3),
            "ratio": round(last / prev, 3),
        },
    )


def _acwr(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.acwr — Williams et al., BJSM 2017; Gabbett, BJSM 2016 (disputed: information only).

    The uncoupled EWMA acute:chronic ratio (`rules.metrics.acwr`) of the daily distance from the
    athlete's first run's local day to today, rest days 0, both averages seeded with the mean of
    the first `seed_days` days; fires when ≥ `ratio` and the first run is at least
    `min_history_days` local days before today.
    """
    cfg = config.rules.load.acwr
    if not ctx.runs:
        return None
    first = ctx.day(ctx.runs[0].start)
    if (ctx.today - first).days < cfg.min_history_days:
        return None
    series = ctx.daily_km(first)
    value = metrics.acwr(series, cfg.acute_days, cfg.chronic_days, cfg.seed_days)
    if value is None or not _at_least(value, cfg.ratio):
        return None
    seed = metrics.acwr_seed(series, cfg.seed_days)
    acute = metrics.ewma(series, cfg.acute_days, seed)[-1]
    chronic = acute / value
    seen = (
        f"Your acute:chronic load ratio is {value:.2f} (the {cfg.acute_days}-day weighted "
        f"average of daily distance, {acute:.2f} km/day, against the {cfg.chronic_days}-day "
        f"one, {chronic:.2f} km/day), at or above {cfg.ratio:.2f}."
    )
    return _finding(
        "load.acwr",
        ctx.runs[-1].start,
        seen,
        _coach(seen),
        {
            "acwr": round(value, 3),
            "acute_km_per_day": round(acute, 3),
            "chronic_km_per_day": round(chronic, 3),
        },
    )


def _monotony(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.monotony — Foster 1998/2001 (the threshold is convention).

    Mean ÷ SD of the daily load over the last `window_days` local days, rest days 0, where a
    run's load is session RPE × minutes, or minutes without an RPE (`rules.metrics.session_load`,
    `rules.metrics.monotony`); fires when above `max_monotony`.
    """
    cfg = config.rules.load.monotony
    first = ctx.first_day(cfg.window_days)
    runs = ctx.runs_since(first)
    points = ((ctx.day(r.start), metrics.session_load(r.duration_s, r.rpe)) for r in runs)
    loads = metrics.daily_series(points, first, ctx.today)
    value = metrics.monotony(loads)
    if value is None or not (math.isinf(value) or _above(value, cfg.max_monotony)):
        return None
    mean = math.fsum(loads) / len(loads)
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in loads) / len(loads))
    shown = "unbounded (the same load every day)" if math.isinf(value) else f"{value:.2f}"
    seen = (
        f"Your training monotony over the last {cfg.window_days} days is {shown}, above "
        f"{cfg.max_monotony:.2f}: mean daily load {mean:.1f}, standard deviation {sd:.1f} "
        "(load = session RPE × minutes, or minutes where no RPE was given)."
    )
    return _finding(
        "load.monotony",
        runs[-1].start,
        seen,
        _coach(seen),
        {
            "monotony": "inf" if math.isinf(value) else round(value, 3),
            "mean_daily_load": round(mean, 3),
            "sd_daily_load": round(sd, 3),
            "window_days": cfg.window_days,
        },
    )


def _cadence_drop(ctx: _Context, config: RulesConfig) -> Finding | None:
    """form.cadence_drop — Heiderscheit et al. 2011 (mechanistic only).

    The recent runs are the last `recent_runs` runs with a cadence, of which only those started
    in the last `window_days` local days are judged. Their reference is the median cadence of
    the runs started in the `median_days` before the oldest judged run (so a drop does not
    lower its own reference), which needs ≥ `min_baseline_runs` runs. Fires when ≥
    `min_dropped` judged runs are ≥ `drop_percent` % below it (`rules.metrics.cadence_drop`)
    and a check-in with pain ≥ `pain_score` falls in the same `window_days` days.
    """
    cfg = config.rules.form.cadence_drop
    with_cadence = [r for r in ctx.runs if r.cadence_spm is not None and r.cadence_spm > 0.0]
    latest = with_cadence[-cfg.recent_runs :]
    if not latest:
        return None
    first = ctx.first_day(cfg.window_days)
    judged = [r for r in latest if ctx.day(r.start) >= first]
    if len(judged) < cfg.min_dropped:
        return None
    oldest = judged[0].start
    baseline = [
        r.cadence_spm
        for r in with_cadence
        if r.cadence_spm is not None
        and oldest - timedelta(days=cfg.median_days) <= r.start < oldest
    ]
    reference = metrics.median(baseline)
    if reference is None or len(baseline) < cfg.min_baseline_runs:
        return None
    fraction = cfg.drop_percent / 100.0
    cadences = [r.cadence_spm for r in judged if r.cadence_spm is not None]
    if not metrics.cadence_drop(cadences, reference, fraction, cfg.min_dropped):
        return None
    dropped = [
        r
        for r in judged
        if r.cadence_spm is not None
        and metrics.cadence_drop([r.cadence_spm], reference, fraction, 1)
    ]
    painful = [c for c in ctx.checkins_between(first, ctx.today) if c.pain_score >= cfg.pain_score]
    if not painful:
        return None
    worst = max(painful, key=lambda c: (c.pain_score, c.recorded_at))
    lowest = min(cadences)
    seen = (
        f"Your cadence was at least {cfg.drop_percent:g} % below your median of "
        f"{reference:.0f} steps/min on {len(dropped)} of your last {len(latest)} runs "
        f"(lowest {lowest:.0f} steps/min), and you reported pain of {worst.pain_score}/10 in "
        f"the same {cfg.window_days} days."
    )
    coach_seen = (
        f"{ATHLETE}'s cadence was at least {cfg.drop_percent:g} % below the median of "
        f"{reference:.0f} steps/min on {len(dropped)} of the last {len(latest)} runs "
        f"(lowest {lowest:.0f} steps/min), with pain of {worst.pain_score}/10 reported in "
        f"the same {cfg.window_days} days."
    )
    return _finding(
        "form.cadence_drop",
        max(dropped[-1].start, painful[-1].recorded_at),
        seen,
        coach_seen,
        {
            "median_cadence_spm": round(reference, 1),
            "lowest_recent_spm": round(lowest, 1),
            "largest_drop_percent": round(100.0 * (1.0 - lowest / reference), 2),
            "dropped_runs": len(dropped),
            "recent_runs": len(latest),
            "pain_score": worst.pain_score,
        },
        advice="A gait review can check how your running form has changed.",
        coach_advice=f"A gait review can check how {ATHLETE}'s running form has changed.",
        sites=worst,
    )


_OSTRC_Q1 = (
    "full participation without problems",
    "full participation, but with a problem",
    "reduced participation",
    "cannot participate",
)


def _ostrc_is_substantial(answers: tuple[int, int, int, int], min_score: int) -> bool:
    # rules.metrics.ostrc_substantial fixes the catalog's 17; this applies the configured
    # score the same way (and with the default agrees with it: see the tests).
    q1, q2, q3, q4 = answers
    metrics.ostrc_score(q1, q2, q3, q4)  # validates the option indices
    scores = metrics.OSTRC_OPTION_SCORES
    return q1 == 3 or scores[q2] >= min_score or scores[q3] >= min_score


def _ostrc_substantial(ctx: _Context, config: RulesConfig) -> Finding | None:
    """ostrc.substantial — Clarsen et al., BJSM 2013/2020 (OSTRC-O2).

    Weeks are blocks of `week_days` local days ending today; each week's answer is the latest
    check-in carrying OSTRC answers in it. Fires when this week's answer is substantial (Q1 =
    cannot participate, or Q2 or Q3 scored ≥ `substantial_score`): reduce_load, or
    professional_assessment when each of the last `consecutive_weeks` weeks is substantial.
    """
    cfg = config.rules.ostrc.substantial
    answered = [c for c in ctx.checkins if c.ostrc is not None]
    week_answers: list[CheckinFact | None] = []
    for week in range(cfg.consecutive_weeks):
        last = ctx.today - timedelta(days=week * cfg.week_days)
        first = last - timedelta(days=cfg.week_days - 1)
        in_week = [c for c in answered if first <= ctx.day(c.recorded_at) <= last]
        week_answers.append(in_week[-1] if in_week else None)
    streak = 0
    for answer in week_answers:
        if answer is None or answer.ostrc is None:
            break
        if not _ostrc_is_substantial(answer.ostrc, cfg.substantial_score):
            break
        streak += 1
    current = week_answers[0]
    if streak == 0 or current is None or current.ostrc is None:
        return None
    q1, q2, q3, q4 = current.ostrc
    score = metrics.ostrc_score(q1, q2, q3, q4)
    repeated = streak >= cfg.consecutive_weeks
    why = (
        "could not take part in training"
        if q1 == 3
        else "training or performance reduced to a moderate or greater extent"
    )
    seen = (
        f"Your weekly OSTRC answers of {ctx.day(current.recorded_at).isoformat()} show a "
        f"substantial problem: {why} (Q1 {_OSTRC_Q1[q1]}; severity score {score}/100)"
    )
    seen += f", for {streak} weeks in a row." if repeated else "."
    return _finding(
        "ostrc.substantial",
        current.recorded_at,
        seen,
        _coach(seen),
        {
            "q1": q1,
            "q2": q2,
            "q3": q3,
            "q4": q4,
            "severity_score": score,
            "substantial_weeks": streak,
        },
        recommendation=(
            Recommendation.PROFESSIONAL_ASSESSMENT if repeated else Recommendation.REDUCE_LOAD
        ),
        sites=current,
    )


def _engagement_quiet(ctx: _Context, config: RulesConfig) -> Finding | None:
    """engagement.quiet — not clinical: the coach should check in.

    For an athlete with an unresolved warning or urgent alert (`attention_since`, from the
    caller): fires when the latest run or check-in (or, with none, the alert's opening) is at
    least `quiet_days` × 24 h before now. `observed_at` advances a day at a time while the
    silence lasts, so the alert stays open, and resolves itself once the athlete is heard from.
    """
    cfg = config.rules.engagement.quiet
    if ctx.attention_since is None:
        return None
    latest = [*(r.start for r in ctx.runs[-1:]), *(c.recorded_at for c in ctx.checkins[-1:])]
    heard = max(latest) if latest else None
    since = heard if heard is not None else ctx.attention_since
    days_quiet = (ctx.now - since) // timedelta(days=1)
    if days_quiet < cfg.quiet_days:
        return None
    last = f"since {since.astimezone(ctx.tz).date().isoformat()}"
    seen = (
        f"There is an open alert about your knee, and KneeGuard has heard nothing from you "
        f"(no run, no check-in) {last}: {days_quiet} days."
    )
    return _finding(
        "engagement.quiet",
        since + timedelta(days=days_quiet),
        seen,
        _coach(seen),
        {"days_quiet": days_quiet, "last_heard": since.isoformat() if heard else None},
    )


_SCHEDULED: tuple[tuple[str, Callable[[_Context, RulesConfig], Finding | None]], ...] = (
    ("pain.not_settled", _pain_not_settled),
    ("pain.rising", _pain_rising),
    ("pain.persistent", _pain_persistent),
    ("load.single_run_spike", _single_run_spike),
    ("load.return_after_break", _return_after_break),
    ("load.weekly_ramp", _weekly_ramp),
    ("load.acwr", _acwr),
    ("load.monotony", _monotony),
    ("form.cadence_drop", _cadence_drop),
    ("ostrc.substantial", _ostrc_substantial),
    ("engagement.quiet", _engagement_quiet),
)


def evaluate_history(history: AthleteHistory, now: datetime, config: RulesConfig) -> list[Finding]:
    """Section B of RULES.md for one athlete as of `now` (a timezone-aware instant).

    Each rule's docstring in this module says exactly which data it examines. Facts are
    expected as ingest stores them (pain 0–10, OSTRC options 0–3, RPE 0–10, UTC instants);
    their order does not matter. Returns at most one finding per rule id, in catalog order.

    Raises `ValueError` for a naive `now` and `zoneinfo.ZoneInfoNotFoundError` for an unknown
    timezone.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    now = now.astimezone(UTC)
    tz = ZoneInfo(history.timezone)
    ctx = _Context(
        tz=tz,
        now=now,
        today=now.astimezone(tz).date(),
        runs=tuple(sorted((r for r in history.runs if r.start <= now), key=lambda r: r.start)),
        checkins=tuple(
            sorted(
                (c for c in history.checkins if c.recorded_at <= now),
                key=lambda c: c.recorded_at,
            )
        ),
        attention_since=history.attention_since,
    )
    findings: list[Finding] = []
    for rule_id, rule in _SCHEDULED:
        if config.is_enabled(rule_id):
            finding = rule(ctx, config)
            if finding is not None:
                findings.append(finding)
    return findings


def history_days_needed(config: RulesConfig) -> int:
    """How many local days of runs and check-ins before `now` the caller should pass.

    This covers every window the rules read, plus four chronic spans for load.acwr, after which
    the weight of the EWMA's zero seed is below 0.1 % of the chronic load. Older data matters
    only in two ways, both by design: the first run passed stands for the start of the athlete's
    history (the `min_history_days` checks), and pain.not_settled's baseline is the latest
    baseline check-in passed (0 if none).
    """
    rules = config.rules
    spike = rules.load.single_run_spike
    cadence = rules.form.cadence_drop
    not_settled = rules.pain.not_settled
    ostrc = rules.ostrc.substantial
    comeback = rules.load.return_after_break
    return 1 + max(
        spike.lookback_days + max(spike.window_days + 1, spike.min_history_days),
        max(spike.lookback_days, comeback.lookback_days) + comeback.break_days + 2,
        max(rules.load.acwr.min_history_days, 4 * rules.load.acwr.chronic_days),
        14,
        rules.load.monotony.window_days,
        not_settled.lookback_days + 1 + not_settled.baseline_days,
        rules.engagement.quiet.quiet_days,
        2 * rules.pain.rising.week_days,
        rules.pain.persistent.window_days,
        cadence.window_days + cadence.median_days,
        ostrc.week_days * ostrc.consecutive_weeks,
    )
