"""Rules against the real database and broker: red flags at ingest, the sweep, the lifecycle,
prompts and the alert commands."""

from __future__ import annotations

import json
import uuid as uuidlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

import rules.store
from db.engine import session_factory
from db.models import Alert, Delivery, Prompt, Run
from kneeguard.admin.registry import Registry
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.model import PainSite, RunFact
from rules.store import histories, load_checkins
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    DeviceClient,
    Mosquitto,
    checkin_payload,
    kneeguard,
    wait_until,
)
from testsupport.club import (
    NOW,
    add_checkin,
    add_run,
    alerts,
    base_weeks,
    events,
    insert_checkin,
    insert_run,
)

# --- red flags at ingest ----------------------------------------------------------------------


def test_a_locked_knee_opens_an_urgent_alert_at_ingest_without_a_sweep(
    live: tuple[Engine, DeviceClient],
) -> None:
    engine, device = live
    payload = checkin_payload(pain_score=6, symptoms={"locking": True})
    device.publish(CHECKIN_TOPIC, payload)
    assert device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    assert wait_until(lambda: len(alerts(engine)) >= 1, 5)
    rows = alerts(engine)
    by_rule = {a.rule_id: a for a in rows}
    locked = by_rule["redflag.locked_knee"]
    assert (locked.severity, locked.recommendation, locked.status) == (
        "urgent",
        "urgent_care",
        "open",
    )
    assert "not a diagnosis" in locked.message
    assert "redflag.professional_signs" not in by_rule


def test_a_repeated_red_flag_updates_the_open_alert_and_notifies_again(
    live: tuple[Engine, DeviceClient],
) -> None:
    engine, device = live
    first = checkin_payload(symptoms={"locking": True})
    first["body"]["effective_time_frame"]["date_time"] = "2026-11-02T08:00:00+01:00"
    second = checkin_payload(symptoms={"locking": True})
    second["body"]["effective_time_frame"]["date_time"] = "2026-11-03T08:00:00+01:00"
    device.publish(CHECKIN_TOPIC, first)
    assert wait_until(lambda: len(alerts(engine)) == 1, 5)
    device.publish(CHECKIN_TOPIC, second)
    assert device.ack_for(second["header"]["uuid"])["status"] == "accepted"
    assert wait_until(
        lambda: alerts(engine)[0].last_triggered_at == datetime(2026, 11, 3, 7, tzinfo=UTC), 5
    )
    assert len(alerts(engine)) == 1
    # RULES.md v2, C: a red flag re-notifies on every new check-in that fires it.
    assert wait_until(lambda: [kind for _, kind in events(engine)] == ["opened", "repeated"], 5)


# --- the sweep --------------------------------------------------------------------------------


def test_facts_are_read_from_the_columns_of_their_names(db: Engine) -> None:
    """Every run and check-in field comes from its own column: with all values distinct, a
    column read into the wrong field would show here."""
    start = NOW - timedelta(days=1)
    run_id = add_run(db, start, 12.5, minutes=61, rpe=6, cadence_spm=171)
    run_uuid = str(uuidlib.uuid4())
    at = NOW - timedelta(hours=20)
    flags = {"swelling": True, "locking": False, "giving_way": True, "cannot_bear_weight": False}
    flags |= {"night_pain": True, "fever": False, "trauma": True}
    checkin_id = add_checkin(
        db, at, 4, context="next_morning", pain_sites=[{"side": "left", "aspect": "lateral"}],
        ostrc_q1=0, ostrc_q2=1, ostrc_q3=2, ostrc_q4=3, related_run_uuid=run_uuid, **flags,
    )  # fmt: skip
    unanswered_id = add_checkin(db, at + timedelta(minutes=1), 2, ostrc_q1=1)
    with db.connect() as conn:
        [history] = [h for h in histories(conn, NOW - timedelta(days=2), NOW)]
        loaded = dict((fact.id, (athlete, fact)) for athlete, fact in
                      load_checkins(conn, [checkin_id, unanswered_id]))  # fmt: skip
        run_uuid_stored = conn.execute(select(Run.uuid).where(Run.id == run_id)).scalar_one()
    assert history.athlete_id == "ann"
    [run] = history.runs
    assert run == RunFact(run_id, run_uuid_stored, start, 12_500, 61 * 60, 6, 171)
    athlete, checkin = loaded[checkin_id]
    assert athlete == "ann"
    assert history.checkins[0] == checkin
    assert (checkin.recorded_at, checkin.context, checkin.pain_score) == (at, "next_morning", 4)
    assert checkin.pain_sites == (PainSite("left", "lateral"),)
    assert {name: getattr(checkin, name) for name in flags} == flags
    assert (checkin.ostrc, checkin.related_run_uuid) == ((0, 1, 2, 3), run_uuid)
    assert loaded[unanswered_id][1].ostrc is None  # a partly answered OSTRC is no answer


