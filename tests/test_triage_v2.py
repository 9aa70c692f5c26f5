"""RULES.md version 2, rule by rule: every defect of issue 13 reproduced, and each new threshold
just under, at and over its boundary. Pure evaluation: no database, no clock."""

from __future__ import annotations

import re
import tomllib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ingest.schemas import CheckinMessage
from rules import metrics
from rules.catalog import CATALOG
from rules.config import RulesConfig, RulesConfigError, load_rules_config
from rules.evaluate import evaluate_checkin, evaluate_history, history_days_needed
from rules.model import (
    AthleteHistory,
    CheckinFact,
    Finding,
    PainSite,
    Recommendation,
    RunFact,
    Severity,
)
from rules.text import NOT_A_DIAGNOSIS
from testsupport.facts import (
    DEFAULTS,
    NOW,
    by_rule,
    checkin,
    config,
    day,
    fires,
    history,
    run,
    silent,
)

CONDITIONS = re.compile(
    r"patellofemoral|iliotibial|\bIT band|menisc|infection|runner's knee|tear|fracture",
    re.IGNORECASE,
)


def only(c: CheckinFact, cfg: RulesConfig = DEFAULTS) -> Finding:
    findings = evaluate_checkin(c, cfg)
    assert len(findings) == 1, [f.rule_id for f in findings]
    return findings[0]


def assert_texts(finding: Finding) -> None:
    """Every text: the numbers, the action, a one-line source, 'not a diagnosis'; the athlete's
    names no condition; the coach's speaks of the athlete in the third person."""
    for text in (finding.message, finding.coach_message):
        lines = text.split("\n")
        assert lines[0].startswith("Seen: ") and re.search(r"\d", lines[0])
        assert lines[1].startswith("What to do: ")
        assert lines[2].startswith("Why: ") and "Source: " in lines[2]
        assert lines[-1] == NOT_A_DIAGNOSIS
    assert not CONDITIONS.search(finding.message), finding.message
    coach = finding.coach_message
    assert "{athlete}" in coach
    assert not re.search(r"\b(you|your)\b", coach, re.IGNORECASE), coach
    if finding.severity is Severity.URGENT:
        assert "Possibly relevant" not in coach and not CONDITIONS.search(coach)
    if finding.recommendation is Recommendation.URGENT_CARE:
        assert "stop running and get help today" in finding.message.lower()
    if finding.recommendation is Recommendation.EMERGENCY:
        assert "emergency department now" in finding.message.lower()


# --- A. Red flags: the reproductions --------------------------------------------------


def test_a_daily_checkin_that_cannot_bear_weight_with_pain_3_is_urgent() -> None:
    finding = only(checkin(day(0), 3, "daily", cannot_bear_weight=True))
    assert (finding.rule_id, finding.severity, finding.recommendation) == (
        "redflag.cannot_bear_weight",
        Severity.URGENT,
        Recommendation.URGENT_CARE,
    )
    assert finding.evidence["cannot_bear_weight"] is True
    assert_texts(finding)


@pytest.mark.parametrize("context", ["daily", "next_morning", "post_run"])
def test_severe_pain_in_any_context_is_urgent(context: str) -> None:
    finding = only(checkin(day(0), 10, context))
    assert (finding.rule_id, finding.severity) == ("redflag.severe_pain", Severity.URGENT)
    assert "10/10" in finding.message
    assert_texts(finding)


@pytest.mark.parametrize(
    ("pain", "fires_at"), [(7, None), (8, "redflag.severe_pain"), (9, "redflag.severe_pain")]
)
def test_severe_pain_boundary(pain: int, fires_at: str | None) -> None:
    rule_ids = [f.rule_id for f in evaluate_checkin(checkin(day(0), pain, "daily"), DEFAULTS)]
    assert rule_ids == ([] if fires_at is None else ["redflag.severe_pain"])


def test_severe_pain_threshold_is_configurable() -> None:
    cfg = config(**{"redflag.severe_pain": {"min_pain": 9}})
    assert evaluate_checkin(checkin(day(0), 8, "daily"), cfg) == []
    assert only(checkin(day(0), 9, "daily"), cfg).rule_id == "redflag.severe_pain"


