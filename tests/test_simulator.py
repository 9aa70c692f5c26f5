"""The device simulator: reproducible, realistic, valid on the wire, and its scenarios raise the
rules they claim when their data goes through the real broker, service and rule sweep."""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import Engine, func, select

from contract.topics import Topics
from db.engine import make_engine
from db.migrate import upgrade
from db.models import Alert, AlertEvent, Checkin, DeadLetter, Run
from ingest.messages import Inbound, Valid, decode
from kneeguard.app.service import Service
from kneeguard.cli.common import UserError
from kneeguard.cli.simulate import simulate
from kneeguard.settings import Settings
from kneeguard.simulation.simulator import SCENARIO_RULES, STORIES, Plan, PlanError, generate
from rules.config import RulesConfig
from rules.engine import RuleEngine
from testsupport import Mosquitto, free_port, wait_until

FIRST_DAY = date(2026, 9, 7)


def payloads(plan: Plan) -> list[tuple[str, bytes]]:
    return [(m.topic, m.payload) for m in generate(plan)]


# --- pure generation ----------------------------------------------------------------------------


def test_the_same_seed_gives_byte_identical_payloads_and_another_seed_other_ones() -> None:
    plan = Plan(athletes=6, days=42, seed=5, scenario="mixed", first_day=FIRST_DAY)
    first = payloads(plan)
    assert first == payloads(plan)
    other = payloads(Plan(athletes=6, days=42, seed=6, scenario="mixed", first_day=FIRST_DAY))
    assert other != first
    uuids = [m.uuid for m in generate(plan)]
    assert len(set(uuids)) == len(uuids)
    # An athlete's data depends on the seed and their index only, not on the club's size.
    smaller = Plan(athletes=3, days=42, seed=5, scenario="mixed", first_day=FIRST_DAY)
    kept = {"sim-01", "sim-02", "sim-03"}
    assert payloads(smaller) == [
        (m.topic, m.payload) for m in generate(plan) if m.athlete_id in kept
    ]


def test_simulate_dry_run_prints_the_same_bytes_for_the_same_seed() -> None:
    runner = CliRunner()
    args = ["--dry-run", "--athletes", "3", "--days", "21", "--seed", "9", "--start", "2026-09-07"]
    first = runner.invoke(simulate, [*args, "--scenario", "rising_pain"], catch_exceptions=False)
    second = runner.invoke(simulate, [*args, "--scenario", "rising_pain"], catch_exceptions=False)
    assert first.exit_code == 0, first.output
    assert first.stdout_bytes == second.stdout_bytes
    expected = Plan(
        athletes=3, days=21, seed=9, scenario="rising_pain", first_day=FIRST_DAY, timezone="UTC"
    )
    lines = first.stdout_bytes.decode().splitlines()
    assert lines == [f"{t} {p.decode()}" for t, p in payloads(expected)]


def test_messages_come_in_time_order_within_the_period_and_ingest_accepts_every_one() -> None:
    plan = Plan(
        athletes=8, days=35, seed=2, scenario="mixed", first_day=FIRST_DAY, timezone="Europe/Oslo"
    )
    messages = list(generate(plan))
    assert [m.at for m in messages] == sorted(m.at for m in messages)
    assert plan.start <= messages[0].at and messages[-1].at < plan.end
    topics = Topics(plan.prefix)
    for message in messages:
        decoded = decode(topics, Inbound(message.topic, message.payload, 1, 1, message.at))
        assert isinstance(decoded, Valid), (message.topic, decoded)
        assert decoded.uuid == message.uuid


@dataclass
class Stats:
    runs: list[dict[str, Any]]
    checkins: list[dict[str, Any]]


