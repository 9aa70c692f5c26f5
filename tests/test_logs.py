"""Secrets and health data stay out of the service's logs.

`kneeguard run` runs as a process with credentials in every URL (broker, SMTP, ntfy) and is
taken through connect, ingest (accepted and rejected messages), delivery (a locked knee: email,
push, in-app), the failure paths (SMTP refusing the login, SMTP down, the broker restarted) and
shutdown. Its whole stderr must hold no password at any level; above DEBUG it must hold nothing
of a payload. At DEBUG a rejected payload may be shown, truncated.
"""

from __future__ import annotations

import base64
import re
import signal
import uuid as uuidlib

import pytest

from db.engine import make_engine, session_factory
from kneeguard.admin.registry import Registry
from testsupport import (
    SERVICE_PASSWORD,
    TEST_PASSWORD,
    HttpSink,
    Mosquitto,
    SmtpSink,
    checkin_payload,
    device_client,
    service,
    wait_until,
)

PREFIX = "kneeguard/v1"
CHECKIN = f"{PREFIX}/ann/watch/checkin"
STRANGER = f"{PREFIX}/ann/stranger/checkin"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) ")
PAYLOAD_FRAGMENTS = ('"header"', "schema_id", "effective_time_frame", "pain_sites", "stairs")


def records(log: str) -> list[tuple[str, str]]:
    """(level, text) per log record; a line without a timestamp (a traceback) continues the
    record before it."""
    found: list[tuple[str, str]] = []
    for line in log.splitlines():
        match = RECORD.match(line)
        if match:
            found.append((match["level"], line))
        elif found:
            found[-1] = (found[-1][0], f"{found[-1][1]}\n{line}")
        else:
            found.append(("UNKNOWN", line))
    return found


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_logs_hold_no_credentials_and_no_payload(
    level: str, sqlite_url: str, broker: Mosquitto
) -> None:
    marker = f"private-{uuidlib.uuid4().hex}"
    smtp_password = f"smtp-{uuidlib.uuid4().hex[:12]}"
    ntfy_password = f"ntfy-{uuidlib.uuid4().hex[:12]}"
    engine = make_engine(sqlite_url)
    registry = Registry(session_factory(engine))
    registry.add_coach(coach_id="cora", name="Cora", email="cora@example.com")
    registry.add_athlete(
        athlete_id="ann",
        name="Ann",
        email="ann@example.com",
        coach_id="cora",
        ntfy_topic="ann-knee",
        quiet_hours="off",
    )
    registry.add_device(athlete_id="ann", device_id="watch")
    engine.dispose()

    smtp = SmtpSink().start()  # offers no AUTH: the login with the password fails
    smtp_up = True
    push = HttpSink().start()
    env = {
        "KNEEGUARD_SMTP_URL": f"smtp://mailer:{smtp_password}@127.0.0.1:{smtp.port}?timeout=5",
        "KNEEGUARD_NTFY_URL": f"http://pusher:{ntfy_password}@127.0.0.1:{push.port}",
    }
    try:
        with service(sqlite_url, broker.url, KNEEGUARD_LOG_LEVEL=level, **env) as proc:
            proc.wait_subscribed()
            with device_client(broker.port) as device:
                # Ingest: accepted, rejected for a bad field, a note over the limit, a device
                # that is not registered, bytes that are not JSON. Each carries the marker.
                locked = checkin_payload(
                    pain_score=3, symptoms={"locking": True}, note=f"stairs {marker}"
                )
                bad_score = checkin_payload(pain_score=42, note=marker)
                long_note = checkin_payload(note=(marker + " ") * 40)
                stranger = checkin_payload(note=marker)
                for topic, payload in (
                    (CHECKIN, locked),
                    (CHECKIN, bad_score),
                    (CHECKIN, long_note),
                    (STRANGER, stranger),
                ):
                    device.publish(topic, payload)
                device.publish(CHECKIN, b"\xff{not json " + marker.encode())
                assert device.ack_for(locked["header"]["uuid"])["status"] == "accepted"
                for rejected in (bad_score, long_note, stranger):
                    assert device.ack_for(rejected["header"]["uuid"])["status"] == "rejected"
                assert device.ack_for(None)["status"] == "rejected"

                # Delivery of the urgent alert: push goes out, email fails on the login.
                assert wait_until(lambda: len(push.requests) == 1, 15), proc.log
                assert wait_until(lambda: proc.log.count("failed permanently") == 2, 15), proc.log

                # SMTP down: the next alert's emails fail and wait for a retry.
                smtp.stop()
                smtp_up = False
                fever = checkin_payload(
                    pain_score=4, symptoms={"swelling": True, "fever": True}, note=marker
                )
                device.publish(CHECKIN, fever)
                assert device.ack_for(fever["header"]["uuid"])["status"] == "accepted"
                assert wait_until(lambda: "failed (attempt 1" in proc.log, 15), proc.log

            # The broker restarted: reconnect, resubscribe, ingest again.
            broker.stop()
            assert wait_until(lambda: "lost the broker connection" in proc.log, 10), proc.log
            broker.start()
            assert wait_until(lambda: proc.log.count("subscribed to") == 2, 30), proc.log
            with device_client(broker.port) as device:
                after = checkin_payload(note=marker)
                device.publish(CHECKIN, after)
                assert device.ack_for(after["header"]["uuid"])["status"] == "accepted"
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log
    finally:
        push.stop()
        if smtp_up:
            smtp.stop()

    log = proc.log
    assert log.count("rejected message on") == 4, log
    assert "stopped after" in log
    secrets = {
        "broker service password": SERVICE_PASSWORD,
        "device password": TEST_PASSWORD,
        "SMTP password": smtp_password,
        "SMTP AUTH PLAIN": base64.b64encode(f"\0mailer\0{smtp_password}".encode()).decode(),
        "ntfy password": ntfy_password,
        "ntfy basic auth": base64.b64encode(f"pusher:{ntfy_password}".encode()).decode(),
    }
    for what, secret in secrets.items():
        assert secret not in log, f"{what} in the log"
    assert (marker + " ") * 3 not in log, "a long payload logged in full"

    above_debug = "\n".join(text for lvl, text in records(log) if lvl != "DEBUG")
    assert marker not in above_debug
    for fragment in PAYLOAD_FRAGMENTS:
        assert fragment not in above_debug, f"payload fragment {fragment!r} above DEBUG"
    debug = [text for lvl, text in records(log) if lvl == "DEBUG"]
    if level == "INFO":
        assert debug == []
    else:
        # The check above is not vacuous: at DEBUG the truncated payloads are there.
        assert any(marker in text for text in debug)