def test_trauma_with_pain_8_is_urgent() -> None:
    finding = only(checkin(day(0), 8, "daily", trauma=True))
    assert finding.severity is Severity.URGENT
    assert finding.rule_id == "redflag.severe_pain"
    assert finding.evidence["trauma"] is True


def test_trauma_with_swelling_and_giving_way_is_an_acute_injury_not_a_warning() -> None:
    finding = only(checkin(day(0), 8, "daily", trauma=True, swelling=True, giving_way=True))
    assert (finding.rule_id, finding.severity, finding.recommendation) == (
        "redflag.acute_injury",
        Severity.URGENT,
        Recommendation.URGENT_CARE,
    )
    # Its evidence lists every sign the check-in reported.
    assert {k for k, v in finding.evidence.items() if v is True} == {
        "trauma",
        "swelling",
        "giving_way",
    }
    assert "training" not in finding.message.split("\n")[1].lower()
    assert_texts(finding)


@pytest.mark.parametrize("sign", ["swelling", "giving_way", "numbness", "cannot_bear_weight"])
def test_acute_injury_is_trauma_with_any_one_sign(sign: str) -> None:
    finding = only(checkin(day(0), 2, "daily", trauma=True, **{sign: True}))
    assert finding.rule_id == "redflag.acute_injury"
    assert evaluate_checkin(checkin(day(0), 2, "daily", trauma=True), DEFAULTS) == []


def test_a_hot_swollen_knee_with_fever_is_an_emergency() -> None:
    finding = only(checkin(day(0), 4, "daily", swelling=True, fever=True))
    assert (finding.rule_id, finding.recommendation) == (
        "redflag.infection_signs",
        Recommendation.EMERGENCY,
    )
    assert "urgent care service" not in finding.message
    assert "emergency department now" in finding.message
    assert_texts(finding)
    redness = only(checkin(day(0), 1, "daily", redness_warmth=True, fever=True))
    assert redness.rule_id == "redflag.infection_signs"
    assert only(checkin(day(0), 1, "daily", fever=True, numbness=True)).rule_id == (
        "redflag.professional_signs"
    )


def test_one_checkin_opens_one_red_flag_the_first_that_matches() -> None:
    everything = checkin(
        day(0),
        9,
        "post_run",
        swelling=True,
        locking=True,
        fever=True,
        trauma=True,
        cannot_bear_weight=True,
        night_pain=True,
        numbness=True,
        redness_warmth=True,
        stopped_run=True,
    )
    finding = only(everything)
    assert finding.rule_id == "redflag.infection_signs"
    assert {k for k, v in finding.evidence.items() if v is True} == {
        "swelling",
        "locking",
        "fever",
        "trauma",
        "cannot_bear_weight",
        "night_pain",
        "numbness",
        "redness_warmth",
        "stopped_run",
    }
    # Disabled rules are skipped: the next in the table matches.
    cfg = config(**{"redflag.infection_signs": {"enabled": False}})
    assert only(everything, cfg).rule_id == "redflag.acute_injury"


@pytest.mark.parametrize(
    ("fields", "rule_id"),
    [
        ({"locking": True, "swelling": True}, "redflag.locked_knee"),
        ({"cannot_bear_weight": True, "night_pain": True}, "redflag.cannot_bear_weight"),
        ({"night_pain": True}, "redflag.professional_signs"),
        ({"numbness": True}, "redflag.professional_signs"),
        ({"redness_warmth": True}, "redflag.professional_signs"),
    ],
)
def test_each_red_flag_in_table_order(fields: dict[str, bool], rule_id: str) -> None:
    finding = only(checkin(day(0), 2, "daily", **fields))
    assert finding.rule_id == rule_id
    assert finding.severity is CATALOG[rule_id].severity
    assert_texts(finding)


@pytest.mark.parametrize(
    ("pain", "context", "stopped", "expected"),
    [
        (5, "post_run", False, None),
        (6, "post_run", False, "pain.high"),
        (7, "post_run", False, "pain.high"),
        (8, "post_run", False, "redflag.severe_pain"),
        (7, "daily", False, None),
        (2, "post_run", True, "pain.high"),
        (0, "daily", True, "pain.high"),
    ],
)
def test_pain_high_on_6_or_7_after_a_run_or_a_stopped_run(
    pain: int, context: str, stopped: bool, expected: str | None
) -> None:
    found = evaluate_checkin(checkin(day(0), pain, context, stopped_run=stopped), DEFAULTS)
    assert [f.rule_id for f in found] == ([] if expected is None else [expected])
    if expected == "pain.high":
        assert found[0].recommendation is Recommendation.REST
        assert_texts(found[0])


