"""Delivery end to end: real broker, real SMTP server (aiosmtpd), real HTTP server."""

from __future__ import annotations

import json
import multiprocessing
import random
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

from db.engine import make_engine, session_factory
from db.models import Alert, Coach, Delivery
from kneeguard.admin.registry import Registry
from kneeguard.app.delivery import build_transports
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from notifier.base import Channel, DeliveryError, Message, Recipient
from notifier.outbox import Outbox, OutboxWorker, backoff
from notifier.routing import enqueue_alerts, escalate_due, quiet_until
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    DeviceClient,
    HttpSink,
    Mosquitto,
    SmtpSink,
    add_alert,
    checkin_payload,
    device_client,
    free_port,
    kneeguard,
    register,
    wait_until,
)


def settings_for(db_url: str, smtp: SmtpSink, **extra: Any) -> Settings:
    return Settings(
        database_url=db_url,
        smtp_url=smtp.url,
        mail_from="KneeGuard <alerts@kneeguard.example>",
        _env_file=None,
        **extra,
    )


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def http() -> Iterator[HttpSink]:
    sink = HttpSink().start()
    yield sink
    sink.stop()


def club(engine: Engine) -> None:
    register(engine)
    registry = Registry(session_factory(engine))
    registry.update_athlete("ann", ntfy_topic="ann-knee", quiet_hours="off")


def deliveries(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery).order_by(Delivery.id)))


# --- the whole path ---------------------------------------------------------------------------


def test_a_locked_knee_reaches_email_push_and_the_app_within_two_seconds(
    engine: Engine, db_url: str, broker: Mosquitto, smtp: SmtpSink, http: HttpSink
) -> None:
    club(engine)
    settings = settings_for(db_url, smtp, mqtt_url=broker.url, ntfy_url=http.url)
    app = DeviceClient(broker.port, subscribe=(f"{PREFIX}/ann/alerts",))
    service = Service(settings, engine, first_run_delay=timedelta(hours=1))
    service.start()
    try:
        assert service.connection.ready.wait(10)
        with device_client(broker.port) as device:
            payload = checkin_payload(pain_score=2, symptoms={"locking": True})
            published = time.monotonic()
            device.publish(CHECKIN_TOPIC, payload)
            assert wait_until(lambda: bool(smtp.to("ann@example.com")), 5)
        received_at, email = next(m for m in smtp.messages if "ann@" in str(m[1]["To"]))
        assert received_at - published < 2.0
        assert "URGENT" in email["Subject"].upper()
        body = email.get_body(("plain",)).get_content()
        assert "not a diagnosis" in body
        assert "today" in body.lower() or "urgent" in body.lower()
        assert wait_until(lambda: len(http.requests) == 1, 5)
        path, push = http.requests[0].path, http.requests[0].body
        assert "ann-knee" in path or b"ann-knee" in push
        assert wait_until(lambda: len(app.received) == 1, 5)
        inapp = json.loads(app.received[0][1])
        assert inapp["rule_id"] == "redflag.locked_knee"
        assert inapp["severity"] == "urgent"
        assert inapp["recommendation"] == "urgent_care"
        # the coach hears at once too
        assert wait_until(lambda: bool(smtp.to("cora@example.com")), 5)
    finally:
        service.stop()
        app.close()
    assert {d.status for d in deliveries(engine)} == {"sent"}


# --- retries ----------------------------------------------------------------------------------


class Clock:
    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now


