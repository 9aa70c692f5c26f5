"""Coach digests on SQLite and PostgreSQL: who is in them, their numbers, and that a period is
claimed once — across restarts, concurrent schedulers and DST changes."""

from __future__ import annotations

import json
import logging
import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from jinja2 import PackageLoader
from sqlalchemy import Connection, Engine, func, insert, select, update

from db.engine import make_engine
from db.models import Alert, Athlete, Coach, Delivery, Digest
from notifier.digest import DigestContent, build_digest, period_ending, send_due_digests
from testsupport import insert_checkin, insert_run

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)  # a Friday; London is on GMT (UTC+0)
LONG_AGO = datetime(2026, 1, 1, tzinfo=UTC)
H = timedelta(hours=1)


def day(offset: int, hour: int, minute: int = 0) -> datetime:
    """An instant `offset` days from NOW's date at hour:minute UTC."""
    return NOW.replace(hour=hour, minute=minute) + timedelta(days=offset)


# --- test data --------------------------------------------------------------------------------


def add_coach(
    conn: Connection,
    coach_id: str,
    name: str,
    *,
    timezone: str = "Europe/London",
    digest: str = "daily",
    hour: int = 7,
    channels: str = "email",
    webhook_url: str | None = None,
    created_at: datetime = LONG_AGO,
) -> None:
    conn.execute(
        insert(Coach),
        [
            {
                "id": coach_id,
                "name": name,
                "email": f"{coach_id}@example.com",
                "timezone": timezone,
                "digest": digest,
                "digest_hour": hour,
                "channels": channels,
                "webhook_url": webhook_url,
                "webhook_secret": "s3cret" if webhook_url else None,
                "created_at": created_at,
            }
        ],
    )


def add_athlete(
    conn: Connection, athlete_id: str, name: str, coach_id: str, timezone: str = "Europe/London"
) -> None:
    conn.execute(
        insert(Athlete),
        [
            {
                "id": athlete_id,
                "name": name,
                "email": f"{athlete_id}@example.com",
                "timezone": timezone,
                "coach_id": coach_id,
                "created_at": LONG_AGO,
            }
        ],
    )


def add_alert(
    conn: Connection,
    athlete_id: str,
    rule_id: str,
    severity: str,
    opened_at: datetime,
    message: str,
    *,
    status: str = "open",
    recommendation: str = "monitor",
) -> None:
    conn.execute(
        insert(Alert),
        [
            {
                "athlete_id": athlete_id,
                "rule_id": rule_id,
                "severity": severity,
                "recommendation": recommendation,
                "status": status,
                "opened_at": opened_at,
                "last_triggered_at": opened_at,
                "updated_at": opened_at,
                "resolved_at": opened_at + H if status == "resolved" else None,
                "message": message,
                "evidence": {},
            }
        ],
    )