@pytest.fixture(scope="module")
def healthy_rows() -> Stats:
    """Eight weeks of 30 healthy athletes, as ingest would store them (SI units, UTC)."""
    plan = Plan(athletes=30, days=56, seed=4, scenario="healthy", first_day=FIRST_DAY)
    topics = Topics(plan.prefix)
    runs: list[dict[str, Any]] = []
    checkins: list[dict[str, Any]] = []
    for message in generate(plan):
        decoded = decode(topics, Inbound(message.topic, message.payload, 1, 1, message.at))
        assert isinstance(decoded, Valid)
        (runs if message.kind == "run" else checkins).append(decoded.row)
    return Stats(runs, checkins)


def test_training_looks_like_recreational_runners(healthy_rows: Stats) -> None:
    """The distributions docs/SIMULATOR.md states."""
    by_athlete: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for run in healthy_rows.runs:
        by_athlete[run["athlete_id"]].append(run)
    for runs in by_athlete.values():
        weekly = defaultdict(list)
        for run in runs:
            weekly[run["start_time"].isocalendar()[1]].append(run["distance_m"] / 1000)
        for week in weekly.values():
            assert 3 <= len(week) <= 5  # 3-5 runs: at least two rest days a week
            longest, *others = sorted(week, reverse=True)
            assert longest >= 1.3 * max(others)  # one long run a week
            assert all(3.5 <= km <= 11 for km in others)
            assert 8 <= longest <= 19
    paces = [r["duration_s"] / (r["distance_m"] / 1000) for r in healthy_rows.runs]
    assert min(paces) >= 280 and max(paces) <= 460  # 4:40 to 7:40 per km
    for run in healthy_rows.runs:
        elapsed = (run["end_time"] - run["start_time"]).total_seconds()
        assert run["duration_s"] <= elapsed <= run["duration_s"] + 305  # stops: 5 s to 5 min
        assert 150 <= run["cadence_spm"] <= 195
        assert 100 <= run["hr_avg_bpm"] < run["hr_max_bpm"] <= 196
        assert 0 <= run["rpe"] <= 8
    # Faster running means a higher cadence across the club, and, for one runner, a higher
    # heart rate on an easy run that went faster than usual.
    cadences = [r["cadence_spm"] for r in healthy_rows.runs]
    assert statistics.correlation(paces, cadences) < -0.5
    within = []
    for runs in by_athlete.values():
        easy = [r for r in runs if r["rpe"] <= 4]
        speeds = [r["distance_m"] / r["duration_s"] for r in easy]
        within.append(statistics.correlation(speeds, [r["hr_avg_bpm"] for r in easy]))
    assert statistics.mean(within) > 0.3


def test_most_runs_get_a_post_run_checkin_and_each_week_an_ostrc_answer(
    healthy_rows: Stats,
) -> None:
    run_uuids = {r["uuid"] for r in healthy_rows.runs}
    contexts: dict[str, int] = defaultdict(int)
    for checkin in healthy_rows.checkins:
        contexts[checkin["context"]] += 1
    answered = {c["related_run_uuid"] for c in healthy_rows.checkins if c["context"] == "post_run"}
    assert answered <= run_uuids
    assert 0.75 <= len(answered) / len(run_uuids) <= 0.97
    assert contexts["next_morning"] > 0 and contexts["daily"] > 0
    ostrc = [c for c in healthy_rows.checkins if c["ostrc_q1"] is not None]
    weeks = {(c["athlete_id"], c["recorded_at"].isocalendar()[1]) for c in ostrc}
    assert len(ostrc) == len(weeks)  # one a week
    assert max(c["pain_score"] for c in healthy_rows.checkins) <= 1


