"""Pure training-load, pain and questionnaire metrics used by the rule catalog.

Every function here is a pure computation: no I/O, no database and no clock. Callers
pass the dates and instants that define a window, so a rule evaluated "as of now" in an
athlete's timezone gives the same answer when replayed in a test.

The rule ids that use each metric are named in the docstrings; the thresholds themselves
live in the rules configuration, not here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta

__all__ = [
    "OSTRC_OPTION_SCORES",
    "PainStats",
    "acwr",
    "acwr_seed",
    "cadence_drop",
    "daily_pain",
    "daily_series",
    "ewma",
    "longest_run_before",
    "longest_run_between",
    "median",
    "monotony",
    "ostrc_score",
    "ostrc_substantial",
    "pain_rising",
    "pain_stats",
    "session_load",
    "spike_ratio",
    "weekly_ramp",
]

# Thresholds in the catalog are written as round decimals ("5 % below", "by >= 1 point");
# binary floats cannot represent most of them, so a value exactly on the threshold could
# fall either side by one ulp. This slack keeps boundary cases on the inclusive side.
_REL_TOL = 1e-9


def _at_least(value: float, bound: float) -> bool:
    return value >= bound - _REL_TOL * max(1.0, abs(bound))


def daily_series(points: Iterable[tuple[date, float]], start: date, end: date) -> list[float]:
    """Turn dated values (e.g. run distances) into one total per calendar day.

    Returns one value per day from ``start`` to ``end`` inclusive: the sum of the values
    dated that day, with 0.0 for rest days. Points dated outside the range are ignored.
    This is the daily load series the rules ``load.acwr``, ``load.weekly_ramp`` and
    ``load.monotony`` read, where a rest day must count as zero load.

    Raises ``ValueError`` if ``end`` is before ``start``.
    """
    if end < start:
        raise ValueError(f"end {end} is before start {start}")
    series = [0.0] * ((end - start).days + 1)
    for day, value in points:
        if start <= day <= end:
            series[(day - start).days] += value
    return series


def ewma(series: Sequence[float], n: int, seed: float = 0.0) -> list[float]:
    """Exponentially weighted moving average of a daily series, one value per day.

    Uses λ = 2 / (N + 1) and EWMA_t = λ·x_t + (1 − λ)·EWMA_{t−1}, as in Williams et al.,
    BJSM 2017 ("Better way to determine the acute:chronic workload ratio?").

    The average starts from ``seed`` before the first day. A zero seed assumes the athlete did
    nothing before the series starts, which inflates the acute:chronic ratio for weeks (the
    chronic average climbs from 0 far slower than the acute one); ``load.acwr`` therefore seeds
    both averages with the mean daily load of the first days of history (:func:`acwr`).
    The seed's weight decays as (1 − λ)^t. The result is linear in the loads and the seed.

    Raises ``ValueError`` if ``n`` < 1.
    """
    if n < 1:
        raise ValueError(f"EWMA span must be >= 1, got {n}")
    lam = 2.0 / (n + 1)
    out: list[float] = []
    previous = seed
    for x in series:
        previous = lam * x + (1.0 - lam) * previous
        out.append(previous)
    return out


def acwr(
    series: Sequence[float], acute_n: int = 7, chronic_n: int = 28, seed_days: int = 7
) -> float | None:
    """Uncoupled EWMA acute:chronic workload ratio as of the last day of ``series``.

    Used by ``load.acwr``. Acute load is the EWMA with span ``acute_n`` through the last
    day. Chronic load is the EWMA with span ``chronic_n`` through the day before the acute
    window began, i.e. excluding the last ``acute_n`` days, so the acute load does not feed
    the chronic load (uncoupling: Windt & Gabbett, BJSM 2018; Lolli et al., BJSM 2019).
    EWMA method from Williams et al., BJSM 2017. Both averages start from the mean daily load
    of the first ``seed_days`` days of the series (RULES.md v2), not from 0: with a zero seed a
    steady plan read 1.61 at day 34 against 1.40 once settled.

    Returns ``None`` when the series is shorter than ``acute_n + 1`` days (no chronic day
    left) or the chronic load is 0 (ratio undefined).
    """
    if acute_n < 1 or chronic_n < 1:
        raise ValueError("acute_n and chronic_n must be >= 1")
    if len(series) < acute_n + 1:
        return None
    seed = acwr_seed(series, seed_days)
    acute = ewma(series, acute_n, seed)[-1]
    chronic = ewma(series[:-acute_n], chronic_n, seed)[-1]
    if chronic == 0.0:
        return None
    return acute / chronic


def acwr_seed(series: Sequence[float], seed_days: int = 7) -> float:
    """The starting value of both ACWR averages: the mean of the first ``seed_days`` days."""
    if seed_days < 1:
        raise ValueError(f"seed_days must be >= 1, got {seed_days}")
    first = series[:seed_days]
    return math.fsum(first) / len(first) if first else 0.0


def longest_run_between(
    runs: Iterable[tuple[datetime, float]], start: datetime, at: datetime
) -> float | None:
    """Longest single-run distance among runs starting in ``[start, at)``, or ``None``.

    ``load.single_run_spike`` passes ``start`` = the same wall-clock time 30 local calendar
    days before the judged run, so a DST change does not move the window by an hour.
    """
    in_window = [distance for started, distance in runs if start <= started < at]
    return max(in_window) if in_window else None


def daily_pain(scores: Iterable[tuple[date, int]]) -> dict[date, int]:
    """One score per day: the highest reported that day (RULES.md v2, pain trends).

    A check-in sent twice, or twice in a day, counts once.
    """
    worst: dict[date, int] = {}
    for day, score in scores:
        worst[day] = max(score, worst.get(day, score))
    return dict(sorted(worst.items()))


def longest_run_before(
    runs: Iterable[tuple[datetime, float]], at: datetime, days: int = 30
) -> float | None:
    """Longest single-run distance among runs starting in ``[at − days, at)``.

    The reference distance for ``load.single_run_spike`` (Frandsen et al., BJSM 2025:
    a run > 10 % longer than the longest run of the previous 30 days raised injury
    hazard). The window is half-open so the run being judged, which starts at ``at``,
    never counts as its own reference. Returns ``None`` if no run falls in the window.

    ``runs`` and ``at`` must be all timezone-aware or all naive.
    """
    if days < 1:
        raise ValueError(f"days must be >= 1, got {days}")
    window_start = at - timedelta(days=days)
    in_window = [distance for started, distance in runs if window_start <= started < at]
    return max(in_window) if in_window else None


def spike_ratio(distance: float, longest_before: float | None) -> float | None:
    """Ratio of a run's distance to the longest run before it (``load.single_run_spike``).

    Returns ``None`` when there is no prior run or the prior longest is not positive, as a
    ratio against nothing would make every first run a "spike". Frandsen et al., BJSM 2025.
    """
    if longest_before is None or longest_before <= 0.0:
        return None
    return distance / longest_before


def weekly_ramp(series: Sequence[float]) -> tuple[float, float]:
    """Week-on-week load: (sum of the last 7 days, sum of the 7 days before).

    Used by ``load.weekly_ramp`` (Nielsen et al., JOSPT 2014: > 30 % increase over two
    weeks, weak evidence). ``series`` is a daily series ending on the evaluation day.

    Raises ``ValueError`` if the series has fewer than 14 days, because a short earlier
    week would look like a ramp.
    """
    if len(series) < 14:
        raise ValueError(f"weekly_ramp needs >= 14 days, got {len(series)}")
    return math.fsum(series[-7:]), math.fsum(series[-14:-7])


def session_load(duration_s: float, rpe: float | None) -> float:
    """Session load for ``load.monotony``: session RPE × minutes, or minutes without RPE.

    Session-RPE method of Foster (1998; Foster et al., 2001), with RPE on the CR-10 scale.
    Falling back to plain minutes keeps runs without an RPE in the daily load instead of
    treating them as rest days.

    Raises ``ValueError`` for a negative (or NaN) duration or an RPE outside 0–10.
    """
    if not duration_s >= 0.0:
        raise ValueError(f"duration must be >= 0 seconds, got {duration_s}")
    minutes = duration_s / 60.0
    if rpe is None:
        return minutes
    if not 0.0 <= rpe <= 10.0:
        raise ValueError(f"RPE must be within 0-10, got {rpe}")
    return rpe * minutes


def monotony(daily_loads: Sequence[float]) -> float | None:
    """Training monotony: mean ÷ population standard deviation of the daily loads.

    Used by ``load.monotony`` over 7 daily loads with rest days as 0 (Foster 1998/2001).
    The population SD is used because the 7 days are the whole week being described, not
    a sample of some larger set.

    Returns ``None`` if there are no loads or all are zero (no training: monotony is
    meaningless). Returns ``math.inf`` if the SD is 0 and the mean is positive, i.e. the
    same non-zero load every day, which is the most monotonous week possible and so must
    compare above any finite threshold.

    Raises ``ValueError`` on a negative load.
    """
    if any(load < 0.0 for load in daily_loads):
        raise ValueError("daily loads must be >= 0")
    if not daily_loads or all(load == 0.0 for load in daily_loads):
        return None
    sd = statistics.pstdev(daily_loads)
    mean = statistics.fmean(daily_loads)
    if sd == 0.0:
        return math.inf
    return mean / sd


@dataclass(frozen=True, slots=True)
class PainStats:
    """Summary of the pain scores in one window of check-ins.

    ``count`` is the number of check-ins, ``mean`` their mean score (``None`` if there are
    none), ``days_at_or_above`` the number of distinct calendar days whose highest score
    reached the threshold, ``days_with_checkin`` the number of distinct days with at least
    one check-in and ``max_score`` the highest score (``None`` if there are none).
    """

    count: int
    mean: float | None
    days_at_or_above: int
    days_with_checkin: int
    max_score: int | None


def pain_stats(scores: Sequence[tuple[date, int]], threshold: int = 3) -> PainStats:
    """Summarise dated 0–10 pain scores for ``pain.persistent`` and ``pain.rising``.

    Days are counted once however many check-ins they have, and a day counts as painful
    when its worst score is ≥ ``threshold``: ``pain.persistent`` asks about days, not
    check-ins, so an athlete who checks in three times on one bad day does not count as
    three bad days. Scores are taken as given; range checks belong to ingest.
    """
    if not scores:
        return PainStats(
            count=0, mean=None, days_at_or_above=0, days_with_checkin=0, max_score=None
        )
    worst_per_day: dict[date, int] = {}
    for day, score in scores:
        worst_per_day[day] = max(score, worst_per_day.get(day, score))
    values = [score for _, score in scores]
    return PainStats(
        count=len(values),
        mean=statistics.fmean(values),
        days_at_or_above=sum(1 for worst in worst_per_day.values() if worst >= threshold),
        days_with_checkin=len(worst_per_day),
        max_score=max(values),
    )


def pain_rising(
    last7: Sequence[int],
    prev7: Sequence[int],
    min_points: float = 1.0,
    min_checkins: int = 3,
) -> bool:
    """Whether pain rose week on week, per ``pain.rising``.

    True when the mean of ``last7`` exceeds the mean of ``prev7`` by at least
    ``min_points`` and each week has at least ``min_checkins`` scores (never fewer than
    one, so an empty week is never compared). Pain-monitoring model, Silbernagel et al.
    2007: pain must not increase from week to week.
    """
    needed = max(min_checkins, 1)
    if len(last7) < needed or len(prev7) < needed:
        return False
    rise = statistics.fmean(last7) - statistics.fmean(prev7)
    return _at_least(rise, min_points)


OSTRC_OPTION_SCORES: tuple[int, int, int, int] = (0, 8, 17, 25)
"""Score of answer options 0–3 of each OSTRC-O2 question (Clarsen et al., BJSM 2020)."""

_OSTRC_SUBSTANTIAL_SCORE = 17
_OSTRC_CANNOT_PARTICIPATE = 3


def _ostrc_option(question: str, option: int) -> int:
    if isinstance(option, bool) or not isinstance(option, int):
        raise TypeError(f"OSTRC {question} option must be an int, got {option!r}")
    if not 0 <= option < len(OSTRC_OPTION_SCORES):
        raise ValueError(f"OSTRC {question} option must be 0-3, got {option}")
    return OSTRC_OPTION_SCORES[option]


def ostrc_score(q1: int, q2: int, q3: int, q4: int) -> int:
    """OSTRC-O2 severity score, 0–100: the sum of the four questions' option scores.

    Arguments are option indices 0–3 (0 = no problem, 3 = worst), each scored per
    :data:`OSTRC_OPTION_SCORES`. Clarsen et al., BJSM 2013 and 2020 (OSTRC-O2).

    Raises ``ValueError`` for an index outside 0–3.
    """
    return sum(
        _ostrc_option(name, option)
        for name, option in (("Q1", q1), ("Q2", q2), ("Q3", q3), ("Q4", q4))
    )


def ostrc_substantial(q1: int, q2: int, q3: int, q4: int) -> bool:
    """Whether an OSTRC-O2 answer set is a substantial problem (``ostrc.substantial``).

    Substantial means Q1 = cannot participate (option 3), or a moderate or greater
    reduction in training volume (Q2) or performance (Q3), i.e. a score ≥ 17. Q4 (pain)
    does not decide it but is still validated. Clarsen et al., BJSM 2013/2020.

    Raises ``ValueError`` for an index outside 0–3.
    """
    ostrc_score(q1, q2, q3, q4)
    return (
        q1 == _OSTRC_CANNOT_PARTICIPATE
        or OSTRC_OPTION_SCORES[q2] >= _OSTRC_SUBSTANTIAL_SCORE
        or OSTRC_OPTION_SCORES[q3] >= _OSTRC_SUBSTANTIAL_SCORE
    )


def median(values: Iterable[float]) -> float | None:
    """Median of ``values``, or ``None`` if there are none (reference for cadence)."""
    data = list(values)
    if not data:
        return None
    return float(statistics.median(data))


def cadence_drop(
    recent: Sequence[float],
    median_28d: float,
    fraction: float = 0.05,
    needed: int = 2,
) -> bool:
    """Whether at least ``needed`` recent cadences are ≥ ``fraction`` below the median.

    Used by ``form.cadence_drop`` (recent = the last 3 runs, reference = the 28-day
    median). A lower step rate raises knee load per step (Heiderscheit et al., MSSE 2011);
    the link to injury is mechanistic only. A cadence exactly ``fraction`` below counts.
    Returns ``False`` if the median is not positive (no usable reference).
    """
    if median_28d <= 0.0:
        return False
    limit = median_28d * (1.0 - fraction)
    dropped = sum(1 for cadence in recent if _at_least(limit, cadence))
    return dropped >= needed