@pytest.fixture
def club(engine: Engine) -> Engine:
    """Two coaches. Cora: ann (daily 5 km, pain rising, two unanswered runs, an urgent alert),
    bo (New York, so local days differ from UTC days) and an athlete named like a script.
    Bert: zed, whose data must never reach Cora."""
    with engine.begin() as conn:
        add_coach(
            conn,
            "cora",
            "Cora Coach",
            channels="email,webhook",
            webhook_url="https://coach.example/hook",
        )
        add_coach(conn, "bert", "Bert Coach")
        add_athlete(conn, "ann", "Ann Runner", "cora")
        add_athlete(conn, "bo", "Bo Local", "cora", timezone="America/New_York")
        add_athlete(conn, "sam", "<script>alert(1)</script>", "cora")
        add_athlete(conn, "zed", "Zed Zebra", "bert")

        # ann: 5 km every day at 07:00 for six weeks, today's run included.
        runs = {offset: insert_run(conn, "ann", day(offset, 7), 5.0) for offset in range(-41, 1)}
        insert_run(conn, "ann", day(0, 13), 20.0)  # after now: not known yet
        insert_checkin(conn, "ann", day(-6, 8), 4)  # answers day -6 by time
        insert_checkin(conn, "ann", day(-4, 9), 4, related_run_uuid=runs[-5])  # names day -5's run
        insert_checkin(conn, "ann", day(-2, 6), 4, "next_morning")  # not post_run: -3 unanswered
        insert_checkin(conn, "ann", day(-1, 8), 4)  # after day -1's run, so not day -2's
        insert_checkin(conn, "ann", day(0, 11), 4)
        insert_checkin(conn, "ann", day(0, 13), 10)  # after now
        for offset in (-10, -8):
            insert_checkin(conn, "ann", day(offset, 18), 2, "daily")
        insert_checkin(conn, "ann", day(-7, 0, 30), 2, "daily")  # first minutes of the week before
        insert_checkin(conn, "ann", day(-15, 8), 9, "daily")  # older than both weeks

        # bo, New York (UTC-5): 03:00 UTC on the 14th is still the 13th there.
        insert_run(conn, "bo", datetime(2026, 11, 14, 3, 0, tzinfo=UTC), 10.0)
        insert_run(conn, "bo", datetime(2026, 11, 19, 15, 0, tzinfo=UTC), 6.0)
        insert_checkin(conn, "bo", datetime(2026, 11, 19, 16, 30, tzinfo=UTC), 1)
        insert_checkin(conn, "bo", datetime(2026, 11, 13, 12, 0, tzinfo=UTC), 3, "daily")
        insert_checkin(conn, "bo", datetime(2026, 11, 14, 4, 0, tzinfo=UTC), 5, "daily")

        insert_run(conn, "zed", day(-1, 7), 30.0)
        insert_checkin(conn, "zed", day(-1, 9), 8)

        add_alert(
            conn,
            "ann",
            "redflag.locked_knee",
            "urgent",
            day(0, 10),
            "Your knee locked during or after a run.\nSecond line stays out.",
            recommendation="urgent_care",
        )
        add_alert(
            conn,
            "bo",
            "pain.high",
            "warning",
            day(-3, 9),
            "Post-run pain 7/10.\nMore.",
            status="acknowledged",
            recommendation="rest",
        )
        add_alert(conn, "ann", "load.acwr", "info", day(-1, 20), "ACWR 1.6", status="resolved")
        add_alert(conn, "ann", "load.weekly_ramp", "info", day(-3, 9), "ramp", status="resolved")
        add_alert(
            conn,
            "zed",
            "redflag.acute_injury",
            "urgent",
            day(-1, 10),
            "ZED-SECRET trauma",
            recommendation="urgent_care",
        )
    return engine


def digest_of(engine: Engine, coach_id: str, now: datetime = NOW) -> DigestContent:
    period = period_ending("Europe/London", "daily", 7, now)
    assert period is not None
    with engine.connect() as conn:
        return build_digest(conn, coach_id, period[0], period[1], now)


def everything(content: DigestContent) -> str:
    return "\n".join((content.subject, content.text, content.html, json.dumps(content.data)))


def athletes_by_id(content: DigestContent) -> dict[str, dict[str, Any]]:
    return {a["id"]: a for a in content.data["athletes"]}


# --- content ----------------------------------------------------------------------------------


def test_a_coach_digest_never_mentions_another_coachs_athletes(club: Engine) -> None:
    cora, bert = digest_of(club, "cora"), digest_of(club, "bert")
    assert set(athletes_by_id(cora)) == {"ann", "bo", "sam"}
    assert {a["athlete_id"] for a in cora.data["open_alerts"]} == {"ann", "bo"}
    for secret in ("Zed Zebra", "ZED-SECRET", "redflag.acute_injury", '"zed"', "30.0"):
        assert secret not in everything(cora)
    assert set(athletes_by_id(bert)) == {"zed"}
    assert "Zed Zebra" in bert.text and "ZED-SECRET trauma" in bert.text
    for secret in ("Ann Runner", "Bo Local", "redflag.locked_knee", "pain.high", '"ann"'):
        assert secret not in everything(bert)


