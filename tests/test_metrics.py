"""Tests for rules.metrics: hand-computed examples and property tests of the invariants."""

from __future__ import annotations

import dataclasses
import itertools
import math
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rules.metrics import (
    OSTRC_OPTION_SCORES,
    PainStats,
    acwr,
    cadence_drop,
    daily_series,
    ewma,
    longest_run_before,
    median,
    monotony,
    ostrc_score,
    ostrc_substantial,
    pain_rising,
    pain_stats,
    session_load,
    spike_ratio,
    weekly_ramp,
)

D0 = date(2025, 3, 1)
T0 = datetime(2025, 3, 31, 7, 0, tzinfo=UTC)

# Tenths of a km: integer-valued tenths keep sums exact enough to compare and keep
# scaled values away from underflow, so the properties test the maths, not float noise.
loads = st.integers(min_value=0, max_value=400).map(lambda x: x / 10)
positive_loads = st.integers(min_value=1, max_value=400).map(lambda x: x / 10)
scales = st.floats(min_value=0.01, max_value=100.0, allow_nan=False, allow_infinity=False)
options = st.integers(min_value=0, max_value=3)
pain_scores = st.integers(min_value=0, max_value=10)


# --- daily_series ----------------------------------------------------------------------


def test_daily_series_sums_same_day_points_and_fills_rest_days_with_zero() -> None:
    points = [
        (D0, 5.0),
        (D0, 3.0),  # day 0: 5 + 3 = 8
        (D0 + timedelta(days=2), 10.0),  # day 2: 10, day 1 is a rest day
        (D0 - timedelta(days=1), 99.0),  # before start: ignored
        (D0 + timedelta(days=4), 99.0),  # after end: ignored
    ]
    assert daily_series(points, D0, D0 + timedelta(days=3)) == [8.0, 0.0, 10.0, 0.0]


def test_daily_series_includes_both_end_days() -> None:
    end = D0 + timedelta(days=1)
    assert daily_series([(D0, 1.0), (end, 2.0)], D0, end) == [1.0, 2.0]


def test_daily_series_single_day_range_has_one_value() -> None:
    assert daily_series([], D0, D0) == [0.0]


def test_daily_series_rejects_end_before_start() -> None:
    with pytest.raises(ValueError):
        daily_series([], D0, D0 - timedelta(days=1))


@given(
    st.lists(st.tuples(st.integers(-10, 40), loads), max_size=40),
    st.integers(min_value=0, max_value=30),
)
def test_daily_series_length_is_day_count_and_sum_is_sum_of_in_range_points(
    offsets: list[tuple[int, float]], span: int
) -> None:
    end = D0 + timedelta(days=span)
    points = [(D0 + timedelta(days=off), value) for off, value in offsets]
    series = daily_series(points, D0, end)
    assert len(series) == span + 1
    expected = math.fsum(value for day, value in points if D0 <= day <= end)
    assert math.fsum(series) == pytest.approx(expected, abs=1e-9)
    assert all(value >= 0.0 for value in series)


# --- ewma -------------------------------------------------------------------------------


def test_ewma_hand_computed_span_three() -> None:
    # N = 3 -> λ = 2/4 = 0.5; seed 0.
    # day0: 0.5*4 + 0.5*0 = 2; day1: 0.5*8 + 0.5*2 = 5; day2: 0.5*0 + 0.5*5 = 2.5
    assert ewma([4.0, 8.0, 0.0], 3) == pytest.approx([2.0, 5.0, 2.5])


def test_ewma_span_seven_first_day_is_quarter_of_load_because_seed_is_zero() -> None:
    # N = 7 -> λ = 2/8 = 0.25; day0 = 0.25*10 = 2.5; day1 = 0.25*10 + 0.75*2.5 = 4.375
    assert ewma([10.0, 10.0], 7) == pytest.approx([2.5, 4.375])


def test_ewma_span_one_is_the_series_itself() -> None:
    # N = 1 -> λ = 1: no memory.
    assert ewma([3.0, 0.0, 7.0], 1) == [3.0, 0.0, 7.0]


def test_ewma_of_empty_series_is_empty() -> None:
    assert ewma([], 7) == []


def test_ewma_rejects_span_below_one() -> None:
    with pytest.raises(ValueError):
        ewma([1.0], 0)