def test_smtp_down_is_retried_with_backoff_and_delivered_once(engine: Engine, db_url: str) -> None:
    club(engine)
    port = free_port()
    clock = Clock(datetime(2026, 11, 20, 12, tzinfo=UTC))
    alert_id = add_alert(engine, "urgent", clock.now)
    with engine.begin() as conn:
        enqueue_alerts(conn, [(alert_id, "opened")], clock.now, ("email",))
    smtp = SmtpSink(port)
    transports = build_transports(settings_for(db_url, smtp))
    outbox = Outbox(engine, transports, clock, backoff_base=60, rng=random.Random(7))
    outbox.run_once()  # refused: nothing listens
    (row,) = [d for d in deliveries(engine) if d.recipient_kind == "athlete"]
    assert (row.status, row.attempts) == ("failed", 1)
    assert "refused" in row.last_error.lower() or "connect" in row.last_error.lower()
    first_due = row.due_at
    assert timedelta(seconds=30) <= first_due - clock.now <= timedelta(seconds=60)
    clock.now = first_due
    outbox.run_once()
    (row,) = [d for d in deliveries(engine) if d.recipient_kind == "athlete"]
    assert row.attempts == 2 and row.due_at - clock.now >= timedelta(seconds=60)
    smtp.start()
    try:
        assert outbox.run_once() == 0  # not due yet: no early retry
        clock.now = row.due_at
        outbox.run_once()
        outbox.run_once()
        assert len(smtp.to("ann@example.com")) == 1
        (row,) = [d for d in deliveries(engine) if d.recipient_kind == "athlete"]
        assert (row.status, row.attempts) == ("sent", 3)
        assert row.duration_ms is not None and row.duration_ms > 0
        clock.now += timedelta(hours=2)
        outbox.run_once()
        assert len(smtp.to("ann@example.com")) == 1
    finally:
        smtp.stop()


def test_a_5xx_reply_fails_at_once_and_a_day_of_failures_is_dead(
    engine: Engine, db_url: str, smtp: SmtpSink
) -> None:
    club(engine)
    clock = Clock(datetime(2026, 11, 20, 12, tzinfo=UTC))
    alert_id = add_alert(engine, "urgent", clock.now)
    with engine.begin() as conn:
        enqueue_alerts(conn, [(alert_id, "opened")], clock.now, ("email",))
    smtp.reply = "550 mailbox unavailable"
    outbox = Outbox(engine, build_transports(settings_for(db_url, smtp)), clock)
    outbox.run_once()
    rows = deliveries(engine)
    assert {(r.status, r.attempts, r.due_at) for r in rows} == {("failed", 1, None)}
    assert all("550" in r.last_error for r in rows)
    clock.now += timedelta(days=2)
    assert outbox.run_once() == 0  # a permanent failure is not retried

    dead_port = free_port()
    alert2 = add_alert(engine, "urgent", clock.now, rule="redflag.acute_injury")
    with engine.begin() as conn:
        enqueue_alerts(conn, [(alert2, "opened")], clock.now, ("email",))
    down = Outbox(engine, build_transports(settings_for(db_url, SmtpSink(dead_port))), clock)
    start = clock.now
    statuses: list[str] = []
    while clock.now - start < timedelta(hours=25):
        down.run_once()
        pending = [d for d in deliveries(engine) if d.alert_id == alert2]
        statuses = [d.status for d in pending]
        if all(s == "dead" for s in statuses):
            break
        clock.now = min(d.due_at for d in pending if d.due_at is not None)
    assert statuses and all(s == "dead" for s in statuses)
    assert clock.now - start >= timedelta(hours=24)


def test_backoff_doubles_with_jitter_and_caps_at_an_hour() -> None:
    rng = random.Random(1)
    delays = [backoff(n, 30, rng).total_seconds() for n in range(1, 12)]
    assert 15 <= delays[0] <= 30
    assert 30 <= delays[1] <= 60
    assert all(d <= 3600 for d in delays)
    assert delays[-1] >= 1800


class RendezvousTransport:
    """An email channel whose sends each wait until `parties` of them are under way at once.

    Sent one after another, the first send waits alone until the barrier times out and the
    delivery fails; so every delivery ending `sent` shows that they went out side by side.
    """

    channel: Channel = "email"

    def __init__(self, parties: int) -> None:
        self.barrier = threading.Barrier(parties, timeout=10)
        self.recipients: list[str] = []

    def send(self, recipient: Recipient, message: Message) -> None:
        self.barrier.wait()
        self.recipients.append(recipient.id)