def test_athlete_numbers_use_local_days_and_the_shared_metrics(club: Engine) -> None:
    content = digest_of(club, "cora")
    people = athletes_by_id(content)
    # Six weeks of 5 km/day: both averages start from the first week's mean, 5 km/day, and
    # stay there (RULES.md v2), so the ratio is exactly 1.
    expected = 1.0
    ann = people["ann"]
    assert (ann["km_7d"], ann["runs_7d"], ann["pain_trend"]) == (35.0, 7, "rising")
    assert ann["acwr"] == pytest.approx(expected, abs=1e-3)
    assert (ann["pain_mean_7d"], ann["pain_mean_prev_7d"]) == (4.0, 2.0)
    assert ann["missing_checkins"] == 2  # day -3 (only a next_morning) and day -2
    assert f"Ann Runner: 35.0 km in 7 runs; ACWR {expected:.2f}; pain rising; " in content.text
    bo = people["bo"]
    # Local days: the 10 km run and the pain-5 check-in fall on the 13th in New York.
    assert (bo["km_7d"], bo["runs_7d"], bo["acwr"], bo["pain_trend"]) == (6.0, 1, None, "falling")
    assert (bo["pain_mean_7d"], bo["pain_mean_prev_7d"], bo["missing_checkins"]) == (1.0, 4.0, 0)
    assert "Bo Local: 6.0 km in 1 run; ACWR –; pain falling; missing check-ins 0" in content.text
    sam = people["sam"]
    assert (sam["km_7d"], sam["acwr"], sam["pain_trend"], sam["missing_checkins"]) == (
        0.0,
        None,
        "no check-ins",
        0,
    )


def test_alerts_are_grouped_by_severity_with_the_first_line_of_the_message(
    club: Engine,
) -> None:
    content = digest_of(club, "cora")
    assert content.subject == "KneeGuard digest for Cora Coach — 2 open alerts (1 urgent)"
    counts = content.data["counts"]
    assert (counts["open"], counts["urgent"], counts["warning"], counts["info"]) == (2, 1, 1, 0)
    text = content.text
    assert text.index("URGENT") < text.index("Locked knee") < text.index("WARNING")
    # Rule titles and recommendations in words, not ids.
    assert "Ann Runner: Locked knee, stop running, same-day help, opened 2026-11-20" in text
    assert "redflag.locked_knee" not in text and "redflag.locked_knee" not in content.html
    assert "Locked knee" in content.html and "#b00020" in content.html
    assert "Your knee locked during or after a run." in text
    assert "Second line stays out." not in everything(content)
    assert (
        "Bo Local: High pain during or after a run, rest from running, opened 2026-11-17"
        " (acknowledged)" in text
    )
    # Opened in [Nov 19 07:00, Nov 20 07:00): the since-resolved ACWR alert only.
    assert [a["rule_id"] for a in content.data["opened_in_period"]] == ["load.acwr"]
    assert "load.weekly_ramp" not in everything(content)
    assert content.data["period_start"] == "2026-11-19T07:00:00+00:00"
    assert content.data["period_end"] == "2026-11-20T07:00:00+00:00"