@given(positive_loads, st.integers(1, 40), st.integers(1, 200))
def test_ewma_of_constant_series_rises_toward_the_constant(c: float, n: int, days: int) -> None:
    out = ewma([c] * days, n)
    lam = 2 / (n + 1)
    assert all(a <= b + 1e-12 * c for a, b in itertools.pairwise(out))
    # closed form with seed 0: EWMA_t = c * (1 - (1 - λ)^(t+1))
    assert out[-1] == pytest.approx(c * (1 - (1 - lam) ** days), rel=1e-9)
    assert abs(out[-1] - c) <= c * (1 - lam) ** days + 1e-9 * c


@given(st.lists(loads, max_size=60), st.integers(1, 40))
def test_ewma_stays_within_min_and_max_of_zero_and_the_series(series: list[float], n: int) -> None:
    out = ewma(series, n)
    assert len(out) == len(series)
    lo, hi = min([0.0, *series]), max([0.0, *series])
    tol = 1e-9 * max(1.0, hi)
    assert all(lo - tol <= value <= hi + tol for value in out)


@given(st.lists(loads, min_size=1, max_size=60), st.integers(1, 40), scales)
def test_ewma_is_linear_in_the_loads(series: list[float], n: int, k: float) -> None:
    scaled = ewma([k * x for x in series], n)
    assert scaled == pytest.approx([k * v for v in ewma(series, n)], rel=1e-9, abs=1e-12)


# --- acwr -------------------------------------------------------------------------------


def test_acwr_hand_computed_small_windows() -> None:
    # acute_n = chronic_n = 3 -> λ = 0.5; both start from the mean of the first 7 days, 3.5.
    # chronic over [4] (acute window = last 3 days excluded): 0.5*4 + 0.5*3.5 = 3.75
    # acute over [4, 8, 0, 2]: 3.75 -> 5.875 -> 2.9375 -> 0.5*2 + 0.5*2.9375 = 2.46875
    # ratio = 2.46875 / 3.75
    assert acwr([4.0, 8.0, 0.0, 2.0], acute_n=3, chronic_n=3) == pytest.approx(2.46875 / 3.75)


def test_acwr_hand_computed_default_windows() -> None:
    # 8 days: [29, 0 x 6, 8]; seed s = mean of the first 7 days = 29/7.
    # chronic = EWMA28 over [29] = (2/29)*29 + (27/29)*s = 2 + 27/7.
    # acute (λ = 0.25): day0 7.25 + 0.75*s, then x0.75 six times,
    # day7 = 0.25*8 + 0.75^7*(7.25 + 0.75*s).
    series = [29.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 8.0]
    seed = 29 / 7
    expected = (2 + 0.75**7 * (7.25 + 0.75 * seed)) / (2 + 27 / 7)
    assert acwr(series) == pytest.approx(expected)
    assert acwr(series) == pytest.approx(0.57750, abs=1e-5)


def test_acwr_is_uncoupled_so_an_acute_spike_does_not_raise_the_chronic_load() -> None:
    # λ = 1 for both (N = 1): acute = last day, chronic = the day before the acute window.
    # [2, 4] -> 4 / 2 = 2; a coupled chronic would include the 4 itself.
    assert acwr([2.0, 4.0], acute_n=1, chronic_n=1) == pytest.approx(2.0)


def test_acwr_is_none_when_series_is_shorter_than_acute_window_plus_one() -> None:
    assert acwr([5.0] * 7) is None
    assert acwr([5.0] * 8) is not None


def test_acwr_is_none_when_chronic_load_is_zero() -> None:
    # all load in the acute window, nothing before it
    assert acwr([0.0] * 28 + [5.0] * 7) is None


def test_acwr_rejects_non_positive_windows() -> None:
    with pytest.raises(ValueError):
        acwr([1.0] * 10, acute_n=0)


@given(positive_loads, st.integers(300, 400))
def test_acwr_of_long_constant_series_is_one(c: float, days: int) -> None:
    # seed effect on the chronic EWMA: (27/29)^293 ≈ 8e-10
    ratio = acwr([c] * days)
    assert ratio is not None
    assert ratio == pytest.approx(1.0, abs=1e-8)