def test_a_mixed_club_tells_each_story_once_then_everyone_is_healthy() -> None:
    plan = Plan(athletes=9, days=35, scenario="mixed", first_day=FIRST_DAY)
    assert [a.scenario for a in plan.roster()] == [*STORIES, "healthy", "healthy", "healthy"]
    single = Plan(athletes=3, days=35, scenario="lateral_pain", first_day=FIRST_DAY)
    assert {a.scenario for a in single.roster()} == {"lateral_pain"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"scenario": "marathon"}, "unknown scenario 'marathon'"),
        ({"scenario": "long_run_spike", "days": 20}, "needs at least 35 days"),
        ({"scenario": "mixed", "days": 20}, "the long_run_spike scenario needs at least 35"),
        ({"timezone": "Mars/Olympus"}, "unknown timezone"),
        ({"id_prefix": "bad id"}, "id prefix"),
        ({"prefix": "kneeguard/#"}, "without + or #"),
    ],
)
def test_a_plan_that_cannot_be_simulated_says_why(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(PlanError, match=re.escape(message)):
        Plan(**{"athletes": 2, "days": 40, **changes})


def user_error(args: list[str]) -> tuple[int, str]:
    """Run `simulate` as `kneeguard.cli.main` does: (exit status, the one-line message)."""
    result = CliRunner().invoke(simulate, args, standalone_mode=False)
    assert isinstance(result.exception, UserError), result.exception
    return result.exception.code, result.exception.format_message()


def test_bad_simulate_options_exit_2_with_one_line() -> None:
    code, message = user_error(["--dry-run", "--scenario", "long_run_spike", "--days", "7"])
    assert code == 2 and "needs at least 35 days" in message and "\n" not in message
    code, message = user_error(["--dry-run", "--start", "next tuesday"])
    assert code == 2 and "--start must be a date" in message


def test_simulate_says_clearly_when_no_broker_answers() -> None:
    url = f"mqtt://127.0.0.1:{free_port()}"
    code, message = user_error(["--days", "7", "--scenario", "healthy", "--mqtt-url", url])
    assert code == 1
    assert message.startswith("cannot reach the MQTT broker at mqtt://127.0.0.1:")


# --- through the real pipeline --------------------------------------------------------------


@dataclass
class Club:
    engine: Engine
    broker: Mosquitto
    db_url: str
    plans: list[Plan]
    alerts_at_ingest: dict[str, set[str]]
    alerts: dict[str, list[Any]]
    scenario: dict[str, str]


def stored(engine: Engine) -> int:
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(Run)).scalar_one()
        checkins = conn.execute(select(func.count()).select_from(Checkin)).scalar_one()
        return int(runs + checkins)


def alerts_by_athlete(engine: Engine) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = defaultdict(list)
    with engine.connect() as conn:
        for alert in conn.execute(select(Alert).order_by(Alert.id)):
            found[alert.athlete_id].append(alert)
    return found


@pytest.fixture(scope="module")
def club(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Club]:
    """A mixed club (every story plus healthy runners) and a healthy club, published by
    `kneeguard simulate --register` through mosquitto into the service, then swept as of the
    simulated end."""
    workdir = tmp_path_factory.mktemp("simulated-club")
    broker = Mosquitto(workdir / "broker")
    broker.start()
    db_url = f"sqlite:///{workdir / 'kneeguard.db'}"
    engine = make_engine(db_url)
    upgrade(engine)
    settings = Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None)
    service = Service(settings, engine, only="ingest")
    service.start()
    plans = [
        Plan(athletes=8, days=42, seed=3, scenario="mixed", first_day=FIRST_DAY, id_prefix="mix"),
        Plan(
            athletes=10, days=42, seed=11, scenario="healthy", first_day=FIRST_DAY, id_prefix="fit"
        ),
    ]
    try:
        assert service.connection.ready.wait(10)
        runner = CliRunner()
        for plan in plans:
            args = ["--athletes", str(plan.athletes), "--days", str(plan.days)]
            args += ["--seed", str(plan.seed), "--scenario", plan.scenario]
            args += ["--start", plan.first_day.isoformat(), "--id-prefix", plan.id_prefix]
            args += ["--mqtt-url", broker.url, "--register"]
            result = runner.invoke(
                simulate, args, env={"KNEEGUARD_DATABASE_URL": db_url}, catch_exceptions=False
            )
            assert result.exit_code == 0, result.output
            assert f"registered {plan.athletes} athletes" in result.output
        expected = sum(len(list(generate(plan))) for plan in plans)
        assert wait_until(lambda: stored(engine) == expected, 30), (stored(engine), expected)
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
        at_ingest = {k: {a.rule_id for a in v} for k, v in alerts_by_athlete(engine).items()}
        end = max(plan.end for plan in plans)
        RuleEngine(engine, RulesConfig()).sweep(end.astimezone(UTC))
        scenario = {a.athlete_id: a.scenario for plan in plans for a in plan.roster()}
        yield Club(engine, broker, db_url, plans, at_ingest, alerts_by_athlete(engine), scenario)
    finally:
        service.stop()
        broker.stop()