def test_nothing_to_report_is_a_short_all_clear_that_still_lists_the_numbers(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        add_coach(conn, "dana", "Dana Coach")
        add_athlete(conn, "eve", "Eve Steady", "dana")
        for offset in (-9, -2):
            run = insert_run(conn, "eve", day(offset, 7), 8.0)
            insert_checkin(conn, "eve", day(offset, 9), 2, related_run_uuid=run)
        add_alert(conn, "eve", "pain.high", "warning", day(-5, 9), "old", status="resolved")
    content = digest_of(engine, "dana")
    assert content.subject == "KneeGuard digest for Dana Coach — all clear"
    assert content.data["all_clear"] is True
    assert "All clear" in content.text and "All clear" in content.html
    assert "Open alerts" not in content.text
    assert "Eve Steady: 8.0 km in 1 run; ACWR –; pain steady; missing check-ins 0" in content.text


def test_html_escapes_names_and_text_keeps_them(club: Engine) -> None:
    with club.begin() as conn:
        conn.execute(update(Coach).where(Coach.id == "cora").values(name="Cora & <b>Co</b>"))
    content = digest_of(club, "cora")
    assert "<script>" not in content.html and "<b>Co</b>" not in content.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in content.html
    assert "Cora &amp; &lt;b&gt;Co&lt;/b&gt;" in content.html
    assert "<script>alert(1)</script>: 0.0 km" in content.text


def test_the_templates_are_compiled_once_not_for_every_digest(
    club: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reproduction: every digest loaded and compiled both its templates again, so building
    1,000 coaches' digests took 16 times a bare scan of the rows they read (bench/digests.py)."""
    loads: list[str] = []
    original = PackageLoader.get_source

    def counted(loader: PackageLoader, environment: Any, template: str) -> Any:
        loads.append(template)
        return original(loader, environment, template)

    monkeypatch.setattr(PackageLoader, "get_source", counted)
    digest_of(club, "cora")
    loads.clear()
    digest_of(club, "cora")
    assert loads == []


# --- periods ----------------------------------------------------------------------------------


def local_hour(instant: datetime, zone: str = "Europe/London") -> int:
    return instant.astimezone(ZoneInfo(zone)).hour


def test_daily_periods_end_at_the_local_hour_across_both_dst_changes() -> None:
    spring = period_ending("Europe/London", "daily", 7, datetime(2026, 3, 29, 6, 30, tzinfo=UTC))
    assert spring == (
        datetime(2026, 3, 28, 7, tzinfo=UTC),  # 07:00 GMT
        datetime(2026, 3, 29, 6, tzinfo=UTC),  # 07:00 BST
    )
    autumn = period_ending("Europe/London", "daily", 7, datetime(2026, 10, 25, 8, tzinfo=UTC))
    assert autumn == (
        datetime(2026, 10, 24, 6, tzinfo=UTC),  # 07:00 BST
        datetime(2026, 10, 25, 7, tzinfo=UTC),  # 07:00 GMT
    )
    for start, end in (spring, autumn):
        assert (local_hour(start), local_hour(end)) == (7, 7)
    assert spring[1] - spring[0] == timedelta(hours=23)
    assert autumn[1] - autumn[0] == timedelta(hours=25)
    # Before today's hour the period is yesterday's.
    assert period_ending("Europe/London", "daily", 7, datetime(2026, 3, 29, 5, 59, tzinfo=UTC)) == (
        datetime(2026, 3, 27, 7, tzinfo=UTC),
        datetime(2026, 3, 28, 7, tzinfo=UTC),
    )


def test_a_nonexistent_or_repeated_hour_uses_fold_zero() -> None:
    # 01:00 does not exist in London on 29 March: read as 01:00 GMT, i.e. 02:00 BST.
    gap = period_ending("Europe/London", "daily", 1, datetime(2026, 3, 29, 3, tzinfo=UTC))
    assert gap is not None and gap[1] == datetime(2026, 3, 29, 1, tzinfo=UTC)
    # 01:00 happens twice on 25 October: the first one, still BST.
    fold = period_ending("Europe/London", "daily", 1, datetime(2026, 10, 25, 3, tzinfo=UTC))
    assert fold is not None and fold[1] == datetime(2026, 10, 25, 0, tzinfo=UTC)


def test_weekly_periods_end_on_monday_at_the_local_hour() -> None:
    assert period_ending("Europe/London", "weekly", 7, NOW) == (
        datetime(2026, 11, 9, 7, tzinfo=UTC),
        datetime(2026, 11, 16, 7, tzinfo=UTC),
    )
    monday_before = datetime(2026, 11, 16, 6, 59, tzinfo=UTC)
    period = period_ending("Europe/London", "weekly", 7, monday_before)
    assert period is not None and period[1] == datetime(2026, 11, 9, 7, tzinfo=UTC)
    # New York leaves DST on Sunday 1 November 2026: that week is 169 hours long.
    week = period_ending("America/New_York", "weekly", 7, datetime(2026, 11, 4, tzinfo=UTC))
    assert week is not None
    start, end = week
    assert week == (
        datetime(2026, 10, 26, 11, tzinfo=UTC),
        datetime(2026, 11, 2, 12, tzinfo=UTC),
    )
    assert end - start == timedelta(hours=169)
    assert end.astimezone(ZoneInfo("America/New_York")).weekday() == 0
    assert local_hour(end, "America/New_York") == 7
    assert period_ending("Europe/London", "off", 7, NOW) is None


def test_period_ending_refuses_bad_input() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        period_ending("Europe/London", "daily", 7, datetime(2026, 11, 20, 12))
    with pytest.raises(ValueError, match="cadence"):
        period_ending("Europe/London", "hourly", 7, NOW)
    with pytest.raises(ValueError, match="hour"):
        period_ending("Europe/London", "daily", 24, NOW)


# --- sending ----------------------------------------------------------------------------------


def digests(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Digest).order_by(Digest.id)))


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery).order_by(Delivery.id)))


