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
from rules.text import km, pain_site_notes, ratio, render

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
    evidence: Evidence,
    *,
    severity: Severity | None = None,
    recommendation: Recommendation | None = None,
    advice: str | None = None,
    notes: Sequence[str] = (),
) -> Finding:
    spec = CATALOG[rule_id]
    recommendation = recommendation or spec.recommendation
    return Finding(
        rule_id=rule_id,
        severity=severity or spec.severity,
        recommendation=recommendation,
        observed_at=observed_at,
        message=render(spec, seen, recommendation=recommendation, advice=advice, notes=notes),
        evidence=evidence,
    )


def _notes(checkin: CheckinFact | None) -> tuple[str, ...]:
    if checkin is None:
        return ()
    return pain_site_notes(checkin.pain_sites, swelling=checkin.swelling, locking=checkin.locking)


# --- Section A: one check-in --------------------------------------------------------------


def evaluate_checkin(checkin: CheckinFact, config: RulesConfig) -> list[Finding]:
    """Section A of RULES.md for one check-in: the red flags and pain.high.

    - redflag.locked_knee: `locking` (NHS pathways: urgent referral).
    - redflag.infection_signs: `swelling` and `fever` (NHS pathways: possible septic joint).
    - redflag.acute_injury: `trauma` and `cannot_bear_weight` (Ottawa knee rules).
    - redflag.professional_signs: `swelling`, `giving_way` or `night_pain`, only when none of
      the urgent rules above fired for this check-in (source article; NHS pathways), because the
      urgent alert already sends the athlete to a professional.
    - pain.high: a `post_run` pain score above the limit (Silbernagel et al. 2007).

    Deterministic in the check-in alone, so the sweep can re-run it safely. `observed_at` is the
    check-in's `recorded_at`.
    """
    findings: list[Finding] = []
    at = checkin.recorded_at
    pain = checkin.pain_score
    notes = _notes(checkin)
    evidence_pain: Evidence = {"pain_score": pain, "context": checkin.context}

    def add(rule_id: str, seen: str, evidence: Evidence) -> None:
        if config.is_enabled(rule_id):
            findings.append(_finding(rule_id, at, seen, evidence, notes=notes))

    if checkin.locking:
        add(
            "redflag.locked_knee",
            f"Your check-in reports that your knee locked (pain {pain}/10).",
            {**evidence_pain, "locking": True},
        )
    if checkin.swelling and checkin.fever:
        add(
            "redflag.infection_signs",
            f"Your check-in reports a swollen knee together with a fever (pain {pain}/10).",
            {**evidence_pain, "swelling": True, "fever": True},
        )
    if checkin.trauma and checkin.cannot_bear_weight:
        add(
            "redflag.acute_injury",
            "Your check-in reports an injury after which you cannot bear weight on the leg "
            f"(pain {pain}/10).",
            {**evidence_pain, "trauma": True, "cannot_bear_weight": True},
        )
    urgent_fired = bool(findings)
    signs = [
        name
        for name, present in (
            ("swelling", checkin.swelling),
            ("giving way", checkin.giving_way),
            ("night pain", checkin.night_pain),
        )
        if present
    ]
    if signs and not urgent_fired:
        add(
            "redflag.professional_signs",
            f"Your check-in reports {_join(signs)} (pain {pain}/10).",
            {
                **evidence_pain,
                "swelling": checkin.swelling,
                "giving_way": checkin.giving_way,
                "night_pain": checkin.night_pain,
            },
        )
    limit = config.rules.pain.high.max_post_run_pain
    if checkin.context == "post_run" and pain > limit:
        add(
            "pain.high",
            f"Your pain after the run was {pain}/10, above the limit of {limit}/10.",
            {**evidence_pain, "limit": limit},
        )
    return findings