def test_athlete_texts_name_no_condition_even_with_pain_sites() -> None:
    sites = tuple(PainSite("left", a) for a in ("anterior", "lateral", "medial"))
    for fields in (
        {"locking": True},
        {"swelling": True},
        {"swelling": True, "fever": True},
        {"trauma": True, "cannot_bear_weight": True},
        {},
    ):
        for finding in evaluate_checkin(checkin(day(0), 7, "post_run", pain_sites=sites, **fields),
                                        DEFAULTS):  # fmt: skip
            assert not CONDITIONS.search(finding.message), finding.message
            assert_texts(finding)


def test_a_locked_knee_with_outside_pain_gives_no_reassuring_association() -> None:
    site = PainSite(side="right", aspect="lateral")
    finding = only(checkin(day(0), 5, "daily", locking=True, pain_sites=(site,)))
    assert "iliotibial" not in finding.message and "iliotibial" not in finding.coach_message
    assert "Possibly relevant" not in finding.coach_message


def test_coach_texts_of_warnings_may_list_sites_with_a_hedged_association() -> None:
    site = PainSite(side="left", aspect="lateral")
    finding = only(checkin(day(0), 6, "post_run", pain_sites=(site,)))
    assert "outside of the knee" in finding.coach_message
    assert "often linked with the iliotibial band" in finding.coach_message
    assert "iliotibial" not in finding.message


# --- B. Scheduled rules --------------------------------------------------------------------


def test_pain_not_settled_on_the_next_calendar_morning_25_hours_later() -> None:
    h = history([run(day(1, 6), 10.0)], [checkin(day(0, 7), 5, "next_morning")])
    finding = fires("pain.not_settled", h)
    assert finding.evidence["pain_score"] == 5
    assert_texts(finding)


@pytest.mark.parametrize(("run_days_ago", "fire"), [(0, False), (1, True), (2, False)])
def test_pain_not_settled_only_the_next_calendar_day(run_days_ago: int, fire: bool) -> None:
    h = history([run(day(run_days_ago, 5), 10.0)], [checkin(day(0, 9), 4, "next_morning")])
    (fires if fire else silent)("pain.not_settled", h)


@pytest.mark.parametrize(("baseline_days_before", "fire"), [(6, False), (7, False), (8, True)])
def test_pain_not_settled_baseline_reaches_back_seven_days(
    baseline_days_before: int, fire: bool
) -> None:
    # Baseline 4 within the 7 days before the run: morning 4 is not higher. Older: baseline 0.
    run_at = day(1, 18)
    base = checkin(run_at - timedelta(days=baseline_days_before), 4, "daily")
    h = history([run(run_at, 10.0)], [base, checkin(day(0, 7), 4, "next_morning")])
    (fires if fire else silent)("pain.not_settled", h)


def test_a_repeated_checkin_does_not_make_pain_rise() -> None:
    # Previous week: three days at 3. This week: 3, 3 and one post-run 4 sent three times.
    prev = [checkin(day(d), 3) for d in (12, 10, 8)]
    last = [checkin(day(d), 3) for d in (5, 3)]
    resent = [checkin(day(1, 19, m), 4, "post_run") for m in (0, 1, 2)]
    h = history([], [*prev, *last, *resent])
    silent("pain.rising", h)
    # Three different days at 4 do rise by 1 point.
    rising = history([], [*prev, *(checkin(day(d), 4) for d in (5, 3, 1))])
    assert_texts(fires("pain.rising", rising))


@pytest.mark.parametrize(("scored_days", "fire"), [(2, False), (3, True)])
def test_pain_rising_needs_three_scored_days_each_week(scored_days: int, fire: bool) -> None:
    prev = [checkin(day(d, h), 2) for d in (12, 10, 8) for h in (7, 12, 19)]
    last = [checkin(day(d, h), 3) for d in (5, 3, 1)[:scored_days] for h in (7, 12, 19)]
    (fires if fire else silent)("pain.rising", history([], [*prev, *last]))