@given(st.lists(loads, min_size=8, max_size=60), scales)
def test_acwr_is_unchanged_when_all_loads_are_scaled(series: list[float], k: float) -> None:
    base = acwr(series)
    scaled = acwr([k * x for x in series])
    if base is None:
        assert scaled is None
    else:
        assert scaled == pytest.approx(base, rel=1e-9)


@given(
    # At least the 7 seed days, so the seed comes from the history alone.
    st.lists(loads, min_size=7, max_size=40).filter(lambda xs: any(x > 0 for x in xs[:7])),
    st.lists(loads, min_size=7, max_size=7),
    st.lists(loads, min_size=7, max_size=7).filter(lambda xs: any(x > 0 for x in xs)),
)
def test_acwr_chronic_part_ignores_the_last_seven_days(
    history: list[float], week_a: list[float], week_b: list[float]
) -> None:
    # Same history, different acute weeks: acute / ratio (the chronic load) must agree.
    ratio_a = acwr(history + week_a)
    ratio_b = acwr(history + week_b)
    assert ratio_a is not None
    assert ratio_b is not None
    seed = sum(history[:7]) / 7
    acute_b = ewma(history + week_b, 7, seed)[-1]
    if ratio_a > 0:
        acute_a = ewma(history + week_a, 7, seed)[-1]
        assert acute_a / ratio_a == pytest.approx(acute_b / ratio_b, rel=1e-9)
    else:
        assert acute_b > 0


@given(st.lists(loads, min_size=8, max_size=60))
def test_acwr_is_none_or_non_negative(series: list[float]) -> None:
    ratio = acwr(series)
    assert ratio is None or ratio >= 0.0


# --- longest_run_before / spike_ratio ---------------------------------------------------


def test_longest_run_before_uses_half_open_thirty_day_window() -> None:
    runs = [
        (T0 - timedelta(days=30), 12.0),  # exactly at the window start: included
        (T0 - timedelta(days=30, seconds=1), 50.0),  # just before the window: excluded
        (T0 - timedelta(days=3), 8.0),
        (T0, 40.0),  # the run being judged: excluded
        (T0 + timedelta(hours=1), 60.0),  # later: excluded
    ]
    assert longest_run_before(runs, T0) == 12.0


def test_longest_run_before_is_none_without_runs_in_window() -> None:
    assert longest_run_before([(T0 - timedelta(days=31), 10.0)], T0) is None
    assert longest_run_before([], T0) is None


def test_longest_run_before_honours_custom_window() -> None:
    runs = [(T0 - timedelta(days=10), 20.0), (T0 - timedelta(days=5), 9.0)]
    assert longest_run_before(runs, T0, days=7) == 9.0


def test_longest_run_before_rejects_non_positive_window() -> None:
    with pytest.raises(ValueError):
        longest_run_before([], T0, days=0)


@given(
    st.lists(st.tuples(st.integers(-60 * 24, 10 * 24), positive_loads), max_size=30),
    positive_loads,
)
def test_longest_run_before_is_max_in_window_and_ignores_runs_at_or_after_at(
    offsets_h: list[tuple[int, float]], late_distance: float
) -> None:
    runs = [(T0 + timedelta(hours=h), d) for h, d in offsets_h]
    in_window = [d for h, d in offsets_h if -30 * 24 <= h < 0]
    result = longest_run_before(runs, T0)
    assert result == (max(in_window) if in_window else None)
    assert longest_run_before([*runs, (T0, late_distance * 100)], T0) == result


def test_spike_ratio_hand_computed() -> None:
    # 22 km after a 20 km longest: 22 / 20 = 1.10
    assert spike_ratio(22.0, 20.0) == pytest.approx(1.1)


def test_spike_ratio_is_none_without_a_positive_reference() -> None:
    assert spike_ratio(10.0, None) is None
    assert spike_ratio(10.0, 0.0) is None


@given(loads, positive_loads)
def test_spike_ratio_times_reference_gives_back_the_distance(
    distance: float, longest: float
) -> None:
    ratio = spike_ratio(distance, longest)
    assert ratio is not None
    assert ratio * longest == pytest.approx(distance, rel=1e-12, abs=1e-12)
    assert (ratio > 1.0) == (distance > longest)


# --- weekly_ramp ------------------------------------------------------------------------


