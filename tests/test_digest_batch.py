"""Digests of many coaches built and sent together: the same bytes as one coach at a time, and a
failing coach still costs the others nothing — on SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from db.models import Delivery, Digest
from notifier.digest import build_digest, send_due_digests
from notifier.digest import send as digest_send
from notifier.digest.content import build_digests
from tests.test_digest import NOW, add_alert, add_athlete, add_coach, day
from testsupport import insert_checkin, insert_run

ZONES = ("Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Auckland", "UTC")
SEVERITIES = ("urgent", "warning", "info")
STATUSES = ("open", "acknowledged", "resolved")
RULES = ("redflag.locked_knee", "pain.high", "load.acwr", "load.weekly_ramp", "redflag.severe_pain")
SITES: tuple[list[dict[str, str]], ...] = (
    [{"side": "left", "aspect": "lateral"}],
    [{"side": "both", "aspect": "anterior"}, {"side": "right", "aspect": "medial"}],
    [],
)


@pytest.fixture
def clubs(engine: Engine) -> Engine:
    """Six coaches with varied data: their own and their athletes' time zones, alerts of every
    severity and status opened before, in and after their period, runs over six weeks, check-ins
    of every context with pain sites and notes; a coach with no athletes; an athlete with none."""
    with engine.begin() as conn:
        for c in range(6):
            coach = f"coach{c}"
            add_coach(
                conn,
                coach,
                f"Coach {c} & <i>co</i>",
                timezone=ZONES[c % len(ZONES)],
                digest="weekly" if c % 3 == 2 else "daily",
                hour=6 + c,
                channels="email,webhook" if c % 2 else "email",
                webhook_url="https://coach.example/hook" if c % 2 else None,
            )
            if c == 5:
                continue  # no athletes
            for a in range(3 + c % 3):
                athlete = f"ath{c}_{a}"
                add_athlete(
                    conn, athlete, f"Runner {(7 * a + c) % 5} {c}", coach, ZONES[(a + c) % 5]
                )
                for offset in range(-41 + 3 * a + c, 1, 1 + (a + c) % 3):
                    run = insert_run(conn, athlete, day(offset, 5 + (a * 7 + offset) % 14), 4.0 + a)
                    if (offset + a) % 4:
                        insert_checkin(
                            conn,
                            athlete,
                            day(offset, 20, 5 * a),
                            (offset * 7 + a + c) % 11,
                            ("post_run", "next_morning", "daily")[(offset + c) % 3],
                            related_run_uuid=run if offset % 5 == 0 else None,
                            pain_sites=SITES[(offset + a) % 3],
                            note=f"  felt it  on the hills {offset}\n" if offset % 3 == 0 else None,
                        )
                for n in range(c + a + 1):
                    add_alert(
                        conn,
                        athlete,
                        RULES[n] if n < len(RULES) else f"custom.rule{n}",
                        SEVERITIES[(n + a) % 3],
                        NOW - timedelta(hours=7 * n + 13 * a + 5 * c),
                        f"Alert {n} of {athlete}\nsecond line",
                        status=STATUSES[(n + c) % 3],
                        recommendation=("rest", "urgent_care", "monitor")[n % 3],
                    )
        add_athlete(conn, "nobody_s", "Nobody's Runner", "coach0")
        conn.exec_driver_sql("UPDATE athletes SET coach_id = NULL WHERE id = 'nobody_s'")
    return engine


def periods() -> dict[str, tuple[datetime, datetime]]:
    """A different period for each coach, some reaching beyond the alerts, some ending at now."""
    return {
        f"coach{c}": (NOW - timedelta(days=1 + 2 * c, hours=c), NOW - timedelta(hours=3 * (c % 2)))
        for c in range(6)
    }


def as_tuple(content: Any) -> tuple[str, str, str, dict[str, Any]]:
    return content.subject, content.text, content.html, content.data


def test_many_coaches_built_together_match_each_built_alone(clubs: Engine) -> None:
    with clubs.connect() as conn:
        together = build_digests(conn, periods(), NOW)
        alone = {
            coach: build_digest(conn, coach, start, end, NOW)
            for coach, (start, end) in periods().items()
        }
    assert list(together) == list(periods())
    for coach, content in alone.items():
        assert as_tuple(together[coach]) == as_tuple(content), coach
    # The data is varied enough to show what a mix-up would: alerts open and opened in the
    # period, pain sites, notes, and a coach with nobody.
    assert all(alone[f"coach{c}"].data["open_alerts"] for c in range(1, 5))
    assert any(alone[c].data["opened_in_period"] for c in alone)
    assert any("Note:" in alone[c].text for c in alone)
    assert any("sites:" in alone[c].text for c in alone)
    assert "No athletes are assigned to you." in alone["coach5"].text
    assert "Nobody's Runner" not in "".join(c.text for c in alone.values())


def test_a_round_of_digests_stores_what_each_coach_built_alone_would(clubs: Engine) -> None:
    sent_at = NOW + timedelta(seconds=17)
    ids = send_due_digests(clubs, sent_at, force=True)
    with clubs.connect() as conn:
        rows = conn.execute(select(Digest).order_by(Digest.id)).all()
        assert [row.id for row in rows] == ids and len(ids) == 6
        for row in rows:
            content = build_digest(conn, row.coach_id, row.period_start, sent_at, sent_at)
            data = {**content.data, "digest_id": row.id, "period": row.period}
            assert (row.subject, row.text, row.html, row.data) == (
                content.subject,
                content.text,
                content.html,
                data,
            )


def test_coaches_are_sent_in_chunks_each_claimed_once(
    clubs: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(digest_send, "CHUNK", {"postgresql": 4, "sqlite": 4})
    first = send_due_digests(clubs, NOW, force=True)
    assert len(first) == 6
    assert send_due_digests(clubs, NOW, force=True) == []
    with clubs.connect() as conn:
        coaches = conn.execute(select(Digest.coach_id).order_by(Digest.id)).scalars().all()
        channels = conn.execute(select(Delivery.recipient_id, Delivery.channel)).all()
    assert coaches == [f"coach{c}" for c in range(6)]
    assert sorted(channels) == sorted(
        [(f"coach{c}", "email") for c in range(6)]
        + [(f"coach{c}", "webhook") for c in range(1, 6, 2)]
    )


def test_a_failing_coach_leaves_the_others_digests_and_deliveries_committed(
    clubs: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """One coach's athlete has a time zone that does not exist: building that coach's digest
    fails, in the same chunk as the others'. The others are sent; that coach is logged and gets
    a digest on the next run once the data is right."""
    with clubs.begin() as conn:
        conn.exec_driver_sql("UPDATE athletes SET timezone = 'Mars/Olympus' WHERE id = 'ath3_0'")
    with caplog.at_level(logging.WARNING):
        ids = send_due_digests(clubs, NOW, force=True)
    assert len(ids) == 5
    with clubs.connect() as conn:
        stored = conn.execute(select(Digest.coach_id, Digest.text)).all()
        delivered = conn.execute(select(Delivery.recipient_id).distinct()).scalars().all()
    assert sorted(coach for coach, _ in stored) == [f"coach{c}" for c in (0, 1, 2, 4, 5)]
    assert all(text for _, text in stored)
    assert sorted(delivered) == [f"coach{c}" for c in (0, 1, 2, 4, 5)]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "digest for coach coach3 failed; the next run tries again"
    ]

    with clubs.begin() as conn:
        conn.exec_driver_sql("UPDATE athletes SET timezone = 'UTC' WHERE id = 'ath3_0'")
    (retried,) = send_due_digests(clubs, NOW, force=True)
    with clubs.connect() as conn:
        row = conn.execute(select(Digest).where(Digest.id == retried)).one()
        assert row.coach_id == "coach3" and row.text
        assert conn.execute(select(Delivery).where(Delivery.digest_id == retried)).all()