def test_pain_rising_takes_the_days_highest_score() -> None:
    prev = [checkin(day(d), 2) for d in (12, 10, 8)]
    # Each day: a 1 in the morning and a 3 after the run: the day scores 3 (mean 3, +1).
    last = [c for d in (5, 3, 1) for c in (checkin(day(d, 7), 1), checkin(day(d, 19), 3))]
    assert fires("pain.rising", history([], [*prev, *last])).evidence["mean_last"] == 3.0


def test_pain_persistent_seven_out_of_ten_on_nine_of_fourteen_days() -> None:
    days = (13, 12, 10, 9, 7, 5, 4, 2, 0)
    finding = fires("pain.persistent", history([], [checkin(day(d), 7) for d in days]))
    assert finding.evidence["scored_days"] == 9
    assert finding.evidence["painful_days"] == 9
    assert_texts(finding)


@pytest.mark.parametrize(
    ("days", "painful", "fire"),
    [
        ((13, 10, 7, 4, 0), 5, True),  # 5 scored days spanning 14
        ((13, 10, 7, 0), 4, False),  # 4 scored days
        ((9, 7, 5, 2, 0), 5, True),  # spanning exactly 10 days
        ((8, 7, 5, 2, 0), 5, False),  # spanning 9 days
        ((13, 10, 7, 4, 0), 4, True),  # 4 of 5 painful: 80 %
        ((13, 10, 7, 4, 0), 3, False),  # 3 of 5: 60 %
        ((13, 12, 11, 10, 8, 6, 4, 2, 0), 7, False),  # 7 of 9: 77.8 %
        ((13, 12, 11, 10, 9, 8, 6, 4, 2, 0), 8, True),  # 8 of 10: 80 %
    ],
)
def test_pain_persistent_boundaries(days: tuple[int, ...], painful: int, fire: bool) -> None:
    scores = [checkin(day(d), 4 if i < painful else 2) for i, d in enumerate(days)]
    (fires if fire else silent)("pain.persistent", history([], scores))


def _base() -> list[RunFact]:
    # 10 km every third day from day 45 to day 6, and one 15 km run on day 12.
    return [run(day(d), 10.0) for d in range(45, 5, -3)] + [run(day(12), 15.0)]


@pytest.mark.parametrize(
    ("km", "band"),
    [
        (16.5, None),  # 1.10 ×: not more than 10 % longer
        (16.6, "small"),  # 1.107 ×
        (19.5, "small"),  # 1.30 ×
        (19.6, "moderate"),  # 1.307 ×
        (30.0, "moderate"),  # 2.00 ×
        (30.1, "large"),
    ],
)
def test_single_run_spikes_over_ten_percent_are_warnings_with_their_band(
    km: float, band: str | None
) -> None:
    h = history([*_base(), run(day(1), km)])
    if band is None:
        silent("load.single_run_spike", h)
        return
    finding = fires("load.single_run_spike", h)
    assert (finding.severity, finding.recommendation) == (
        Severity.WARNING,
        Recommendation.REDUCE_LOAD,
    )
    assert finding.evidence["band"] == band
    assert band in finding.coach_message
    assert_texts(finding)


def test_a_spike_followed_by_pain_recommends_rest() -> None:
    spike = run(day(2, 7), 20.4)  # 1.36 ×
    pain = checkin(day(2, 12), 5, "post_run")
    finding = fires("load.single_run_spike", history([*_base(), spike], [pain]))
    assert (finding.severity, finding.recommendation) == (Severity.WARNING, Recommendation.REST)


@pytest.mark.parametrize(
    ("history_days", "expect"),
    [(13, None), (14, "extrapolated"), (29, "extrapolated"), (30, "window")],
)
def test_single_run_spike_with_two_to_four_weeks_of_history(
    history_days: int, expect: str | None
) -> None:
    first = run(day(1 + history_days), 12.0)
    between = [run(day(d), 8.0) for d in range(history_days - 1, 1, -3)]
    h = history([first, *between, run(day(1), 14.0)])
    if expect is None:
        silent("load.single_run_spike", h)
        return
    finding = fires("load.single_run_spike", h)
    assert finding.evidence["longest_before_km"] == 12.0
    assert finding.evidence["reference"] == expect


