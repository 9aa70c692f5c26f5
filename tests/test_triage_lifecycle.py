"""RULES.md v2, section C, on SQLite and PostgreSQL: every new red-flag report is heard, a
stronger recommendation is sent and stored, urgent alerts never resolve themselves, and an
acknowledged red flag reported again opens and can escalate again."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, select

from db.models import Alert, AlertEvent, Checkin, Delivery, Run
from notifier.routing import enqueue_alerts, escalate_due
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.model import Recommendation
from rules.store import Change, acknowledge
from testsupport import CHECKIN_TOPIC, DeviceClient, checkin_payload, wait_until
from testsupport.club import NOW, add_checkin, add_run, alerts, base_weeks, events


def _enqueue(conn: Connection, changes: Sequence[Change], now: datetime) -> None:
    enqueue_alerts(conn, [(c.alert_id, c.kind, c.event_id) for c in changes], now, ("email",))


def rules_with_outbox(engine: Engine, config: RulesConfig | None = None) -> RuleEngine:
    return RuleEngine(engine, config or RulesConfig(), write_changes=_enqueue)


def notices(engine: Engine, recipient_kind: str = "athlete") -> list[Any]:
    with engine.connect() as conn:
        return list(
            conn.execute(
                select(Delivery)
                .where(Delivery.recipient_kind == recipient_kind)
                .order_by(Delivery.id)
            )
        )


def checkin_now(rules: RuleEngine, engine: Engine, at: datetime, pain: int, **fields: Any) -> None:
    """A check-in stored and evaluated at once, as ingest does."""
    checkin_id = add_checkin(engine, at, pain, fields.pop("context", "daily"), **fields)
    rules.checkins_stored([checkin_id], at)


def by_rule(engine: Engine) -> dict[str, Any]:
    return {a.rule_id: a for a in alerts(engine) if a.status != "resolved"}


# --- the reproductions ---------------------------------------------------------------


def test_a_knee_that_locks_again_after_escalation_is_heard_again(db: Engine) -> None:
    rules = rules_with_outbox(db)
    checkin_now(rules, db, NOW, 4, locking=True)
    with db.begin() as conn:
        assert len(escalate_due(conn, NOW + timedelta(hours=2), timedelta(hours=2), ("email",)))
    before = len(notices(db))
    checkin_now(rules, db, NOW + timedelta(days=3), 5, locking=True)
    locked = by_rule(db)["redflag.locked_knee"]
    assert [kind for _, kind in events(db)] == ["opened", "escalated", "repeated"]
    repeated = notices(db)[before:]
    assert [(d.reason, d.channel) for d in repeated] == [("repeated", "email")]
    assert [(d.reason, d.recipient_id) for d in notices(db, "coach")][-1] == ("repeated", "cora")
    assert "5/10" in locked.message


def test_an_acknowledged_red_flag_reported_again_opens_and_escalates_again(db: Engine) -> None:
    rules = rules_with_outbox(db)
    checkin_now(rules, db, NOW, 6, context="post_run")
    with db.begin() as conn:
        acknowledge(conn, by_rule(db)["pain.high"].id, "ann", NOW + timedelta(hours=1))
    checkin_now(rules, db, NOW + timedelta(days=2), 7, context="post_run")
    (high,) = [a for a in alerts(db) if a.rule_id == "pain.high"]
    assert high.status == "open"
    assert high.reopened_at == NOW + timedelta(days=2)
    assert [r.reason for r in notices(db)] == ["opened", "repeated"]
    # A reopened urgent alert escalates again, counting from its reopening.
    checkin_now(rules, db, NOW + timedelta(days=3), 4, locking=True)
    locked = by_rule(db)["redflag.locked_knee"]
    two = timedelta(hours=2)
    with db.begin() as conn:
        acknowledge(conn, locked.id, "ann", NOW + timedelta(days=3, minutes=5))
    checkin_now(rules, db, NOW + timedelta(days=4), 4, locking=True)
    with db.begin() as conn:
        assert escalate_due(conn, NOW + timedelta(days=4) + two - timedelta(seconds=1), two) == []
    with db.begin() as conn:
        assert escalate_due(conn, NOW + timedelta(days=4) + two, two, ("email",)) == [locked.id]


def test_high_pain_then_severe_pain_two_days_later_is_sent(db: Engine) -> None:
    rules = rules_with_outbox(db)
    checkin_now(rules, db, NOW, 6, context="post_run")
    with db.begin() as conn:
        acknowledge(conn, by_rule(db)["pain.high"].id, "ann", NOW + timedelta(hours=1))
    checkin_now(rules, db, NOW + timedelta(days=2), 9, context="post_run")
    severe = by_rule(db)["redflag.severe_pain"]
    assert (severe.severity, severe.recommendation) == ("urgent", "urgent_care")
    assert [(d.reason, d.alert_id) for d in notices(db)][-1] == ("opened", severe.id)
    assert any(d.alert_id == severe.id for d in notices(db, "coach"))


def test_a_spike_followed_by_pain_sends_rest_and_stores_what_was_sent(db: Engine) -> None:
    base_weeks(db)
    spike_at = NOW - timedelta(days=1)
    add_run(db, spike_at, 14 * 1.36, 110)  # 1.36 × the 14 km longest run: warning
    rules = rules_with_outbox(db)
    rules.sweep(NOW)
    spike = by_rule(db)["load.single_run_spike"]
    assert (spike.severity, spike.recommendation) == ("warning", "reduce_load")
    checkin_now(rules, db, spike_at + timedelta(hours=3), 5, context="post_run")
    rules.sweep(NOW + timedelta(hours=1))
    spike = by_rule(db)["load.single_run_spike"]
    assert spike.recommendation == "rest"
    assert "Rest from running" in spike.message and "pain of 5/10" in spike.message
    assert [d.reason for d in notices(db) if d.alert_id == spike.id] == ["opened", "stronger"]


def test_a_second_substantial_ostrc_week_sends_professional_assessment(db: Engine) -> None:
    rules = rules_with_outbox(db)
    first = NOW - timedelta(days=7)
    add_checkin(db, first, 3, "daily", ostrc_q1=1, ostrc_q2=2, ostrc_q3=1, ostrc_q4=1)
    rules.sweep(first + timedelta(hours=1))
    ostrc = by_rule(db)["ostrc.substantial"]
    assert ostrc.recommendation == "reduce_load"
    add_checkin(db, NOW, 3, "daily", ostrc_q1=3, ostrc_q2=0, ostrc_q3=0, ostrc_q4=1)
    rules.sweep(NOW + timedelta(hours=1))
    ostrc = by_rule(db)["ostrc.substantial"]
    assert ostrc.recommendation == "professional_assessment"
    assert "2 weeks in a row" in ostrc.message and "cannot participate" in ostrc.message
    assert "physiotherapist or doctor" in ostrc.message
    assert [d.reason for d in notices(db) if d.alert_id == ostrc.id] == ["opened", "stronger"]


def test_an_unacknowledged_urgent_alert_never_resolves_itself(db: Engine) -> None:
    rules = rules_with_outbox(db)
    checkin_now(rules, db, NOW, 3, cannot_bear_weight=True)
    checkin_now(rules, db, NOW, 2, night_pain=True)
    assert rules.sweep(NOW + timedelta(days=30)).resolved == 1  # the warning only
    status = {a.rule_id: a.status for a in alerts(db)}
    assert status["redflag.cannot_bear_weight"] == "open"
    assert status["redflag.professional_signs"] == "resolved"
    with db.begin() as conn:
        acknowledge(conn, by_rule(db)["redflag.cannot_bear_weight"].id, "cora", NOW)
    assert rules.sweep(NOW + timedelta(days=30, hours=1)).resolved == 1
    assert {a.status for a in alerts(db) if a.rule_id.startswith("redflag.")} == {"resolved"}


@pytest.mark.parametrize(("minutes", "expected"), [(59, 0), (60, 1)])
def test_the_sweep_recheck_never_notifies_a_checkin_twice(
    db: Engine, minutes: int, expected: int
) -> None:
    rules = rules_with_outbox(db)
    checkin_now(rules, db, NOW, 4, locking=True)
    if expected:
        checkin_now(rules, db, NOW + timedelta(minutes=minutes), 4, locking=True)
    for hours in (1, 2, 30):
        rules.sweep(NOW + timedelta(hours=hours))
    assert [d.reason for d in notices(db)] == ["opened"] + ["repeated"] * expected


def test_a_finding_that_does_not_notify_keeps_the_sent_text(db: Engine) -> None:
    base_weeks(db)
    add_run(db, NOW - timedelta(days=2), 18.0, 100)  # 1.29 × 14: small band
    rules = rules_with_outbox(db)
    rules.sweep(NOW)
    sent = by_rule(db)["load.single_run_spike"].message
    add_run(db, NOW - timedelta(hours=6), 24.0, 130)  # 1.33 × 18: a bigger spike, same advice
    rules.sweep(NOW + timedelta(hours=1))
    spike = by_rule(db)["load.single_run_spike"]
    assert spike.message == sent
    assert spike.last_triggered_at == NOW - timedelta(hours=6)
    assert [d.reason for d in notices(db) if d.alert_id == spike.id] == ["opened"]


# --- properties --------------------------------------------------------------------------------


def _clear(engine: Engine) -> None:
    with engine.begin() as conn:
        for table in (Delivery, AlertEvent, Alert, Checkin, Run):
            conn.execute(delete(table))


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reports=st.lists(
        st.tuples(
            st.integers(1, 72 * 60),  # minutes after the first report
            st.sampled_from(["locking", "cannot_bear_weight", "swelling", "stopped_run"]),
            st.booleans(),  # acknowledged before the next report
        ),
        min_size=1,
        max_size=5,
    )
)
def test_a_red_flag_reported_n_times_notifies_n_times(
    db: Engine, reports: list[tuple[int, str, bool]]
) -> None:
    _clear(db)
    rules = rules_with_outbox(db)
    expected: dict[str, int] = {}
    for minutes, sign, ack in sorted(reports):
        at = NOW + timedelta(minutes=minutes)
        checkin_now(rules, db, at, 2, **{sign: True})
        rule_id = {
            "locking": "redflag.locked_knee",
            "cannot_bear_weight": "redflag.cannot_bear_weight",
            "swelling": "redflag.professional_signs",
            "stopped_run": "pain.high",
        }[sign]
        expected[rule_id] = expected.get(rule_id, 0) + 1
        if ack:
            with db.begin() as conn:
                acknowledge(conn, by_rule(db)[rule_id].id, "ann", at)
    rules.sweep(NOW + timedelta(days=3, hours=1))  # the re-check adds nothing
    sent: dict[str, int] = {}
    ids = {a.id: a.rule_id for a in alerts(db)}
    for delivery in notices(db):
        sent[ids[delivery.alert_id]] = sent.get(ids[delivery.alert_id], 0) + 1
    assert sent == expected


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 10), st.sampled_from(["post_run", "daily", "next_morning"])),
        min_size=1,
        max_size=6,
    )
)
def test_a_recommendation_never_weakens_without_a_new_alert(
    db: Engine, steps: list[tuple[int, str]]
) -> None:
    _clear(db)
    base_weeks(db, weeks=5)
    add_run(db, NOW - timedelta(days=1), 17.0, 100)
    rules = rules_with_outbox(db)
    seen: dict[int, int] = {}
    for hour, (pain, context) in enumerate(steps, start=1):
        add_checkin(db, NOW - timedelta(days=1) + timedelta(hours=hour), pain, context)
        rules.sweep(NOW + timedelta(hours=hour))
        for alert in alerts(db):
            rank = Recommendation(alert.recommendation).rank
            assert rank >= seen.get(alert.id, rank), alert.rule_id
            seen[alert.id] = rank


# --- the new check-in fields over the wire -----------------------------------------------------


def test_new_checkin_fields_are_stored_and_fire_at_ingest(
    live: tuple[Engine, DeviceClient],
) -> None:
    engine, device = live
    signs = checkin_payload(
        pain_score=2,
        context="daily",
        symptoms={"numbness": True, "redness_warmth": True},
        stopped_run=True,
    )
    older = checkin_payload(pain_score=1, context="daily", symptoms={"swelling": False})
    for payload in (signs, older):
        device.publish(CHECKIN_TOPIC, payload)
        assert device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    with engine.connect() as conn:
        rows = {
            r.uuid: (r.numbness, r.redness_warmth, r.stopped_run)
            for r in conn.execute(select(Checkin))
        }
    assert rows == {
        signs["header"]["uuid"]: (True, True, True),
        older["header"]["uuid"]: (False, False, False),
    }
    assert wait_until(lambda: len(alerts(engine)) == 1, 5)
    (alert,) = alerts(engine)
    assert alert.rule_id == "redflag.professional_signs"
    assert {k for k, v in alert.evidence.items() if v is True} == {
        "numbness",
        "redness_warmth",
        "stopped_run",
    }


@pytest.mark.parametrize("bad", [{"symptoms": {"numbness": "yes"}}, {"stopped_run": 1}])
def test_a_new_field_of_the_wrong_type_is_refused_and_nothing_is_stored(
    live: tuple[Engine, DeviceClient], bad: dict[str, Any]
) -> None:
    engine, device = live
    payload = checkin_payload(pain_score=2, **bad)
    device.publish(CHECKIN_TOPIC, payload)
    ack = device.ack_for(payload["header"]["uuid"])
    assert ack["status"] == "rejected"
    field = "symptoms.numbness" if "symptoms" in bad else "stopped_run"
    assert any(e["loc"].endswith(field) for e in ack["errors"]), ack
    with engine.connect() as conn:
        assert conn.execute(select(Checkin)).all() == []