def _join(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


# --- Section B: one athlete's history as of now -----------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """One athlete's facts known at `now`, sorted, with local-day helpers."""

    tz: ZoneInfo
    today: date
    runs: tuple[RunFact, ...]
    checkins: tuple[CheckinFact, ...]

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

    Examines every `next_morning` check-in of the last `lookback_days` local days that follows a
    run (a run started within `after_run_hours` before it). Its baseline is the athlete's last
    pre-run score: the latest `next_morning` or `daily` check-in recorded before the first of
    those runs started (0 if none). Fires when the score is ≥ `min_pain` and above the baseline;
    the most recent such check-in is reported.
    """
    cfg = config.rules.pain.not_settled
    window = timedelta(hours=cfg.after_run_hours)
    first = ctx.first_day(cfg.lookback_days)
    for checkin in reversed(ctx.checkins_between(first, ctx.today)):
        if checkin.context != "next_morning" or checkin.pain_score < cfg.min_pain:
            continue
        runs = [
            r for r in ctx.runs if checkin.recorded_at - window <= r.start < checkin.recorded_at
        ]
        if not runs:
            continue
        before = [
            c
            for c in ctx.checkins
            if c.context in {"next_morning", "daily"} and c.recorded_at < runs[0].start
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
        return _finding(
            "pain.not_settled",
            checkin.recorded_at,
            f"On the morning of {ctx.day(checkin.recorded_at).isoformat()}, after {run_text}, "
            f"your pain was {checkin.pain_score}/10, up from {baseline}/10 before the run.",
            {
                "pain_score": checkin.pain_score,
                "baseline_score": baseline,
                "run_distance_km": round(distance / 1000.0, 3),
            },
            notes=_notes(checkin),
        )
    return None


def _pain_rising(ctx: _Context, config: RulesConfig) -> Finding | None:
    """pain.rising — pain-monitoring model (Silbernagel et al. 2007).

    Compares the mean pain score of every check-in (any context) in the last `week_days` local
    days with the `week_days` before; fires when it rose by ≥ `min_rise_points` and each week
    has ≥ `min_checkins_per_week` check-ins (`rules.metrics.pain_rising`).
    """
    cfg = config.rules.pain.rising
    first = ctx.first_day(cfg.week_days)
    last = ctx.checkins_between(first, ctx.today)
    prev = ctx.checkins_between(first - timedelta(days=cfg.week_days), first - timedelta(days=1))
    last_scores = [c.pain_score for c in last]
    prev_scores = [c.pain_score for c in prev]
    if not metrics.pain_rising(
        last_scores, prev_scores, cfg.min_rise_points, cfg.min_checkins_per_week
    ):
        return None
    mean_last = math.fsum(last_scores) / len(last_scores)
    mean_prev = math.fsum(prev_scores) / len(prev_scores)
    return _finding(
        "pain.rising",
        last[-1].recorded_at,
        f"Your mean pain over the last {cfg.week_days} days was {mean_last:.2f}/10 "
        f"({len(last)} check-ins), up {mean_last - mean_prev:.2f} points from "
        f"{mean_prev:.2f}/10 over the {cfg.week_days} days before ({len(prev)} check-ins).",
        {
            "mean_last": round(mean_last, 3),
            "mean_previous": round(mean_prev, 3),
            "rise": round(mean_last - mean_prev, 3),
            "checkins_last": len(last),
            "checkins_previous": len(prev),
        },
        notes=_notes(_latest_with_sites(last)),
    )


def _pain_persistent(ctx: _Context, config: RulesConfig) -> Finding | None:
    """pain.persistent — source article (persistent pain → professional help); NHS 2-week review.

    Over the last `window_days` local days, counts the days whose worst check-in score is
    ≥ `min_pain` (`rules.metrics.pain_stats`); fires on ≥ `min_days` such days with ≥
    `min_checkins` check-ins in the window.
    """
    cfg = config.rules.pain.persistent
    window = ctx.checkins_between(ctx.first_day(cfg.window_days), ctx.today)
    stats = metrics.pain_stats(
        [(ctx.day(c.recorded_at), c.pain_score) for c in window], cfg.min_pain
    )
    if stats.days_at_or_above < cfg.min_days or stats.count < cfg.min_checkins:
        return None
    return _finding(
        "pain.persistent",
        window[-1].recorded_at,
        f"You reported pain of {cfg.min_pain}/10 or more on {stats.days_at_or_above} of the "
        f"{stats.days_with_checkin} days with a check-in in the last {cfg.window_days} days "
        f"({stats.count} check-ins).",
        {
            "painful_days": stats.days_at_or_above,
            "days_with_checkin": stats.days_with_checkin,
            "checkins": stats.count,
            "window_days": cfg.window_days,
        },
        notes=_notes(_latest_with_sites(window)),
    )


def _single_run_spike(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.single_run_spike — Frandsen et al., BJSM 2025;59:1203.

    Judges every run started in the last `lookback_days` local days whose local day is at least
    `min_history_days` after the athlete's first run's day, except runs stored as history (an
    activity file imported long after the run), which are references only. Its reference is the
    longest run started in the `window_days` (exact instants) before it
    (`rules.metrics.longest_run_before`).
    Ratio > `info_ratio` → info, > `warning_ratio` → warning. A check-in with pain ≥
    `pain_upgrade_score` recorded between the run's start and `pain_upgrade_hours` after its
    end, or naming the run in `related_run_uuid`, upgrades it to warning/rest. The worst run is
    reported: highest severity, then rest, then ratio, then the latest.
    """
    cfg = config.rules.load.single_run_spike
    if not ctx.runs:
        return None
    first_day = ctx.day(ctx.runs[0].start)
    history = [(r.start, r.distance_m) for r in ctx.runs]
    best: tuple[tuple[int, bool, float, datetime], Finding] | None = None
    for run in ctx.runs_since(ctx.first_day(cfg.lookback_days)):
        if run.history or (ctx.day(run.start) - first_day).days < cfg.min_history_days:
            continue
        longest = metrics.longest_run_before(history, run.start, cfg.window_days)
        spike = metrics.spike_ratio(run.distance_m, longest)
        if spike is None or longest is None or not _above(spike, cfg.info_ratio):
            continue
        severity = Severity.WARNING if _above(spike, cfg.warning_ratio) else Severity.INFO
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
        seen = (
            f"Your run on {ctx.day(run.start).isoformat()} was {km(run.distance_m)}, "
            f"{ratio(spike)} the longest run of the {cfg.window_days} days before it "
            f"({km(longest)})."
        )
        if worst_pain is not None:
            severity, recommendation = Severity.WARNING, Recommendation.REST
            seen += f" A check-in after it reported pain of {worst_pain.pain_score}/10."
        finding = _finding(
            "load.single_run_spike",
            run.start,
            seen,
            {
                "distance_km": round(run.distance_m / 1000.0, 3),
                "longest_before_km": round(longest / 1000.0, 3),
                "ratio": round(spike, 3),
                "window_days": cfg.window_days,
                "pain_score": worst_pain.pain_score if worst_pain is not None else None,
            },
            severity=severity,
            recommendation=recommendation,
            notes=_notes(worst_pain),
        )
        rank = (int(severity), worst_pain is not None, spike, run.start)
        if best is None or rank > best[0]:
            best = (rank, finding)
    return best[1] if best is not None else None


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
    return _finding(
        "load.weekly_ramp",
        recent[-1].start,
        f"You ran {last:.1f} km in the last 7 days, {ratio(last / prev)} the {prev:.1f} km "
        "of the 7 days before.",
        {
            "last_7d_km": round(last, 3),
            "previous_7d_km": round(prev, 3),
            "ratio": round(last / prev, 3),
        },
    )


def _acwr(ctx: _Context, config: RulesConfig) -> Finding | None:
    """load.acwr — Williams et al., BJSM 2017; Gabbett, BJSM 2016 (disputed: information only).

    The uncoupled EWMA acute:chronic ratio (`rules.metrics.acwr`) of the daily distance from the
    athlete's first run's local day to today, rest days 0; fires when ≥ `ratio` and the first run
    is at least `min_history_days` local days before today.
    """
    cfg = config.rules.load.acwr
    if not ctx.runs:
        return None
    first = ctx.day(ctx.runs[0].start)
    if (ctx.today - first).days < cfg.min_history_days:
        return None
    series = ctx.daily_km(first)
    value = metrics.acwr(series, cfg.acute_days, cfg.chronic_days)
    if value is None or not _at_least(value, cfg.ratio):
        return None
    acute = metrics.ewma(series, cfg.acute_days)[-1]
    chronic = acute / value
    return _finding(
        "load.acwr",
        ctx.runs[-1].start,
        f"Your acute:chronic load ratio is {value:.2f} (the {cfg.acute_days}-day weighted "
        f"average of daily distance, {acute:.2f} km/day, against the {cfg.chronic_days}-day "
        f"one, {chronic:.2f} km/day), at or above {cfg.ratio:.2f}.",
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
    return _finding(
        "load.monotony",
        runs[-1].start,
        f"Your training monotony over the last {cfg.window_days} days is {shown}, above "
        f"{cfg.max_monotony:.2f}: mean daily load {mean:.1f}, standard deviation {sd:.1f} "
        "(load = session RPE × minutes, or minutes where no RPE was given).",
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
    return _finding(
        "form.cadence_drop",
        max(dropped[-1].start, painful[-1].recorded_at),
        f"Your cadence was at least {cfg.drop_percent:g} % below your median of "
        f"{reference:.0f} steps/min on {len(dropped)} of your last {len(latest)} runs "
        f"(lowest {lowest:.0f} steps/min), and you reported pain of {worst.pain_score}/10 in "
        f"the same {cfg.window_days} days.",
        {
            "median_cadence_spm": round(reference, 1),
            "lowest_recent_spm": round(lowest, 1),
            "largest_drop_percent": round(100.0 * (1.0 - lowest / reference), 2),
            "dropped_runs": len(dropped),
            "recent_runs": len(latest),
            "pain_score": worst.pain_score,
        },
        advice="A gait review can check how your running form has changed.",
        notes=_notes(worst),
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
    seen = (
        f"Your weekly OSTRC answers of {ctx.day(current.recorded_at).isoformat()} show a "
        f"substantial problem (severity score {score}/100)"
    )
    seen += f", for {streak} weeks in a row." if repeated else "."
    return _finding(
        "ostrc.substantial",
        current.recorded_at,
        seen,
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
        notes=_notes(current),
    )


_SCHEDULED: tuple[tuple[str, Callable[[_Context, RulesConfig], Finding | None]], ...] = (
    ("pain.not_settled", _pain_not_settled),
    ("pain.rising", _pain_rising),
    ("pain.persistent", _pain_persistent),
    ("load.single_run_spike", _single_run_spike),
    ("load.weekly_ramp", _weekly_ramp),
    ("load.acwr", _acwr),
    ("load.monotony", _monotony),
    ("form.cadence_drop", _cadence_drop),
    ("ostrc.substantial", _ostrc_substantial),
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
        today=now.astimezone(tz).date(),
        runs=tuple(sorted((r for r in history.runs if r.start <= now), key=lambda r: r.start)),
        checkins=tuple(
            sorted(
                (c for c in history.checkins if c.recorded_at <= now),
                key=lambda c: c.recorded_at,
            )
        ),
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
    return 1 + max(
        spike.lookback_days + max(spike.window_days, spike.min_history_days),
        max(rules.load.acwr.min_history_days, 4 * rules.load.acwr.chronic_days),
        14,
        rules.load.monotony.window_days,
        not_settled.lookback_days + math.ceil(not_settled.after_run_hours / 24.0),
        2 * rules.pain.rising.week_days,
        rules.pain.persistent.window_days,
        cadence.window_days + cadence.median_days,
        ostrc.week_days * ostrc.consecutive_weeks,
    )