def test_single_run_spike_uses_thirty_local_days_across_a_dst_change() -> None:
    # Europe/Berlin leaves summer time on 2025-10-26. A reference run on 2025-10-01 at 07:00
    # local, and the judged run 30 local days later at 07:00: 30 × 24 h would be an hour short.
    tz = ZoneInfo("Europe/Berlin")

    def local(d: date, hour: int) -> datetime:
        return datetime(d.year, d.month, d.day, hour, tzinfo=tz).astimezone(UTC)

    runs = [run(local(date(2025, 8, 20) + timedelta(days=i), 7), 10.0) for i in range(0, 42, 3)]
    runs.append(run(local(date(2025, 10, 1), 7), 20.0))
    runs.append(run(local(date(2025, 10, 15), 7), 10.0))
    runs.append(run(local(date(2025, 10, 31), 7), 21.0))  # 1.05 × 20 km: no spike
    now = local(date(2025, 10, 31), 20)
    silent("load.single_run_spike", history(runs, tz="Europe/Berlin"), now=now)


def test_a_long_first_run_after_a_break_is_shown_to_the_coach_not_judged_as_a_spike() -> None:
    earlier = [run(day(d), 8.0) for d in range(100, 36, -3)]
    back = run(day(1, 9), 30.0)
    h = history([*earlier, back], [checkin(day(1, 12), 5, "post_run")])
    found = by_rule(evaluate_history(h, NOW, DEFAULTS))
    assert "load.single_run_spike" not in found
    finding = found["load.return_after_break"]
    assert (finding.severity, finding.recommendation) == (Severity.INFO, Recommendation.MONITOR)
    assert finding.evidence["distance_km"] == 30.0
    assert finding.evidence["days_without_run"] == 35
    assert_texts(finding)


@pytest.mark.parametrize(("gap_days", "fire"), [(21, False), (22, True)])
def test_return_after_break_boundary(gap_days: int, fire: bool) -> None:
    # gap_days between the two runs' days: gap_days − 1 days without a run between them.
    earlier = [run(day(d), 8.0) for d in range(80, 1 + gap_days, -3)]
    last_before = run(day(1 + gap_days), 8.0)
    h = history([*earlier, last_before, run(day(1), 8.0)])
    (fires if fire else silent)("load.return_after_break", h)


def test_acwr_is_seeded_with_the_first_weeks_mean_not_zero() -> None:
    # 10 km on day 2 and 21 km on day 6 of every week: a steady plan. With a zero seed it
    # read 1.61 at day 34 and 1.40 once settled (the same weekday a year on).
    def plan(days: int) -> list[float]:
        return [10.0 if d % 7 == 2 else 21.0 if d % 7 == 6 else 0.0 for d in range(days)]

    settled = metrics.acwr(plan(35 + 52 * 7), 7, 28, seed_days=7)
    at_34 = metrics.acwr(plan(35), 7, 28, seed_days=7)
    assert settled is not None and at_34 is not None
    assert settled == pytest.approx(1.40, abs=0.01)
    assert at_34 == pytest.approx(settled, abs=0.05)
    assert at_34 < 1.5


def test_acwr_rule_stays_silent_for_a_steady_two_run_week_plan() -> None:
    runs = [run(day(34 - d), 10.0 if d % 7 == 2 else 21.0) for d in range(35) if d % 7 in (2, 6)]
    silent("load.acwr", history(runs))


def test_ostrc_cannot_participate_is_substantial_and_shown() -> None:
    finding = fires("ostrc.substantial", history([], [checkin(day(1), 4, ostrc=(3, 0, 0, 0))]))
    assert "cannot participate" in finding.message
    assert_texts(finding)


def test_engagement_quiet_needs_an_open_warning_and_seven_silent_days() -> None:
    last = checkin(day(7, 9), 3)
    h = AthleteHistory("ann", "UTC", [], [last], attention_since=day(9))
    finding = fires("engagement.quiet", h, now=day(0, 9))
    assert (finding.severity, finding.recommendation) == (Severity.INFO, Recommendation.MONITOR)
    assert finding.evidence["days_quiet"] == 7
    assert_texts(finding)
    silent("engagement.quiet", h, now=day(0, 8))
    silent("engagement.quiet", AthleteHistory("ann", "UTC", [], [last]), now=day(0, 9))


