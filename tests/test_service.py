"""`kneeguard run` as a process: crashes, shutdown, broker outages and bad credentials."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid as uuidlib
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from db.engine import make_engine
from db.models import Run
from testsupport import (
    RUN_TOPIC,
    SERVICE_PASSWORD,
    SERVICE_USER,
    Mosquitto,
    device_client,
    register,
    run_payload,
    service,
    wait_until,
)


def stored_uuids(db_url: str) -> list[str]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        uuids = list(conn.execute(select(Run.uuid)).scalars())
    engine.dispose()
    return uuids


def count_runs(db_url: str) -> int:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        n = int(conn.execute(select(func.count()).select_from(Run)).scalar_one())
    engine.dispose()
    return n


def burst(n: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    payloads = [run_payload() for _ in range(n)]
    return [p["header"]["uuid"] for p in payloads], [
        (RUN_TOPIC, json.dumps(p).encode()) for p in payloads
    ]


@pytest.fixture
def registered(db_url: str) -> str:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    return db_url


@pytest.mark.slow
def test_sigkill_during_a_burst_loses_nothing_and_doubles_nothing(
    registered: str, broker: Mosquitto
) -> None:
    uuids, messages = burst(5000)
    with service(registered, broker.url) as first:
        first.wait_subscribed()
        with device_client(broker.port) as device:
            publisher = threading.Thread(target=device.publish_many, args=(messages,))
            publisher.start()
            assert wait_until(lambda: count_runs(registered) >= 500, 60), first.log
            first.process.kill()
            first.wait()
            killed_at = count_runs(registered)
            publisher.join(120)
    assert killed_at < 5000, "the burst finished before the kill; nothing was tested"
    with service(registered, broker.url) as second:
        second.wait_subscribed()
        assert wait_until(lambda: count_runs(registered) == 5000, 120), second.log
        time.sleep(1)  # any redelivered duplicate would have arrived by now
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
    stored = stored_uuids(registered)
    assert len(stored) == 5000
    assert sorted(stored) == sorted(uuids)


def pending_for_service(broker: Mosquitto, settle: float = 2.0) -> list[str]:
    """Connect as the service's own session and collect what the broker still holds for it."""
    received: list[str] = []
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="kneeguard-ingest",
        clean_session=False,
    )
    client.username_pw_set(SERVICE_USER, SERVICE_PASSWORD)

    def on_message(c: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        received.append(json.loads(msg.payload)["header"]["uuid"])

    connected = threading.Event()

    def on_connect(c: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    # The broker sends the held messages after the CONNACK: time the quiet period from there,
    # not from a connection that a loaded machine has not made yet.
    assert connected.wait(30), "the broker did not accept the service's session"
    last = -1
    while last != len(received):  # until a quiet period with nothing new
        last = len(received)
        time.sleep(settle)
    client.disconnect()
    client.loop_stop()
    return received


@pytest.mark.slow
def test_sigterm_during_a_burst_commits_everything_it_acknowledged(
    registered: str, broker: Mosquitto
) -> None:
    uuids, messages = burst(5000)
    with service(registered, broker.url) as proc:
        proc.wait_subscribed()
        with device_client(broker.port) as device:
            publisher = threading.Thread(target=device.publish_many, args=(messages,))
            publisher.start()
            assert wait_until(lambda: count_runs(registered) >= 500, 60), proc.log
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log
            publisher.join(120)
    assert "stopping" in proc.log and "stopped after" in proc.log
    stored = set(stored_uuids(registered))
    assert len(stored) < 5000, "the burst finished before SIGTERM; nothing was tested"
    # Whatever is not stored must still be held by the broker for the service's session: a
    # message acknowledged to the broker but not committed would be in neither set.
    redelivered = set(pending_for_service(broker))
    missing = set(uuids) - stored
    assert missing <= redelivered, f"{len(missing - redelivered)} acknowledged but not stored"


def test_service_reconnects_after_a_broker_restart(registered: str, broker: Mosquitto) -> None:
    with service(registered, broker.url) as proc:
        proc.wait_subscribed()
        broker.stop()
        assert wait_until(lambda: "lost the broker connection" in proc.log, 10), proc.log
        broker.start()
        assert wait_until(lambda: proc.log.count("subscribed to") == 2, 30), proc.log
        with device_client(broker.port) as device:
            payload = run_payload()
            device.publish(RUN_TOPIC, payload)
            assert device.ack_for(payload["header"]["uuid"], 10)["status"] == "accepted"
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0


def test_messages_published_while_the_service_is_down_are_stored(
    registered: str, broker: Mosquitto
) -> None:
    with service(registered, broker.url) as proc:
        proc.wait_subscribed()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    uuids, messages = burst(300)
    with device_client(broker.port) as device:
        device.publish_many(messages)
    with service(registered, broker.url) as proc:
        proc.wait_subscribed()
        assert wait_until(lambda: count_runs(registered) == 300, 30), proc.log
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert sorted(stored_uuids(registered)) == sorted(uuids)


def test_bad_credentials_stop_the_service_with_a_clear_error(
    registered: str, broker: Mosquitto
) -> None:
    url = f"mqtt://{SERVICE_USER}:wrong-password-5531@127.0.0.1:{broker.port}"
    with service(registered, url) as proc:
        code = proc.wait(30)
    assert code == 1
    assert "the broker refused the credentials" in proc.log
    assert "not retrying" in proc.log
    assert "wrong-password-5531" not in proc.log
    assert "Traceback" not in proc.log


def test_logs_never_show_secrets_or_payloads(registered: str, broker: Mosquitto) -> None:
    secret_note = f"private-{uuidlib.uuid4().hex}"
    with service(registered, broker.url) as proc:
        proc.wait_subscribed()
        with device_client(broker.port) as device:
            payload = run_payload()
            payload["body"]["note"] = secret_note
            payload["body"]["distance"] = {"value": -1, "unit": "km"}  # rejected, logged
            device.publish(RUN_TOPIC, payload)
            device.ack_for(payload["header"]["uuid"])
        broker.stop()
        assert wait_until(lambda: "lost the broker connection" in proc.log, 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert "rejected message" in proc.log
    assert SERVICE_PASSWORD not in proc.log
    assert secret_note not in proc.log


def test_run_refuses_an_uninitialised_database(tmp_path: Path, broker: Mosquitto) -> None:
    (tmp_path / "fresh.db").touch()  # an empty file: a database without tables
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with service(url, broker.url) as proc:
        code = proc.wait(30)
    assert code == 1
    assert "not initialised; run `kneeguard db upgrade`" in proc.log
    assert "Traceback" not in proc.log
