"""The coach digest of RULES.md v2 on SQLite and PostgreSQL: pain, sites and notes of athletes
with an open alert, rule titles and actions in words, third-person summaries, and numbers that
follow the rules configuration."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, insert, update

from db.models import Alert, Athlete, Coach
from notifier.digest import DigestContent, build_digest, period_ending
from rules import metrics
from rules.config import RulesConfig
from testsupport import insert_checkin, insert_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday; London is on GMT
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)


def day(offset: int, hour: int, minute: int = 0) -> datetime:
    return NOW.replace(hour=hour, minute=minute) + timedelta(days=offset)


def add_coach(conn: Connection, coach_id: str, name: str) -> None:
    conn.execute(
        insert(Coach),
        [{"id": coach_id, "name": name, "email": f"{coach_id}@example.com",
          "timezone": "Europe/London", "digest": "daily", "digest_hour": 7,
          "channels": "email", "created_at": LONG_AGO}],
    )  # fmt: skip


def add_athlete(conn: Connection, athlete_id: str, name: str, coach_id: str) -> None:
    conn.execute(
        insert(Athlete),
        [{"id": athlete_id, "name": name, "email": f"{athlete_id}@example.com",
          "timezone": "Europe/London", "coach_id": coach_id, "created_at": LONG_AGO}],
    )  # fmt: skip


def add_alert(
    conn: Connection,
    athlete_id: str,
    rule_id: str,
    severity: str,
    opened_at: datetime,
    message: str,
    *,
    recommendation: str = "monitor",
) -> None:
    conn.execute(
        insert(Alert),
        [{"athlete_id": athlete_id, "rule_id": rule_id, "severity": severity,
          "recommendation": recommendation, "status": "open", "opened_at": opened_at,
          "last_triggered_at": opened_at, "updated_at": opened_at, "message": message,
          "evidence": {}}],
    )  # fmt: skip


def digest(engine: Engine, config: RulesConfig | None = None) -> DigestContent:
    period = period_ending("Europe/London", "daily", 7, NOW)
    assert period is not None
    with engine.connect() as conn:
        return build_digest(conn, "cora", period[0], period[1], NOW, config=config)


def person(content: DigestContent, athlete_id: str) -> dict[str, Any]:
    return next(a for a in content.data["athletes"] if a["id"] == athlete_id)


@pytest.fixture
def team(engine: Engine) -> Engine:
    """Cora coaches ann (an open warning, painful check-ins today) and bo (no alert)."""
    with engine.begin() as conn:
        add_coach(conn, "cora", "Cora Coach")
        add_athlete(conn, "ann", "Ann Runner", "cora")
        add_athlete(conn, "bo", "Bo Local", "cora")
        lateral = [{"side": "left", "aspect": "lateral"}]
        insert_checkin(conn, "ann", day(-1, 10), 3, pain_sites=lateral)
        insert_checkin(conn, "ann", day(-1, 19), 7, note="Sharp on the stairs")
        insert_checkin(conn, "ann", day(0, 8), 5, "next_morning", pain_sites=lateral)
        insert_checkin(conn, "ann", day(-5, 8), 9, "daily", note="older than the period")
        insert_checkin(conn, "bo", day(0, 8), 4, "daily", note="BO-NOTE")
        add_alert(
            conn,
            "ann",
            "pain.high",
            "warning",
            day(-1, 19, 5),
            "Seen: Your check-in reports pain of 7/10.\nMore.",
            recommendation="rest",
        )
        conn.execute(
            update(Alert).values(
                coach_message="Seen: {athlete}'s check-in reports pain of 7/10.\nMore."
            )
        )
    return engine


def test_an_athlete_with_an_open_alert_shows_the_periods_pain_sites_and_note(
    team: Engine,
) -> None:
    content = digest(team)
    ann = person(content, "ann")
    assert (ann["pain_latest"], ann["pain_highest"]) == (5, 7)
    assert ann["pain_sites"] == ["left outside of the knee"]
    assert ann["note"] == "Sharp on the stairs"
    for body in (content.text, content.html):
        assert "latest 5/10, highest 7/10" in body
        assert "left outside of the knee" in body
        assert "Sharp on the stairs" in body
    assert "often linked with the iliotibial band" in content.text  # a warning: hedged note
    assert "older than the period" not in content.text
    bo = person(content, "bo")  # no open alert: numbers only
    assert bo["pain_latest"] is None and "BO-NOTE" not in content.text


def test_no_hedged_association_next_to_an_urgent_alert(team: Engine) -> None:
    with team.begin() as conn:
        add_alert(conn, "ann", "redflag.locked_knee", "urgent", day(0, 9), "Seen: locked.",
                  recommendation="urgent_care")  # fmt: skip
    content = digest(team)
    assert "left outside of the knee" in content.text
    assert "iliotibial" not in content.text and "iliotibial" not in content.html


def test_alert_lines_speak_of_the_athlete_with_titles_and_actions_in_words(team: Engine) -> None:
    with team.begin() as conn:
        add_alert(conn, "ann", "redflag.locked_knee", "urgent", day(0, 9), "Seen: locked.",
                  recommendation="urgent_care")  # fmt: skip
    content = digest(team)
    assert "Seen: Ann Runner's check-in reports pain of 7/10." in content.text
    assert "Your check-in" not in content.text
    assert "High pain during or after a run, rest from running" in content.text
    assert "Locked knee, stop running, same-day help" in content.text
    for raw in ("redflag.locked_knee", "urgent_care", "pain.high"):
        assert raw not in content.text and raw not in content.html
    assert {a["rule_id"] for a in content.data["open_alerts"]} == {
        "pain.high",
        "redflag.locked_knee",
    }


def test_a_first_week_of_check_ins_is_not_called_steady(engine: Engine) -> None:
    with engine.begin() as conn:
        add_coach(conn, "cora", "Cora Coach")
        add_athlete(conn, "ann", "Ann Runner", "cora")
        insert_checkin(conn, "ann", day(-3, 19), 6)
        insert_checkin(conn, "ann", day(-1, 19), 4)
    content = digest(engine)
    assert person(content, "ann")["pain_trend"] == "no earlier week"
    assert "pain no earlier week" in content.text and "steady" not in content.text


def test_the_digest_reads_acwr_windows_and_the_pain_threshold_from_the_rules(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        add_coach(conn, "cora", "Cora Coach")
        add_athlete(conn, "ann", "Ann Runner", "cora")
        for offset in range(-41, 1):
            insert_run(conn, "ann", day(offset, 7), 8.0 if offset > -4 else 5.0)
        for offset in (-12, -10, -8):
            insert_checkin(conn, "ann", day(offset, 18), 2, "daily")
        for offset in (-5, -3, -1):
            insert_checkin(conn, "ann", day(offset, 18), 3, "daily")
    series = [5.0] * 38 + [8.0] * 4
    default = digest(engine)
    assert person(default, "ann")["acwr"] == pytest.approx(metrics.acwr(series, 7, 28), abs=1e-3)
    assert person(default, "ann")["pain_trend"] == "rising"
    tuned = RulesConfig.model_validate(
        {
            "rules": {
                "load.acwr": {"acute_days": 3, "chronic_days": 14},
                "pain.rising": {"min_rise_points": 1.5},
            }
        }
    )
    content = digest(engine, tuned)
    assert person(content, "ann")["acwr"] == pytest.approx(metrics.acwr(series, 3, 14), abs=1e-3)
    assert person(content, "ann")["pain_trend"] == "steady"
    assert "(3 and 14 days)" in content.text and "(7 and 28 days)" in default.text