def test_the_deliveries_of_one_claim_go_out_side_by_side(engine: Engine) -> None:
    """An urgent alert's email must not wait for every delivery claimed before it to finish."""
    club(engine)
    now = datetime.now(UTC)
    ids = [add_alert(engine, "urgent", now, rule=f"r{i}") for i in range(2)]
    with engine.begin() as conn:
        enqueue_alerts(conn, [(i, "opened") for i in ids], now, ("email",))
    assert len(deliveries(engine)) == 4  # the athlete and the coach, twice
    transport = RendezvousTransport(parties=4)
    outbox = Outbox(engine, {"email": transport}, lambda: now, senders=4)
    assert outbox.run_once() == 4
    assert {(d.status, d.attempts) for d in deliveries(engine)} == {("sent", 1)}
    assert sorted(transport.recipients) == ["ann", "ann", "cora", "cora"]


class RefusingCoachTransport(RendezvousTransport):
    """Side by side as above; the coach's server refuses the mail for good."""

    def send(self, recipient: Recipient, message: Message) -> None:
        super().send(recipient, message)
        if recipient.kind == "coach":
            raise DeliveryError("550 mailbox unavailable", permanent=True)


def test_outcomes_that_finish_together_are_each_recorded_exactly(engine: Engine) -> None:
    """Outcomes of one claim share commits: a sent and a failed outcome set different columns,
    and each row still gets its own."""
    club(engine)
    now = datetime.now(UTC)
    ids = [add_alert(engine, "urgent", now, rule=f"r{i}") for i in range(2)]
    with engine.begin() as conn:
        enqueue_alerts(conn, [(i, "opened") for i in ids], now, ("email",))
    outbox = Outbox(engine, {"email": RefusingCoachTransport(parties=4)}, lambda: now, senders=4)
    assert outbox.run_once() == 4
    rows = deliveries(engine)
    sent = [d for d in rows if d.recipient_kind == "athlete"]
    failed = [d for d in rows if d.recipient_kind == "coach"]
    assert {(d.status, d.attempts, d.last_error, d.due_at) for d in sent} == {
        ("sent", 1, None, None)
    }
    assert all(d.sent_at is not None and d.duration_ms is not None for d in sent)
    assert {(d.status, d.attempts, d.due_at, d.sent_at) for d in failed} == {
        ("failed", 1, None, None)
    }
    assert all("550 mailbox unavailable" in (d.last_error or "") for d in failed)


# --- two workers --------------------------------------------------------------------------------