FORGED = "2026-12-01 00:00:00,000 ERROR kneeguard.app.service: forged record"


def test_no_logged_value_can_forge_a_record(sqlite_url: str, broker: Mosquitto) -> None:
    """A newline (or another line break, a carriage return, a bidirectional override) in a
    device's value is escaped in the log: every line at column 0 is a real record."""
    engine = make_engine(sqlite_url)
    registry = Registry(session_factory(engine))
    registry.add_athlete(athlete_id="ann", name="Ann", email="ann@example.com")
    registry.add_device(athlete_id="ann", device_id="watch")
    engine.dispose()
    breaks = ("\n", "\r\n", "\r", "\u2028", "\x85", "\x1b[2K\r", "\u202e")
    with service(sqlite_url, broker.url) as proc:
        proc.wait_subscribed()
        with device_client(broker.port) as device:
            sent = []
            for line_break in breaks:
                payload = checkin_payload()
                payload["header"]["schema_id"]["namespace"] = f"x{line_break}{FORGED}"
                device.publish(CHECKIN, payload)
                sent.append(payload["header"]["uuid"])
            for uuid in sent:
                assert device.ack_for(uuid)["status"] == "rejected"
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    log = proc.log
    assert log.count("rejected message on") >= len(breaks), log
    for line in log.splitlines():
        assert not line.startswith(FORGED), log
        assert RECORD.match(line) or line.startswith("    "), line
    for character in ("\r", "\u2028", "\x85", "\x1b", "\u202e"):
        assert character not in log
    assert f"x\\x0a{FORGED}" in log
    assert f"x\\u202e{FORGED}" in log


def test_tracebacks_are_indented_and_escaped() -> None:
    import logging

    from kneeguard.app.logs import SafeFormatter

    formatter = SafeFormatter("%(levelname)s %(message)s")
    try:
        raise ValueError(f"bad\n{FORGED}\r")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed: %s", ("a\nb",), None)
        import sys

        record.exc_info = sys.exc_info()
    text = formatter.format(record)
    first, *rest = text.split("\n")
    assert first == "ERROR failed: a\\x0ab"
    assert rest and all(line.startswith("    ") for line in rest)
    assert f"    {FORGED}\\x0d" in rest