def test_weekly_ramp_hand_computed() -> None:
    # days 0-6: 1 each -> 7 (ignored: older than 14 days)
    # days 7-13: 2 each -> 14 (earlier week); days 14-20: 3 each -> 21 (last week)
    series = [1.0] * 7 + [2.0] * 7 + [3.0] * 7
    assert weekly_ramp(series) == (21.0, 14.0)


def test_weekly_ramp_rejects_fewer_than_fourteen_days() -> None:
    with pytest.raises(ValueError):
        weekly_ramp([1.0] * 13)
    assert weekly_ramp([1.0] * 14) == (7.0, 7.0)


@given(st.lists(loads, max_size=20), st.lists(loads, min_size=14, max_size=14))
def test_weekly_ramp_reads_only_the_last_fourteen_days(
    older: list[float], last14: list[float]
) -> None:
    last, earlier = weekly_ramp(older + last14)
    assert last == pytest.approx(math.fsum(last14[7:]))
    assert earlier == pytest.approx(math.fsum(last14[:7]))
    assert last + earlier == pytest.approx(math.fsum(last14))


# --- session_load -----------------------------------------------------------------------


def test_session_load_is_rpe_times_minutes() -> None:
    # 45 min (2700 s) at RPE 6 -> 6 * 45 = 270 AU
    assert session_load(2700.0, 6.0) == pytest.approx(270.0)


def test_session_load_without_rpe_is_minutes() -> None:
    # 5400 s / 60 = 90 min
    assert session_load(5400.0, None) == pytest.approx(90.0)


@pytest.mark.parametrize(("duration", "rpe"), [(-1.0, None), (60.0, -0.5), (60.0, 10.5)])
def test_session_load_rejects_negative_duration_and_rpe_outside_cr10(
    duration: float, rpe: float | None
) -> None:
    with pytest.raises(ValueError):
        session_load(duration, rpe)


@given(
    st.floats(min_value=0, max_value=36_000, allow_nan=False),
    st.floats(min_value=0, max_value=10, allow_nan=False),
)
def test_session_load_scales_minutes_by_rpe(duration: float, rpe: float) -> None:
    minutes = session_load(duration, None)
    assert minutes == pytest.approx(duration / 60)
    assert session_load(duration, rpe) == pytest.approx(rpe * minutes)
    assert 0.0 <= session_load(duration, rpe) <= 10 * minutes + 1e-9


# --- monotony ---------------------------------------------------------------------------


def test_monotony_hand_computed() -> None:
    # [1, 3, 1, 3, 1, 3, 2]: mean = 14/7 = 2; deviations ±1 six times and 0 once,
    # population variance = 6/7, SD = sqrt(6/7) ≈ 0.9258; monotony = 2 / 0.9258 ≈ 2.160
    assert monotony([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 2.0]) == pytest.approx(2 / math.sqrt(6 / 7))
    assert monotony([1.0, 3.0, 1.0, 3.0, 1.0, 3.0, 2.0]) == pytest.approx(2.1602, abs=1e-4)


def test_monotony_counts_rest_days_as_zero_load() -> None:
    # one 70 AU day: mean 10, variance (6*10^2 + 60^2)/7 = 4200/7 = 600, SD ≈ 24.495
    # monotony = 10 / sqrt(600) ≈ 0.408
    assert monotony([0.0] * 6 + [70.0]) == pytest.approx(10 / math.sqrt(600))


def test_monotony_is_none_when_all_loads_are_zero_or_absent() -> None:
    assert monotony([0.0] * 7) is None
    assert monotony([]) is None


def test_monotony_is_infinite_for_identical_positive_loads() -> None:
    assert monotony([50.0] * 7) == math.inf


def test_monotony_rejects_negative_loads() -> None:
    with pytest.raises(ValueError):
        monotony([1.0, -1.0])


@given(st.lists(st.integers(0, 600).map(float), min_size=7, max_size=7), scales)
def test_monotony_is_non_negative_and_scale_invariant(week: list[float], k: float) -> None:
    base = monotony(week)
    scaled = monotony([k * x for x in week])
    if base is None:
        assert scaled is None
        return
    assert base > 0.0
    assert scaled is not None
    if math.isinf(base):
        assert math.isinf(scaled)
    else:
        assert scaled == pytest.approx(base, rel=1e-9)


# --- pain_stats / pain_rising -----------------------------------------------------------