def _worker(db_url: str, smtp_url: str, rounds: int) -> None:
    engine = make_engine(db_url)
    settings = Settings(database_url=db_url, smtp_url=smtp_url, _env_file=None)
    outbox = Outbox(engine, build_transports(settings), lambda: datetime.now(UTC), batch=5)
    for _ in range(rounds):
        outbox.run_once()
        time.sleep(0.01)
    engine.dispose()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_worker_processes_never_send_a_row_twice(
    engine: Engine, db_url: str, smtp: SmtpSink
) -> None:
    club(engine)
    now = datetime.now(UTC)
    ids = [add_alert(engine, "urgent", now, rule=f"r{i}") for i in range(60)]
    with engine.begin() as conn:
        enqueue_alerts(conn, [(i, "opened") for i in ids], now, ("email",))
    expected = len(deliveries(engine))
    assert expected == 120  # athlete and coach for each
    ctx = multiprocessing.get_context("spawn")
    workers = [ctx.Process(target=_worker, args=(db_url, smtp.url, 40)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    assert wait_until(lambda: len(smtp.messages) >= expected, 10)
    time.sleep(0.5)
    # A row sent twice would show as an extra message; every row was claimed exactly once.
    assert len(smtp.messages) == expected
    assert {(d.status, d.attempts) for d in deliveries(engine)} == {("sent", 1)}


# --- routing --------------------------------------------------------------------------------------


def test_quiet_hours_end_at_local_seven_across_midnight_and_dst() -> None:
    zone = "Europe/London"
    late = datetime(2026, 10, 24, 23, 30, tzinfo=UTC)  # 00:30 BST on the night clocks go back
    assert quiet_until(late, zone, "22:00-07:00") == datetime(2026, 10, 25, 7, tzinfo=UTC)
    noon = datetime(2026, 10, 25, 12, tzinfo=UTC)
    assert quiet_until(noon, zone, "22:00-07:00") is None
    assert quiet_until(late, zone, "off") is None


def test_quiet_hours_defer_a_warning_but_not_an_urgent_alert(engine: Engine) -> None:
    club(engine)
    Registry(session_factory(engine)).update_athlete(
        "ann", timezone="Europe/Oslo", quiet_hours="22:00-07:00"
    )
    night = datetime(2026, 11, 20, 22, 30, tzinfo=UTC)  # 23:30 in Oslo
    warning = add_alert(engine, "warning", night)
    urgent = add_alert(engine, "urgent", night, rule="redflag.locked_knee")
    info = add_alert(engine, "info", night, rule="load.acwr")
    with engine.begin() as conn:
        enqueue_alerts(
            conn,
            [(warning, "opened"), (urgent, "opened"), (info, "opened")],
            night,
            ("email", "push", "inapp"),
        )
    rows = deliveries(engine)
    assert not [d for d in rows if d.alert_id == info]
    held = [d for d in rows if d.alert_id == warning]
    assert {d.channel for d in held} == {"email", "push", "inapp"}
    assert {d.recipient_kind for d in held} == {"athlete"}  # the coach reads it in the digest
    assert {d.due_at for d in held} == {datetime(2026, 11, 21, 6, tzinfo=UTC)}  # 07:00 Oslo
    now_rows = [d for d in rows if d.alert_id == urgent]
    assert {d.due_at for d in now_rows} == {night}
    assert {d.recipient_kind for d in now_rows} == {"athlete", "coach"}


def test_escalation_fires_once_after_two_hours(engine: Engine) -> None:
    club(engine)
    opened = datetime(2026, 11, 20, 8, tzinfo=UTC)
    alert = add_alert(engine, "urgent", opened, rule="redflag.locked_knee")
    acked = add_alert(engine, "urgent", opened, rule="redflag.acute_injury")
    with engine.begin() as conn:
        conn.execute(update(Alert).where(Alert.id == acked).values(status="acknowledged"))
    two_hours = timedelta(hours=2)
    with engine.begin() as conn:
        assert escalate_due(conn, opened + timedelta(hours=1, minutes=59), two_hours) == []
    with engine.begin() as conn:
        assert escalate_due(conn, opened + two_hours, two_hours, ("email",)) == [alert]
    with engine.begin() as conn:
        assert escalate_due(conn, opened + timedelta(hours=5), two_hours, ("email",)) == []
    rows = [d for d in deliveries(engine) if d.reason == "escalation"]
    assert {(d.recipient_kind, d.channel) for d in rows} == {
        ("athlete", "email"),
        ("coach", "email"),
    }
    assert all(d.alert_id == alert for d in rows)


# --- digests through the command line -----------------------------------------------------------


def _digest_env(db_url: str, smtp: SmtpSink) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env.update(KNEEGUARD_DATABASE_URL=db_url, KNEEGUARD_SMTP_URL=smtp.url)
    return env


def test_digest_send_now_emails_the_coach(engine: Engine, db_url: str, smtp: SmtpSink) -> None:

    club(engine)
    add_alert(engine, "warning", datetime.now(UTC) - timedelta(hours=3))
    result = kneeguard(db_url, "digest", "send", "--now", KNEEGUARD_SMTP_URL=smtp.url)
    assert result.returncode == 0, result.stderr
    assert "email sent" in result.stdout
    (email,) = smtp.to("cora@example.com")
    assert "digest" in email["Subject"].lower()
    text = email.get_body(("plain",)).get_content()
    assert "Ann" in text and "High pain during or after a run" in text
    assert email.get_body(("html",)) is not None
    again = kneeguard(db_url, "digest", "send", "--coach", "cora", KNEEGUARD_SMTP_URL=smtp.url)
    assert again.returncode == 0 and "no digest due" in again.stdout
    assert len(smtp.to("cora@example.com")) == 1


def test_digest_send_run_twice_at_once_sends_one_digest(
    engine: Engine, db_url: str, smtp: SmtpSink
) -> None:
    import subprocess
    import sys

    register(engine)
    with engine.begin() as conn:  # the coach has been around, so yesterday's period is due
        conn.execute(update(Coach).values(created_at=datetime.now(UTC) - timedelta(days=3)))
    env = _digest_env(db_url, smtp)
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "kneeguard", "digest", "send"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), outputs
    assert wait_until(lambda: len(smtp.messages) >= 1, 5)
    time.sleep(0.5)
    assert len(smtp.to("cora@example.com")) == 1


def test_digest_send_for_an_unknown_coach_is_a_usage_error(
    engine: Engine, db_url: str, smtp: SmtpSink
) -> None:

    club(engine)
    result = kneeguard(db_url, "digest", "send", "--coach", "nobody", KNEEGUARD_SMTP_URL=smtp.url)
    assert result.returncode == 2 and "unknown coach 'nobody'" in result.stderr


def test_a_restarted_service_takes_back_its_own_claims_at_once(
    engine: Engine, db_url: str, smtp: SmtpSink
) -> None:
    """A worker that crashed mid-send left its deliveries `sending`: the same instance takes
    them back as soon as it starts again (the claimer is recorded), where they used to wait five
    minutes; another instance's fresh claims stay its own."""
    club(engine)
    now = datetime.now(UTC)
    mine = add_alert(engine, "urgent", now)
    with engine.begin() as conn:
        enqueue_alerts(conn, [(mine, "opened")], now, ("email",))
    transports = build_transports(settings_for(db_url, smtp))
    crashed = Outbox(engine, transports, lambda: now, claimer="host/kneeguard/kneeguard-ingest")
    assert len(crashed.claim(now)) == 2  # athlete and coach; then the process dies
    theirs = add_alert(engine, "urgent", now, rule="pain.locking")
    with engine.begin() as conn:
        enqueue_alerts(conn, [(theirs, "opened")], now, ("email",))
    other = Outbox(engine, transports, lambda: now, claimer="host/kneeguard-2/kneeguard-ingest")
    assert len(other.claim(now)) == 2  # a live replica, busy sending these

    restarted = Outbox(engine, transports, lambda: now, claimer="host/kneeguard/kneeguard-ingest")
    worker = OutboxWorker(restarted, poll_seconds=60)
    worker.start()
    try:
        assert wait_until(lambda: len(smtp.messages) == 2, 10), deliveries(engine)
    finally:
        worker.stop()
    rows = {(d.alert_id, d.status) for d in deliveries(engine)}
    assert rows == {(mine, "sent"), (theirs, "sending")}
    assert len(smtp.messages) == 2


class _Killed(BaseException):
    """The process dying between an email leaving and its `sent` record."""


def test_an_email_sent_again_after_a_crash_keeps_its_message_id(
    engine: Engine, db_url: str, smtp: SmtpSink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one duplicate a crash can cause (the email left, its `sent` record did not) carries
    the Message-ID of the first, so mail programs can tell it is the same message; different
    deliveries have different Message-IDs."""
    club(engine)
    now = datetime.now(UTC)
    alert = add_alert(engine, "urgent", now)
    with engine.begin() as conn:
        enqueue_alerts(conn, [(alert, "opened")], now, ("email",))
    transports = build_transports(settings_for(db_url, smtp))
    crashed = Outbox(engine, transports, lambda: now, claimer="host/kneeguard/kneeguard-ingest")
    first, _ = crashed.claim(now)

    def die(*_: object, **__: object) -> None:
        raise _Killed

    monkeypatch.setattr(crashed, "_record", die)
    with pytest.raises(_Killed):
        crashed.send(first)
    assert len(smtp.messages) == 1

    restarted = Outbox(engine, transports, lambda: now, claimer="host/kneeguard/kneeguard-ingest")
    assert restarted.take_back_own_claims(now) == 2
    restarted.run_once()
    assert {d.status for d in deliveries(engine)} == {"sent"}
    ids = [m["Message-ID"] for _, m in smtp.messages]
    assert len(ids) == 3 and ids.count(ids[0]) == 2 and len(set(ids)) == 2, ids
    assert ids[0].startswith(f"<kneeguard.delivery.{first.id}.") and ids[0].endswith(
        "@kneeguard.example>"
    ), ids
