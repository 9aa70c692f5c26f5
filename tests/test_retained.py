"""Retained publishes on device topics are never stored (DESIGN.md, version 2).

Reproductions: a device's retained check-in stayed on the broker after `athlete delete`, came
back on every reconnect of the service, and was stored as the data of a new athlete with the same
id; and a retained check-in published while the service was connected was stored (MQTT 3.1.1
forwards it with the retain flag cleared). Now the service subscribes with MQTT 5's "retain as
published", so every retained publish arrives flagged, live or kept by the broker: it is rejected
(dead letter, `rejected` ack naming `retain`) and cleared from the broker with an empty retained
publish.
"""

from __future__ import annotations

import json
import signal

import pytest
from sqlalchemy import func, select

from db.engine import make_engine
from db.models import Checkin, DeadLetter
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeviceClient,
    Mosquitto,
    checkin_payload,
    device_client,
    kneeguard,
    open_session,
    register,
    service,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]


def counts(db_url: str) -> tuple[int, list[str]]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        checkins = int(conn.execute(select(func.count()).select_from(Checkin)).scalar_one())
        reasons = list(conn.execute(select(DeadLetter.reason)).scalars())
    engine.dispose()
    return checkins, reasons


def retained_on_broker(port: int) -> list[bytes]:
    """What a new subscriber to the check-in topic receives at once: the retained message."""
    watcher = DeviceClient(port, subscribe=(CHECKIN_TOPIC,))
    try:
        wait_until(lambda: bool(watcher.received), 2)
        return [payload for _, payload in watcher.received]
    finally:
        watcher.close()


def test_a_retained_checkin_published_live_is_rejected_and_cleared(
    db_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    retained = checkin_payload(pain_score=3, symptoms={"locking": True})
    plain = checkin_payload(pain_score=2)
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        with device_client(broker.port) as device:
            device.client.publish(CHECKIN_TOPIC, json.dumps(retained), qos=1, retain=True)
            ack = device.ack_for(retained["header"]["uuid"], 20)
            assert ack["status"] == "rejected"
            assert [error["loc"] for error in ack["errors"]] == ["retain"]
            # The same device's next message, without the flag, is stored as usual.
            device.client.publish(CHECKIN_TOPIC, json.dumps(plain), qos=1)
            assert device.ack_for(plain["header"]["uuid"], 20)["status"] == "accepted"
        assert wait_until(lambda: retained_on_broker(broker.port) == [], 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    checkins, reasons = counts(db_url)
    assert checkins == 1
    assert len(reasons) == 1 and "retain" in reasons[0]  # and the clearing echo left nothing
    assert "cleared a retained message" in proc.log


def test_a_retained_checkin_does_not_come_back_after_the_athlete_is_erased(
    db_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    payload = checkin_payload(pain_score=3, symptoms={"locking": True})
    # The service's session exists at the broker, then the service stops.
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    # Published while the service is away: queued for its session and kept as retained.
    with device_client(broker.port) as device:
        info = device.client.publish(CHECKIN_TOPIC, json.dumps(payload), qos=1, retain=True)
        info.wait_for_publish(10)
    assert retained_on_broker(broker.port) == [json.dumps(payload).encode()]

    erased = kneeguard(db_url, "athlete", "delete", "--id", "ann", "--yes")
    assert erased.returncode == 0, erased
    # The id is reused by a new athlete with a device of the same id.
    added = kneeguard(db_url, "athlete", "add", "--id", "ann", "--name", "A", "--email", "a@x.org")
    assert added.returncode == 0, added
    assert kneeguard(db_url, "device", "add", "--athlete", "ann", "--id", "watch").returncode == 0
    assert counts(db_url) == (0, [])

    with service(db_url, broker.url) as proc, device_client(broker.port) as device:
        proc.wait_subscribed()
        ack = device.ack_for(payload["header"]["uuid"], 20)
        assert ack["status"] == "rejected"
        assert [error["loc"] for error in ack["errors"]] == ["retain"]
        assert wait_until(lambda: retained_on_broker(broker.port) == [], 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    checkins, reasons = counts(db_url)
    assert checkins == 0  # not stored as the new athlete's data
    # Rejected once as the session's queued message and once as the broker's retained copy.
    assert 1 <= len(reasons) <= 2 and all("retain" in reason for reason in reasons), reasons
    assert "cleared a retained message" in proc.log

    # The next start finds nothing left to reject.
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    assert counts(db_url) == (0, reasons)


def test_the_session_of_an_earlier_mqtt_311_service_is_resumed_with_its_queue(
    db_url: str, broker: Mosquitto
) -> None:
    """The service used MQTT 3.1.1 before it subscribed with "retain as published": after an
    upgrade it resumes that persistent session, with what the broker queued for it meanwhile."""
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    # This broker does not bind client ids to users: the session is the service's client id's.
    topic = f"{PREFIX}/+/+/checkin"
    open_session(broker.port, SERVICE_USER, SERVICE_PASSWORD, topic, client_id="kneeguard-ingest")
    payload = checkin_payload(pain_score=2)
    with device_client(broker.port) as device:
        device.client.publish(CHECKIN_TOPIC, json.dumps(payload), qos=1).wait_for_publish(10)
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        assert wait_until(lambda: counts(db_url)[0] == 1, 20), proc.log
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    assert counts(db_url) == (1, [])