def test_weak_evidence_rules_never_notify_athletes() -> None:
    for rule_id in (
        "load.weekly_ramp",
        "load.acwr",
        "load.monotony",
        "form.cadence_drop",
        "load.return_after_break",
        "engagement.quiet",
    ):
        spec = CATALOG[rule_id]
        assert spec.weak_evidence and spec.severity is Severity.INFO, rule_id


def test_recommendations_are_ordered_weakest_to_strongest() -> None:
    order = [
        Recommendation.MONITOR,
        Recommendation.REDUCE_LOAD,
        Recommendation.REST,
        Recommendation.PROFESSIONAL_ASSESSMENT,
        Recommendation.URGENT_CARE,
        Recommendation.EMERGENCY,
    ]
    assert sorted(order, key=lambda r: r.rank) == order
    assert [r.rank for r in order] == sorted({r.rank for r in order})


# --- configuration ---------------------------------------------------------------------------


def test_new_thresholds_are_overridable_and_validated(tmp_path: Path) -> None:
    path = tmp_path / "rules.toml"
    path.write_text(
        "[rules.pain.persistent]\nmin_scored_days = 6\npainful_fraction = 0.9\n"
        "[rules.load.return_after_break]\nbreak_days = 28\n"
        "[rules.engagement.quiet]\nquiet_days = 10\n"
    )
    cfg = load_rules_config(path)
    assert cfg.rules.pain.persistent.min_scored_days == 6
    assert cfg.rules.load.return_after_break.break_days == 28
    assert cfg.rules.engagement.quiet.quiet_days == 10
    path.write_text("[rules.pain.persistent]\npainful_fraction = 1.5\n")
    with pytest.raises(RulesConfigError, match="painful_fraction"):
        load_rules_config(path)
    path.write_text("[rules.redflag.severe_pain]\nmin_pain = 11\n")
    with pytest.raises(RulesConfigError, match=r"redflag\.severe_pain\.min_pain"):
        load_rules_config(path)


def test_history_covers_the_break_rule() -> None:
    cfg = config(**{"load.return_after_break": {"break_days": 60}})
    assert history_days_needed(cfg) > 60 + 7


# --- properties ------------------------------------------------------------------------------

_flags = st.fixed_dictionaries(
    {
        name: st.booleans()
        for name in (
            "swelling",
            "locking",
            "giving_way",
            "cannot_bear_weight",
            "night_pain",
            "fever",
            "trauma",
            "numbness",
            "redness_warmth",
            "stopped_run",
        )
    }
)


@given(
    pain=st.integers(0, 10),
    context=st.sampled_from(["post_run", "next_morning", "daily"]),
    flags=_flags,
)
def test_any_checkin_gives_at_most_one_finding_with_clean_texts(
    pain: int, context: str, flags: dict[str, bool]
) -> None:
    found = evaluate_checkin(checkin(day(0), pain, context, **flags), DEFAULTS)
    assert len(found) <= 1
    for finding in found:
        assert_texts(finding)
    same_day = flags["cannot_bear_weight"] or flags["locking"] or pain >= 8
    if same_day:
        assert found and found[0].severity is Severity.URGENT


# --- the documents ---------------------------------------------------------------------------

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_the_rules_guide_lists_every_setting_at_its_default() -> None:
    text = (DOCS / "RULES.md").read_text()
    sample = re.search(r"```toml\n(.*?)```", text, re.DOTALL)
    assert sample is not None
    assert RulesConfig.model_validate(tomllib.loads(sample.group(1))) == RulesConfig()
    for rule_id in CATALOG:
        assert f"## {rule_id}" in text, rule_id


def test_the_protocol_example_checkin_is_valid_and_carries_the_new_fields() -> None:
    text = (DOCS / "PROTOCOL.md").read_text()
    example = text[text.index("## 6. Example: a check-in") :]
    body = re.search(r"```json\n(.*?)```", example, re.DOTALL)
    assert body is not None
    message = CheckinMessage.model_validate_json(body.group(1))
    assert message.body.symptoms.numbness is False and message.body.stopped_run is False
