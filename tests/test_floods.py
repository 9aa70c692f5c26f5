"""Floods cannot grow the service's memory or its dead letters and log without bound.

Reproductions: with the database locked, a QoS 0 flood of large messages grew the service from
116 MB to 2.19 GB, and it stayed there; one device wrote 3,000 dead letters (12 MB, 3,000
WARNING lines) in 4.4 s.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from db.engine import make_engine, session_factory
from db.models import DeadLetter
from ingest.floods import RejectionLimit
from kneeguard.admin.registry import Registry
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    RUN_TOPIC,
    DeviceClient,
    Mosquitto,
    checkin_payload,
    device_client,
    free_port,
    register,
    run_payload,
    service,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

MiB = 1024 * 1024


def rss(pid: int) -> int:
    """Resident memory of a process, in bytes (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def test_a_qos0_flood_while_the_database_is_locked_keeps_memory_bounded(
    sqlite_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(sqlite_url)
    register(engine)
    engine.dispose()
    path = sqlite_url.removeprefix("sqlite:///")
    bind = f"127.0.0.1:{free_port()}"
    with service(sqlite_url, broker.url, KNEEGUARD_WEB_BIND=bind) as proc:
        proc.wait_subscribed()
        pid = proc.process.pid
        before = rss(pid)
        # The database is locked: the writer holds its batch and retries; nothing drains.
        lock = sqlite3.connect(path, timeout=1)
        lock.execute("BEGIN EXCLUSIVE")
        blocked = checkin_payload()
        flood = DeviceClient(broker.port)
        try:
            flood.publish(CHECKIN_TOPIC, blocked)
            big = b"x" * (120 * 1024)  # under the broker's max_packet_size
            flood.publish_many([(CHECKIN_TOPIC, big)] * 1500, qos=0)  # 180 MB
            assert wait_until(lambda: "dropping QoS 0 messages" in proc.log, 20), proc.log
            peak = max(rss(pid) for _ in range(5))
        finally:
            flood.close()
            lock.rollback()
            lock.close()
        grown = (peak - before) / MiB
        # The writer holds at most 32 MiB of QoS 0 messages; without the bound all 180 MB stayed.
        assert grown < 90, f"grew by {grown:.0f} MiB"
        # The network thread kept the session: no reconnect, and QoS 1 goes through afterwards.
        with device_client(broker.port) as device:
            after = checkin_payload()
            device.publish(CHECKIN_TOPIC, after)
            assert device.ack_for(after["header"]["uuid"], 60)["status"] == "accepted"
        assert "lost the broker connection" not in proc.log
        metrics = httpx.get(f"http://{bind}/metrics", timeout=10).text
        dropped = [line for line in metrics.splitlines() if line.startswith("kneeguard_qos0_d")]
        assert dropped and float(dropped[0].split()[-1]) > 0, dropped
        assert wait_until(lambda: "QoS 0 messages dropped in all" in proc.log, 10), proc.log
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log


def test_a_dead_letter_flood_from_one_device_is_counted_not_stored(
    db_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    bad = [checkin_payload(pain_score=42) for _ in range(600)]
    with service(db_url, broker.url) as proc, device_client(broker.port) as device:
        proc.wait_subscribed()
        device.publish_many([(CHECKIN_TOPIC, json.dumps(p).encode()) for p in bad])
        # Every message is still answered and acknowledged.
        assert wait_until(lambda: len(device.acks()) == len(bad), 60), len(device.acks())
        assert {ack["status"] for ack in device.acks()} == {"rejected"}
        good = checkin_payload()
        device.publish(CHECKIN_TOPIC, good)
        assert device.ack_for(good["header"]["uuid"])["status"] == "accepted"
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = int(conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one())
    engine.dispose()
    assert stored == RejectionLimit().limit  # the first ones, then counted only
    log = proc.log
    assert log.count("rejected message on") == RejectionLimit().limit
    assert log.count("over 100 rejected messages within 60 s") == 1  # said once


def test_the_limit_is_per_device_and_per_window() -> None:
    now = [0.0]
    limit = RejectionLimit(limit=3, window=10, clock=lambda: now[0])
    assert [limit.admit("ann/watch") for _ in range(5)] == [True, True, True, False, False]
    assert limit.admit("bob/watch")  # another device is not held back
    now[0] = 10.0
    assert limit.admit("ann/watch")  # a new window
    assert limit.suppressed_total == 2


def test_a_packet_over_the_brokers_limit_never_reaches_the_service(
    sqlite_url: str, broker: Mosquitto
) -> None:
    """max_packet_size (128 KiB in the shipped config): the broker refuses the packet and
    disconnects its sender; the service and other devices are not affected."""
    engine = make_engine(sqlite_url)
    register(engine)
    engine.dispose()
    with service(sqlite_url, broker.url) as proc, device_client(broker.port) as device:
        proc.wait_subscribed()
        sender = DeviceClient(broker.port)
        try:
            sender.client.publish(CHECKIN_TOPIC, b"{" + b"x" * (200 * 1024), qos=1)
            assert wait_until(lambda: not sender.client.is_connected(), 10)
        finally:
            sender.close()
        fine = checkin_payload()
        device.publish(CHECKIN_TOPIC, fine)
        assert device.ack_for(fine["header"]["uuid"])["status"] == "accepted"
        assert len(device.acks()) == 1  # nothing of the refused packet came through
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log


def test_a_device_filling_the_services_queue_delays_others_but_loses_nothing(
    sqlite_url: str, broker: Mosquitto
) -> None:
    """Mosquitto 2.0 bounds what it queues for each receiving client (`max_queued_bytes`, 256 MiB
    in the shipped config) but has no quota per publisher: while the service is away, one device
    can fill the service's queue, and the broker drops what other devices publish after it. What
    it cannot do: stop a red flag (check-ins have a session and a queue of their own), or lose a
    run of a device that keeps every message until its ack (docs/PROTOCOL.md, section 9)."""
    engine = make_engine(sqlite_url)
    register(engine)
    Registry(session_factory(engine)).add_athlete(
        athlete_id="bob", name="Bob", email="bob@example.com", coach_id="cora"
    )
    Registry(session_factory(engine)).add_device(athlete_id="bob", device_id="band")
    engine.dispose()
    lanes = {"KNEEGUARD_MQTT_CHECKIN_URL": broker.checkin_url}
    with service(sqlite_url, broker.url, **lanes) as proc:
        assert wait_until(lambda: proc.log.count("subscribed to") == 2, 20), proc.log
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log

    # Away: 2,300 payloads of 120 KiB (under the broker's packet limit, over the contract's
    # 64 KiB) on Ann's run topic are some 270 MiB for the service's run session.
    flood = [
        json.dumps({"header": {"uuid": str(uuid.uuid4())}, "x": "y" * 120 * 1024}).encode()
        for _ in range(2_300)
    ]
    run = run_payload()
    checkin = checkin_payload(pain_score=3, symptoms={"locking": True})
    with device_client(broker.port) as device:
        device.publish_many([(RUN_TOPIC, payload) for payload in flood])
        assert "dropped" in broker.log(), broker.log()[-2000:]
        device.publish(f"{PREFIX}/bob/band/run", run)  # dropped for the run session
        device.publish(f"{PREFIX}/bob/band/checkin", checkin)

        with service(sqlite_url, broker.url, **lanes) as proc:
            assert device.ack_for(checkin["header"]["uuid"], 30)["status"] == "accepted"
            # The run session drains the flood: rejected, acknowledged; Bob's run is not there.
            seen = -1
            while len(device.acks()) != seen:  # until no ack came for a second
                seen = len(device.acks())
                time.sleep(1)
            others = [a for a in device.acks() if a["uuid"] != checkin["header"]["uuid"]]
            assert others and all(a["status"] == "rejected" for a in others)
            assert not [a for a in device.acks() if a["uuid"] == run["header"]["uuid"]]
            # Bob's device publishes the run again, same uuid, as the protocol tells it to.
            device.publish(f"{PREFIX}/bob/band/run", run)
            assert device.ack_for(run["header"]["uuid"], 30)["status"] == "accepted"
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log


def test_an_answer_the_mqtt_client_refuses_is_counted_and_said(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """paho refuses a QoS 1 publish when its message ids are all outstanding (65,535 answers
    waiting for PUBACKs behind a backlog); the answer was dropped without a word. A queue of one
    stands for that here: the client is not connected, so the first answer stays queued."""
    from ingest.mqtt import BrokerAddress, MqttConnection

    address = BrokerAddress.from_url(f"mqtt://127.0.0.1:{free_port()}")
    connection = MqttConnection(address, "refusals", [], sink=lambda message: None)
    connection._client.max_queued_messages_set(1)
    with caplog.at_level("WARNING", logger="ingest.mqtt"):
        for _ in range(3):
            connection.publish("kneeguard/v1/ann/watch/ack", b"{}")
    assert connection.publishes_refused == 2
    said = [r.getMessage() for r in caplog.records if "answers to devices" in r.getMessage()]
    assert len(said) == 1  # once a minute at most
    assert said == [
        "the MQTT client holds too many unconfirmed publishes; answers to devices not sent so "
        "far: 1 (the devices publish again)"
    ]


def test_answers_not_sent_reach_the_metrics(sqlite_url: str) -> None:
    from kneeguard.app.service import Service
    from kneeguard.settings import Settings

    settings = Settings(
        database_url=sqlite_url, mqtt_url=f"mqtt://127.0.0.1:{free_port()}", _env_file=None
    )
    engine = make_engine(sqlite_url)
    try:
        service = Service(settings, engine, only="ingest")
        service.connection._client.max_queued_messages_set(1)  # not connected: the first stays
        for _ in range(3):
            service.connection.publish("kneeguard/v1/ann/watch/ack", b"{}")
        sample = service.metrics.registry.get_sample_value
        assert sample("kneeguard_answers_not_sent_total") == 2
    finally:
        engine.dispose()