def test_pain_stats_counts_days_by_their_worst_score() -> None:
    scores = [
        (D0, 4),  # day 0: worst 4 >= 3, even though a later check-in says 1
        (D0, 1),
        (D0 + timedelta(days=1), 2),  # day 1: worst 2
        (D0 + timedelta(days=2), 3),  # day 2: worst 3 >= 3 (inclusive)
    ]
    # count 4, mean (4+1+2+3)/4 = 2.5, days >= 3: {day0, day2} = 2, days: 3, max 4
    assert pain_stats(scores) == PainStats(
        count=4, mean=2.5, days_at_or_above=2, days_with_checkin=3, max_score=4
    )


def test_pain_stats_threshold_is_configurable() -> None:
    scores = [(D0, 4), (D0 + timedelta(days=1), 5)]
    assert pain_stats(scores, threshold=5).days_at_or_above == 1


def test_pain_stats_of_no_checkins_has_no_mean() -> None:
    assert pain_stats([]) == PainStats(
        count=0, mean=None, days_at_or_above=0, days_with_checkin=0, max_score=None
    )


def test_pain_stats_is_frozen() -> None:
    stats = pain_stats([(D0, 3)])
    with pytest.raises(dataclasses.FrozenInstanceError):
        stats.count = 5  # type: ignore[misc]


@given(st.lists(st.tuples(st.integers(0, 13), pain_scores), max_size=40), pain_scores)
def test_pain_stats_counts_are_ordered_and_mean_within_range(
    raw: list[tuple[int, int]], threshold: int
) -> None:
    scores = [(D0 + timedelta(days=off), s) for off, s in raw]
    stats = pain_stats(scores, threshold)
    assert stats.count == len(scores)
    assert stats.days_with_checkin == len({day for day, _ in scores})
    assert 0 <= stats.days_at_or_above <= stats.days_with_checkin <= stats.count
    if scores:
        values = [s for _, s in scores]
        assert stats.mean is not None
        assert min(values) - 1e-9 <= stats.mean <= max(values) + 1e-9
        assert stats.max_score == max(values)
        assert (stats.days_at_or_above > 0) == (max(values) >= threshold)
    else:
        assert stats.mean is None


def test_pain_rising_when_mean_rises_by_exactly_one_point() -> None:
    # last: (3+4+4)/3 = 11/3 ≈ 3.667; prev: (2+3+3)/3 = 8/3 ≈ 2.667; rise = 1.0
    assert pain_rising([3, 4, 4], [2, 3, 3])


def test_pain_rising_false_when_rise_is_below_one_point() -> None:
    # last: 11/3 ≈ 3.667; prev: (3+3+3)/3 = 3; rise ≈ 0.667 < 1
    assert not pain_rising([3, 4, 4], [3, 3, 3])


def test_pain_rising_needs_three_checkins_in_each_week() -> None:
    # rise would be 8 - 1 = 7, but each week needs >= 3 check-ins
    assert not pain_rising([8, 8], [1, 1, 1])
    assert not pain_rising([8, 8, 8], [1, 1])
    assert pain_rising([8, 8, 8], [1, 1, 1])


def test_pain_rising_never_compares_empty_weeks() -> None:
    assert not pain_rising([], [], min_checkins=0)


@given(
    st.lists(pain_scores, max_size=10),
    st.lists(pain_scores, max_size=10),
    st.floats(min_value=0.1, max_value=5.0, allow_nan=False),
)
def test_pain_rising_cannot_hold_in_both_directions(
    last7: list[int], prev7: list[int], min_points: float
) -> None:
    assert not (pain_rising(last7, prev7, min_points) and pain_rising(prev7, last7, min_points))


@given(
    st.lists(pain_scores, min_size=3, max_size=10),
    st.lists(pain_scores, min_size=3, max_size=10),
)
def test_pain_rising_matches_mean_difference_of_at_least_one(
    last7: list[int], prev7: list[int]
) -> None:
    # exact rational comparison: mean_last - mean_prev >= 1
    expected = sum(last7) * len(prev7) - sum(prev7) * len(last7) >= len(last7) * len(prev7)
    assert pain_rising(last7, prev7) == expected


# --- OSTRC-O2 ---------------------------------------------------------------------------


def test_ostrc_option_scores_are_the_published_values() -> None:
    assert OSTRC_OPTION_SCORES == (0, 8, 17, 25)