def test_an_athlete_with_impossibly_many_runs_is_judged_on_the_latest_only(
    db: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A device replaying made-up runs must not make a sweep hold them all: of one athlete the
    rules see the latest `MAX_FACTS` runs and check-ins, the log says so, and the athletes after
    it in the stream get all of theirs."""
    monkeypatch.setattr(rules.store, "MAX_FACTS", 10)
    Registry(session_factory(db)).add_athlete(athlete_id="zoe", name="Zoe", email="z@example.com")
    with db.begin() as conn:
        for n in range(25):
            insert_run(conn, "ann", NOW - timedelta(hours=25 - n), 5)
            insert_checkin(conn, "ann", NOW - timedelta(hours=25 - n, minutes=-5), 1)
        for n in range(3):
            insert_run(conn, "zoe", NOW - timedelta(hours=3 - n), 8)
    with db.connect() as conn, caplog.at_level("WARNING", logger="rules.store"):
        ann, zoe = histories(conn, NOW - timedelta(days=2), NOW)
    assert [run.start for run in ann.runs] == [NOW - timedelta(hours=h) for h in range(10, 0, -1)]
    assert [c.recorded_at for c in ann.checkins] == [
        NOW - timedelta(hours=h, minutes=-5) for h in range(10, 0, -1)
    ]
    assert (zoe.athlete_id, len(zoe.runs)) == ("zoe", 3)
    assert [r.getMessage() for r in caplog.records] == [
        f"athlete ann has more than 10 {what} in the rules' window; the rules see the latest 10"
        for what in ("runs", "check-ins")
    ]


def test_a_long_run_spike_is_found_by_the_sweep_and_a_second_sweep_changes_nothing(
    db: Engine,
) -> None:
    base_weeks(db)
    add_run(db, NOW - timedelta(days=1), 21, 120)  # 21 km against a 14 km longest: 1.5x
    rules = RuleEngine(db, RulesConfig())
    first = rules.sweep(NOW)
    assert first.opened >= 1
    spike = {a.rule_id: a for a in alerts(db)}["load.single_run_spike"]
    assert (spike.severity, spike.recommendation) == ("warning", "reduce_load")
    snapshot = [(a.id, a.status, a.updated_at, a.last_triggered_at) for a in alerts(db)]
    second = rules.sweep(NOW + timedelta(minutes=5))
    assert (second.opened, second.raised, second.resolved) == (0, 0, 0)
    assert [(a.id, a.status, a.updated_at, a.last_triggered_at) for a in alerts(db)] == snapshot


def test_pain_after_the_spike_raises_the_alert_to_rest(db: Engine) -> None:
    base_weeks(db)
    spike_at = NOW - timedelta(days=1)
    add_run(db, spike_at, 16.5, 95)  # 16.5 / 14 = 1.18: a small spike, a warning in v2
    rules = RuleEngine(db, RulesConfig())
    rules.sweep(NOW)
    spike = {a.rule_id: a for a in alerts(db)}["load.single_run_spike"]
    assert (spike.severity, spike.recommendation) == ("warning", "reduce_load")
    add_checkin(db, spike_at + timedelta(hours=3), pain=4)
    result = rules.sweep(NOW + timedelta(hours=1))
    assert result.raised == 1
    spike = {a.rule_id: a for a in alerts(db)}["load.single_run_spike"]
    assert (spike.severity, spike.recommendation) == ("warning", "rest")
    assert "pain of 4/10" in spike.message
    assert [kind for _, kind in events(db) if _ == spike.id] == ["opened", "stronger"]


def test_the_sweep_rechecks_recent_checkins_missed_by_a_crash(db: Engine) -> None:
    add_checkin(db, NOW - timedelta(hours=2), pain=3, swelling=True, fever=True)
    RuleEngine(db, RulesConfig()).sweep(NOW)
    assert [a.rule_id for a in alerts(db)] == ["redflag.infection_signs"]


def test_alerts_resolve_after_seven_quiet_days_and_can_open_again(db: Engine) -> None:
    add_checkin(db, NOW - timedelta(hours=1), pain=2, giving_way=True)
    rules = RuleEngine(db, RulesConfig())
    rules.sweep(NOW)
    (alert,) = alerts(db)
    assert alert.rule_id == "redflag.professional_signs"
    assert rules.sweep(NOW + timedelta(days=6, hours=22)).resolved == 0
    assert rules.sweep(NOW + timedelta(days=7)).resolved == 1
    (alert,) = alerts(db)
    assert alert.status == "resolved"
    # the old check-in never reopens it; a new one opens a new alert
    assert rules.sweep(NOW + timedelta(days=7, hours=1)).opened == 0
    add_checkin(db, NOW + timedelta(days=8), pain=2, giving_way=True)
    assert rules.sweep(NOW + timedelta(days=8, hours=1)).opened == 1
    assert [a.status for a in alerts(db)] == ["resolved", "open"]


# --- prompts ----------------------------------------------------------------------------------


def test_one_checkin_prompt_per_run(db: Engine, broker: Mosquitto) -> None:
    quiet = add_run(db, NOW - timedelta(hours=4), 10)
    answered_start = NOW - timedelta(hours=5)
    add_run(db, answered_start, 8)
    add_checkin(db, answered_start + timedelta(minutes=55), pain=1)
    add_run(db, NOW - timedelta(hours=1), 6)  # not yet due
    rules = RuleEngine(db, RulesConfig())
    app = DeviceClient(broker.port, subscribe=(f"{PREFIX}/+/+/prompt",))
    publisher = DeviceClient(broker.port)
    try:
        assert rules.send_prompts(NOW, publisher.publish, PREFIX) == 1
        assert rules.send_prompts(NOW + timedelta(minutes=5), publisher.publish, PREFIX) == 0
        assert wait_until(lambda: len(app.received) == 1, 5)
        topic, raw = app.received[0]
        assert topic == f"{PREFIX}/ann/watch/prompt"
        prompt = json.loads(raw)
        with db.connect() as conn:
            run_uuid = conn.execute(select(Run.uuid).where(Run.id == quiet)).scalar_one()
            assert conn.execute(select(func.count()).select_from(Prompt)).scalar_one() == 1
        assert prompt["run_uuid"] == run_uuid
        assert "10.0 km" in prompt["message"]
    finally:
        app.close()
        publisher.close()


# --- commands ---------------------------------------------------------------------------------


def test_rules_run_as_of_an_instant_and_alert_commands(db: Engine, db_url: str) -> None:
    add_checkin(db, NOW - timedelta(hours=1), pain=7)
    result = kneeguard(db_url, "rules", "run", "--now", NOW.isoformat())
    assert result.returncode == 0, result.stderr
    assert "1 alerts opened" in result.stdout
    listed = json.loads(kneeguard(db_url, "alerts", "list", "--json").stdout)
    assert [a["rule_id"] for a in listed] == ["pain.high"]
    alert = listed[0]
    for key in ("id", "athlete_id", "rule_id", "severity", "recommendation", "status",
                "opened_at", "last_triggered_at", "message"):  # fmt: skip
        assert key in alert
    assert (alert["severity"], alert["recommendation"]) == ("warning", "rest")
    acked = kneeguard(db_url, "alerts", "ack", str(alert["id"]), "--by", "Cora Coach")
    assert acked.returncode == 0 and "acknowledged by Cora Coach" in acked.stdout
    assert json.loads(kneeguard(db_url, "alerts", "list", "--json").stdout) == []
    mine = json.loads(
        kneeguard(db_url, "alerts", "list", "--athlete", "ann", "--status", "all", "--json").stdout
    )
    assert mine[0]["status"] == "acknowledged" and mine[0]["acknowledged_by"] == "Cora Coach"
    table = kneeguard(db_url, "alerts", "list", "--status", "acknowledged").stdout
    assert "pain.high" in table


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alerts", "ack", "999"], "unknown alert 999"),
        (["alerts", "ack", "abc"], "'abc' is not a valid integer"),
        (["alerts", "list", "--status", "closed"], "'closed' is not one of"),
        (["rules", "run", "--now", "tomorrow"], "--now must be an ISO 8601 instant"),
        (["rules", "run", "--now", "2026-11-20T12:00:00"], "--now needs a UTC offset"),
        (["rules", "run", "--now", "0001-01-02T00:00:00+00:00"], "must not be before 2000"),
        (["rules", "run", "--now", "0001-01-01T00:00:00+01:00"], "has no UTC equivalent"),
        (["rules", "run", "--now", "9999-12-31T23:59:59-14:00"], "has no UTC equivalent"),
        (["rules", "run", "--now", "2099-01-01T00:00:00Z"], "must not be after the current"),
    ],
)
def test_alert_command_errors(db: Engine, db_url: str, args: list[str], message: str) -> None:
    result = kneeguard(db_url, *args)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_an_alert_opened_by_rules_run_is_handed_to_the_outbox(db: Engine, db_url: str) -> None:
    """The command opened alerts but wrote no outbox rows, so nobody was ever told of them; the
    running service's outbox worker now sends them like any other."""
    add_checkin(db, NOW - timedelta(hours=1), 3, "daily", locking=True)
    assert kneeguard(db_url, "rules", "run", "--now", NOW.isoformat()).returncode == 0
    with db.connect() as conn:
        alert_id = conn.execute(select(Alert.id)).scalar_one()
        routes = conn.execute(
            select(Delivery.recipient_kind, Delivery.channel, Delivery.status).where(
                Delivery.alert_id == alert_id
            )
        ).all()
    assert ("athlete", "email", "pending") in {tuple(r) for r in routes}
    assert ("coach", "email", "pending") in {tuple(r) for r in routes}


def test_a_sweep_dated_in_the_future_changes_no_alert(db: Engine, db_url: str) -> None:
    """Reproduced: `rules run --now 9999-...` resolved an unacknowledged urgent alert "in year
    9999". A sweep never writes alert changes dated after the real now."""
    add_checkin(db, NOW - timedelta(hours=1), 3, "daily", locking=True)
    assert kneeguard(db_url, "rules", "run", "--now", NOW.isoformat()).returncode == 0
    before = json.loads(kneeguard(db_url, "alerts", "list", "--json").stdout)
    assert [(a["rule_id"], a["status"]) for a in before] == [("redflag.locked_knee", "open")]

    result = kneeguard(db_url, "rules", "run", "--now", "9999-12-30T00:00:00Z")
    assert result.returncode == 2
    assert "a sweep never writes alert changes dated in the future" in result.stderr
    after = json.loads(kneeguard(db_url, "alerts", "list", "--status", "all", "--json").stdout)
    assert after == before


def test_the_service_schedules_the_sweep_and_the_prompts(
    db: Engine, db_url: str, broker: Mosquitto
) -> None:
    now = datetime.now(UTC)
    add_checkin(db, now - timedelta(hours=1), 2, "daily", locking=True)  # stored, not evaluated
    add_run(db, now - timedelta(hours=5), 12)
    settings = Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None)
    app = DeviceClient(broker.port, subscribe=(f"{PREFIX}/+/+/prompt",))
    service = Service(settings, db, first_run_delay=timedelta(0))
    assert service.scheduler is not None
    jobs = {job.id: job for job in service.scheduler.get_jobs()}
    assert set(jobs) == {
        "rule-sweep",
        "checkin-prompts",
        "escalation",
        "coach-digests",
        "retention",
    }
    assert jobs["rule-sweep"].trigger.interval == timedelta(minutes=60)
    service.start()
    try:
        assert wait_until(lambda: [a.rule_id for a in alerts(db)] == ["redflag.locked_knee"], 10)
        assert wait_until(lambda: len(app.received) == 1, 10)
    finally:
        service.stop()
        app.close()


def test_only_ingest_runs_no_scheduler(db: Engine, db_url: str, broker: Mosquitto) -> None:
    settings = Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None)
    assert Service(settings, db, only="ingest").scheduler is None


def test_a_rules_file_with_a_typo_or_bad_value_stops_start_up(
    db: Engine, db_url: str, tmp_path: Any
) -> None:
    typo = tmp_path / "typo.toml"
    typo.write_text('[rules."load.acwr"]\ntreshold = 1.4\n')
    result = kneeguard(db_url, "rules", "run", KNEEGUARD_RULES_FILE=str(typo))
    assert result.returncode == 2
    assert "rules.load.acwr.treshold" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text('[rules."pain.high"]\nmax_post_run_pain = 42\n')
    result = kneeguard(db_url, "run", KNEEGUARD_RULES_FILE=str(bad))
    assert result.returncode == 2
    assert "rules.pain.high.max_post_run_pain" in result.stderr and "42" in result.stderr
    assert alerts(db) == []