@pytest.mark.parametrize("story", STORIES)
def test_each_story_raises_the_rules_it_claims(club: Club, story: str) -> None:
    (athlete,) = [a for a, s in club.scenario.items() if s == story and a.startswith("mix")]
    raised = {alert.rule_id: alert for alert in club.alerts[athlete]}
    assert SCENARIO_RULES[story] <= set(raised), raised
    if story == "long_run_spike":
        spike = raised["load.single_run_spike"]
        assert spike.severity == "warning" and spike.evidence["ratio"] > 1.3
        assert spike.recommendation == "rest"  # the painful check-in after it
    if story == "rising_pain":
        assert raised["pain.rising"].evidence["rise"] >= 1.0
    if story == "locked_knee":
        locked = raised["redflag.locked_knee"]
        assert (locked.severity, locked.recommendation) == ("urgent", "urgent_care")
        assert "redflag.locked_knee" in club.alerts_at_ingest[athlete]  # before any sweep
    if story == "lateral_pain":
        high = raised["pain.high"]
        # The hedged association is for the coach; the athlete's text names no condition.
        assert "iliotibial band" in high.coach_message and "not a diagnosis" in high.message
        assert "iliotibial" not in high.message
    if story == "no_weight_bearing":
        weight = raised["redflag.cannot_bear_weight"]
        assert (weight.severity, weight.recommendation) == ("urgent", "urgent_care")
        assert weight.evidence["context"] == "daily"  # a rest day: no run that day
    if story == "gives_way_twice":
        gave = raised["redflag.professional_signs"]
        with club.engine.connect() as conn:
            kinds = (
                conn.execute(
                    select(AlertEvent.kind)
                    .where(AlertEvent.alert_id == gave.id)
                    .order_by(AlertEvent.id)
                )
                .scalars()
                .all()
            )
        assert kinds == ["opened", "repeated"]  # reported twice, heard twice


def test_healthy_runners_raise_no_rule_at_all(club: Club) -> None:
    healthy = [a for a, s in club.scenario.items() if s == "healthy"]
    assert len(healthy) == 12  # 2 of the mixed club of 8 (6 stories), and 10 healthy
    assert {a: [x.rule_id for x in club.alerts[a]] for a in healthy if club.alerts[a]} == {}


def test_stories_raise_nothing_urgent_or_warning_beyond_their_claim(club: Club) -> None:
    for athlete, story in club.scenario.items():
        extra = {
            a.rule_id
            for a in club.alerts[athlete]
            if a.severity != "info" and a.rule_id not in SCENARIO_RULES[story]
        }
        assert not extra, (athlete, story, extra)


def test_simulate_paces_publishing_to_the_rate(club: Club) -> None:
    plan = Plan(
        athletes=1, days=7, seed=1, scenario="healthy", first_day=FIRST_DAY, id_prefix="pace"
    )
    count = len(list(generate(plan)))
    args = ["--athletes", "1", "--days", "7", "--scenario", "healthy", "--seed", "1"]
    args += ["--start", FIRST_DAY.isoformat(), "--id-prefix", "pace", "--rate", "20"]
    started = time.monotonic()
    result = CliRunner().invoke(
        simulate,
        [*args, "--mqtt-url", club.broker.url],
        env={"KNEEGUARD_DATABASE_URL": club.db_url},
        catch_exceptions=False,
    )
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert f"published {count} messages" in result.output
    assert elapsed >= (count - 1) / 20
