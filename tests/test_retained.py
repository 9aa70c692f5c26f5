"""Retained publishes on device topics are never stored (DESIGN.md, version 2).

Reproduction: a device's retained check-in stayed on the broker after `athlete delete`, came back
on every reconnect of the service, and was stored as the data of a new athlete with the same id.
Now a message the broker flags as retained is rejected (dead letter, `rejected` ack naming
`retain`) and the service clears it from the broker with an empty retained publish.
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
    DeviceClient,
    Mosquitto,
    checkin_payload,
    device_client,
    kneeguard,
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


def test_a_retained_checkin_does_not_come_back_after_the_athlete_is_erased(
    db_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    payload = checkin_payload(pain_score=3, symptoms={"locking": True})
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        with device_client(broker.port) as device:
            device.client.publish(CHECKIN_TOPIC, json.dumps(payload), qos=1, retain=True)
            # Forwarded live, the broker does not flag it: stored as the device's message.
            assert device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
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
        assert wait_until(lambda: counts(db_url)[1] != [], 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    checkins, reasons = counts(db_url)
    assert checkins == 0  # not stored as the new athlete's data
    assert len(reasons) == 1 and "retain" in reasons[0]  # and the clearing echo left nothing
    assert "cleared a retained message" in proc.log
    assert retained_on_broker(broker.port) == []

    # The next start finds nothing left to reject.
    with service(db_url, broker.url) as proc:
        proc.wait_subscribed()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    assert counts(db_url) == (0, reasons)