def test_ostrc_score_sums_option_scores() -> None:
    # Q1 opt1 = 8, Q2 opt2 = 17, Q3 opt0 = 0, Q4 opt3 = 25 -> 50
    assert ostrc_score(1, 2, 0, 3) == 50
    assert ostrc_score(0, 0, 0, 0) == 0
    assert ostrc_score(3, 3, 3, 3) == 100


@pytest.mark.parametrize("bad", [-1, 4])
def test_ostrc_score_rejects_option_outside_zero_to_three(bad: int) -> None:
    with pytest.raises(ValueError):
        ostrc_score(bad, 0, 0, 0)
    with pytest.raises(ValueError):
        ostrc_score(0, 0, 0, bad)
    with pytest.raises(ValueError):
        ostrc_substantial(0, 0, 0, bad)


def test_ostrc_score_rejects_non_integer_options() -> None:
    with pytest.raises(TypeError):
        ostrc_score(True, 0, 0, 0)


@pytest.mark.parametrize(
    ("answers", "expected"),
    [
        ((3, 0, 0, 0), True),  # Q1 = cannot participate
        ((2, 0, 0, 3), False),  # reduced participation and severe pain alone: not substantial
        ((1, 2, 0, 0), True),  # Q2 = 17 (moderate reduction in volume)
        ((1, 0, 2, 0), True),  # Q3 = 17 (moderate reduction in performance)
        ((1, 1, 1, 3), False),  # Q2 = Q3 = 8 (minor): below 17
        ((0, 0, 0, 0), False),
    ],
)
def test_ostrc_substantial_per_clarsen_definition(
    answers: tuple[int, int, int, int], expected: bool
) -> None:
    assert ostrc_substantial(*answers) is expected


@given(options, options, options, options, st.integers(0, 3))
def test_ostrc_score_is_monotone_and_bounded(
    q1: int, q2: int, q3: int, q4: int, which: int
) -> None:
    answers = [q1, q2, q3, q4]
    score = ostrc_score(q1, q2, q3, q4)
    assert 0 <= score <= 100
    if answers[which] < 3:
        worse = list(answers)
        worse[which] += 1
        assert ostrc_score(worse[0], worse[1], worse[2], worse[3]) > score


@given(options, options, options, options)
def test_ostrc_substantial_ignores_q4_and_is_monotone(q1: int, q2: int, q3: int, q4: int) -> None:
    result = ostrc_substantial(q1, q2, q3, q4)
    assert result == ostrc_substantial(q1, q2, q3, 0)
    if result:
        assert ostrc_substantial(min(q1 + 1, 3), q2, q3, q4)
        assert ostrc_substantial(q1, min(q2 + 1, 3), q3, q4)


# --- median / cadence_drop --------------------------------------------------------------


def test_median_of_odd_and_even_counts_and_empty() -> None:
    assert median([170.0, 180.0, 175.0]) == 175.0
    assert median([170.0, 180.0]) == 175.0  # (170 + 180) / 2
    assert median([]) is None


def test_cadence_drop_counts_cadences_exactly_five_percent_below() -> None:
    # median 180 -> limit 180 * 0.95 = 171; 171 counts (inclusive), 172 does not
    assert cadence_drop([171.0, 171.0, 180.0], 180.0)
    assert not cadence_drop([171.0, 172.0, 180.0], 180.0)


def test_cadence_drop_needs_two_of_the_recent_runs() -> None:
    # only 160 is <= 171
    assert not cadence_drop([160.0, 178.0, 181.0], 180.0)
    assert cadence_drop([160.0, 178.0, 181.0], 180.0, needed=1)


def test_cadence_drop_false_without_a_positive_reference() -> None:
    assert not cadence_drop([100.0, 100.0], 0.0)


@given(
    st.lists(st.integers(120, 220).map(float), max_size=5),
    st.integers(150, 200).map(float),
    st.integers(1, 4),
    st.integers(2, 50).map(float),
)
def test_cadence_drop_is_monotone_in_needed_and_scale_invariant(
    recent: list[float], reference: float, needed: int, k: float
) -> None:
    result = cadence_drop(recent, reference, needed=needed)
    if result:
        assert cadence_drop(recent, reference, needed=needed - 1)
    assert cadence_drop([k * c for c in recent], k * reference, needed=needed) == result
    if all(c >= reference for c in recent):
        assert not result