def no_errors_logged(caplog: pytest.LogCaptureFixture) -> bool:
    """A failing coach is logged and skipped, so a swallowed error must fail the test."""
    return not [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_sending_twice_makes_one_digest_and_one_delivery_per_channel(
    club: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    first = send_due_digests(club, NOW)
    assert len(first) == 2  # cora and bert
    assert send_due_digests(club, NOW) == []
    assert send_due_digests(club, NOW + 5 * H) == []  # same period, later run
    rows = {d.coach_id: d for d in digests(club)}
    assert set(rows) == {"cora", "bert"}
    cora = rows["cora"]
    assert cora.subject == "KneeGuard digest for Cora Coach — 2 open alerts (1 urgent)"
    assert cora.period == "daily" and cora.period_end == datetime(2026, 11, 20, 7, tzinfo=UTC)
    assert cora.data["coach_id"] == "cora" and cora.data["digest_id"] == cora.id
    assert "Ann Runner" in cora.text and "Zed Zebra" not in cora.text
    sent = [(d.recipient_id, d.channel) for d in deliveries(club)]
    assert sorted(sent) == [("bert", "email"), ("cora", "email"), ("cora", "webhook")]
    for row in deliveries(club):
        assert row.dedup_key == f"digest:{row.digest_id}:{row.channel}"
        assert (row.reason, row.recipient_kind, row.status, row.alert_id) == (
            "digest",
            "coach",
            "pending",
            None,
        )
        assert row.due_at == NOW
    # The next day is a new period starting where this one ended.
    (nxt,) = send_due_digests(club, NOW + timedelta(days=1), coach_id="cora")
    latest = digests(club)[-1]
    assert (latest.id, latest.period_start) == (nxt, cora.period_end)
    assert no_errors_logged(caplog)


def test_only_available_channels_and_a_webhook_with_a_url_get_rows(engine: Engine) -> None:
    with engine.begin() as conn:
        add_coach(conn, "cora", "Cora Coach", channels="email,webhook", webhook_url="https://x")
        add_coach(conn, "nora", "Nora Coach", channels="webhook")  # no URL
    send_due_digests(engine, NOW, available_channels=("email",))
    assert [(d.recipient_id, d.channel) for d in deliveries(engine)] == [("cora", "email")]
    assert len(digests(engine)) == 2  # recorded even with nothing to deliver


def test_two_schedulers_at_once_send_each_digest_once(
    db_url: str, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with engine.begin() as conn:
        for n in range(6):
            add_coach(conn, f"c{n}", f"Coach {n}", channels="email")
            add_athlete(conn, f"a{n}", f"Athlete {n}", f"c{n}")
            add_alert(conn, f"a{n}", "pain.high", "warning", day(-1, 9), "pain")
    barrier = threading.Barrier(2)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        own = make_engine(db_url)
        try:
            barrier.wait(5)
            results.append(send_due_digests(own, NOW))
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.dispose()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == [] and no_errors_logged(caplog)
    won = [digest_id for ids in results for digest_id in ids]
    assert len(results) == 2 and len(won) == len(set(won)) == 6
    assert sorted(d.coach_id for d in digests(engine)) == [f"c{n}" for n in range(6)]
    assert len(deliveries(engine)) == 6


@pytest.mark.parametrize(
    ("sent_at", "silent_until", "expected_end", "hours"),
    [
        (  # spring forward: 07:00 GMT, then 07:00 BST
            datetime(2026, 3, 28, 7, tzinfo=UTC),
            datetime(2026, 3, 29, 5, 59, tzinfo=UTC),
            datetime(2026, 3, 29, 6, tzinfo=UTC),
            23,
        ),
        (  # fall back: 07:00 BST, then 07:00 GMT
            datetime(2026, 10, 24, 6, tzinfo=UTC),
            datetime(2026, 10, 25, 6, 59, tzinfo=UTC),
            datetime(2026, 10, 25, 7, tzinfo=UTC),
            25,
        ),
    ],
)
def test_the_digest_goes_out_at_the_local_hour_across_dst(
    engine: Engine, sent_at: datetime, silent_until: datetime, expected_end: datetime, hours: int
) -> None:
    with engine.begin() as conn:
        add_coach(conn, "cora", "Cora Coach")
    assert len(send_due_digests(engine, sent_at)) == 1
    assert send_due_digests(engine, silent_until) == []
    assert len(send_due_digests(engine, expected_end)) == 1
    first, second = digests(engine)
    assert (second.period_start, second.period_end) == (first.period_end, expected_end)
    assert second.period_end - second.period_start == timedelta(hours=hours)
    assert local_hour(first.period_end) == local_hour(second.period_end) == 7


def test_weekly_coaches_get_a_weekly_digest_ending_monday(engine: Engine) -> None:
    with engine.begin() as conn:
        add_coach(conn, "wendy", "Wendy Weekly", digest="weekly", hour=6)
    (digest_id,) = send_due_digests(engine, NOW)
    (row,) = digests(engine)
    assert (row.id, row.period) == (digest_id, "weekly")
    assert row.period_end == datetime(2026, 11, 16, 6, tzinfo=UTC)
    assert row.period_end.weekday() == 0
    assert row.period_start == datetime(2026, 11, 9, 6, tzinfo=UTC)


def test_off_coaches_get_nothing_unless_forced(engine: Engine) -> None:
    with engine.begin() as conn:
        add_coach(conn, "otto", "Otto Off", digest="off")
        add_coach(conn, "newt", "Newt New", created_at=NOW - H)  # joined after 07:00
    assert send_due_digests(engine, NOW) == []
    assert send_due_digests(engine, NOW, coach_id="otto") == []
    forced_at = NOW + timedelta(seconds=42, microseconds=7)
    (digest_id,) = send_due_digests(engine, forced_at, coach_id="otto", force=True)
    (row,) = digests(engine)
    assert (row.id, row.coach_id, row.period) == (digest_id, "otto", "daily")
    assert (row.period_start, row.period_end) == (NOW - timedelta(days=1), NOW)
    assert len(deliveries(engine)) == 1
    # Forcing again in the same minute is the same period; later, it follows on.
    assert send_due_digests(engine, forced_at, coach_id="otto", force=True) == []
    send_due_digests(engine, NOW + 2 * H, force=True)
    later = {d.coach_id: d for d in digests(engine)[1:]}
    assert later["otto"].period_start == NOW
    assert later["newt"].period_start == NOW + 2 * H - timedelta(days=1)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Digest)).scalar_one() == 3
    with pytest.raises(LookupError, match="nobody"):
        send_due_digests(engine, NOW, coach_id="nobody")


def test_acwr_formula_reference_is_sane() -> None:
    """The hand formula the numbers test uses, checked against a direct EWMA loop."""
    acute = chronic = 0.0
    for n in range(42):
        acute = 0.25 * 5 + 0.75 * acute
        if n < 35:
            chronic = (2 / 29) * 5 + (27 / 29) * chronic
    assert math.isclose(acute / chronic, (1 - 0.75**42) / (1 - (27 / 29) ** 35))
