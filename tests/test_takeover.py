"""No credentials can take over another client's session, against mosquitto running the shipped
config (deploy/mosquitto/mosquitto.conf binds each client id to the user name).

Reproductions: a device connecting with the service's client id kicked the service off (with a
persistent session, in a loop) or wiped its queued messages (with a clean session while the service
was away); one device kicked another off by using its client id.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from contract.topics import Kind, Topics
from ingest.mqtt import BrokerAddress, MqttConnection
from kneeguard.admin.credentials import set_password, write_acl
from testsupport import (
    ROOT,
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeployMosquitto,
    free_port,
    run_payload,
    self_signed_certificate,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(90)]

TOPICS = Topics("kneeguard/v1")
DEVICES = {("ann", "watch"): "ann-password-1", ("bob", "watch"): "bob-password-2"}
# Ids an attacker would try: the service's documented id and its user name.
SERVICE_IDS = ("kneeguard-ingest", SERVICE_USER)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[DeployMosquitto]:
    mosq = DeployMosquitto(tmp_path / "broker")
    mosq.prepare()
    for (athlete, device), password in DEVICES.items():
        set_password(mosq.password_file, f"{athlete}.{device}", password)
    write_acl(mosq.acl_file, TOPICS, list(DEVICES))
    mosq.start()
    yield mosq
    mosq.stop()


class Client:
    """A paho client that counts its connections and disconnections and keeps what it receives."""

    def __init__(
        self,
        port: int,
        username: str,
        password: str,
        client_id: str,
        *,
        clean_session: bool,
        subscribe: str | None = None,
    ) -> None:
        self.port = port
        self.connects = 0
        self.disconnects = 0
        self.refused = False
        self.received: list[bytes] = []
        self._subscribed = threading.Event()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=clean_session,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        self.client.username_pw_set(username, password)
        self.client.reconnect_delay_set(1, 1)
        self._topic = subscribe
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_message = self._on_message

    def _on_connect(self, client: mqtt.Client, u: object, f: object, rc: object, p: object) -> None:
        if getattr(rc, "is_failure", False):
            self.refused = True
            return
        with self._lock:
            self.connects += 1
        if self._topic is not None:
            client.subscribe(self._topic, qos=1)

    def _on_disconnect(self, *args: object) -> None:
        with self._lock:
            self.disconnects += 1

    def _on_message(self, client: mqtt.Client, u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append(bytes(msg.payload))

    def start(self) -> Client:
        self.client.connect("127.0.0.1", self.port, keepalive=10)
        self.client.loop_start()
        assert wait_until(lambda: self.connects > 0 or self.refused, 10)
        if self._topic is not None:
            assert self._subscribed.wait(10)
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def service(port: int, *, clean_session: bool = False) -> Client:
    return Client(
        port,
        SERVICE_USER,
        SERVICE_PASSWORD,
        "kneeguard-ingest",
        clean_session=clean_session,
        subscribe=TOPICS.subscriptions(None)[0] if not clean_session else None,
    )


def device(port: int, athlete: str, client_id: str, *, clean_session: bool = True) -> Client:
    return Client(
        port,
        f"{athlete}.watch",
        DEVICES[(athlete, "watch")],
        client_id,
        clean_session=clean_session,
    )


@pytest.mark.parametrize("clean_session", [False, True])
def test_a_device_using_the_services_client_id_cannot_kick_the_service(
    broker: DeployMosquitto, clean_session: bool
) -> None:
    svc = service(broker.port).start()
    try:
        for attempt in range(6):
            attacker = device(
                broker.port,
                "ann",
                SERVICE_IDS[attempt % 2],
                clean_session=clean_session,
            ).start()
            attacker.stop()
            assert attacker.connects == 1  # the device itself may connect, under its own id
        # Give a kicked service the time to notice.
        assert not wait_until(lambda: svc.disconnects > 0, 1.5)
        assert svc.connects == 1
        # ...and it still receives what the device publishes.
        sender = device(broker.port, "ann", "anything").start()
        payload = run_payload()
        sender.client.publish(TOPICS.inbound("ann", "watch", Kind.RUN), json.dumps(payload), qos=1)
        assert wait_until(lambda: len(svc.received) == 1, 10)
        sender.stop()
    finally:
        svc.stop()


def test_a_clean_session_under_the_services_id_does_not_wipe_its_queued_messages(
    broker: DeployMosquitto,
) -> None:
    # The service subscribes with its persistent session, then goes away.
    svc = service(broker.port).start()
    svc.stop()
    sender = device(broker.port, "ann", "watch-app").start()
    marker = uuid.uuid4().hex.encode()
    info = sender.client.publish(TOPICS.inbound("ann", "watch", Kind.RUN), marker, qos=1)
    info.wait_for_publish(10)
    sender.stop()
    # While it is away, devices connect with a clean session under its ids.
    for client_id in SERVICE_IDS:
        for athlete in ("ann", "bob"):
            attacker = device(broker.port, athlete, client_id, clean_session=True).start()
            attacker.stop()
    back = service(broker.port).start()
    try:
        assert wait_until(lambda: marker in back.received, 10), back.received
    finally:
        back.stop()


@pytest.mark.parametrize("clean_session", [False, True])
def test_one_device_cannot_kick_another(broker: DeployMosquitto, clean_session: bool) -> None:
    ann = device(broker.port, "ann", "ann-phone", clean_session=False).start()
    try:
        for client_id in ("ann-phone", "ann.watch"):
            attacker = device(broker.port, "bob", client_id, clean_session=clean_session).start()
            attacker.stop()
        assert not wait_until(lambda: ann.disconnects > 0, 1.5)
        assert ann.connects == 1
    finally:
        ann.stop()


def test_every_shipped_listener_binds_client_ids_to_user_names() -> None:
    """`use_username_as_clientid` is a listener option: a listener without it would reopen the
    takeover (mosquitto.conf and the TLS listener in tls.conf)."""
    for name in ("mosquitto.conf", "tls.conf"):
        lines = [
            line.split()
            for line in (ROOT / "deploy" / "mosquitto" / name).read_text().splitlines()
            if line.strip() and not line.startswith("#")
        ]
        listeners = [i for i, words in enumerate(lines) if words[0] == "listener"]
        assert listeners, name
        for start, end in zip(listeners, [*listeners[1:], len(lines)], strict=True):
            assert ["use_username_as_clientid", "true"] in lines[start:end], (name, lines[start])


def test_replicas_with_their_own_service_users_keep_their_sessions(
    broker: DeployMosquitto,
) -> None:
    """The documented set-up of replicas: one service user each, one shared subscription."""
    broker.add_service_user("kneeguard-2")
    broker.reload()
    received: list[str] = []
    connections = []
    for user in (SERVICE_USER, "kneeguard-2"):
        url = f"mqtt://{user}:{SERVICE_PASSWORD}@127.0.0.1:{broker.port}"
        connection = MqttConnection(
            BrokerAddress.from_url(url),
            "kneeguard-ingest",  # the same configured id: the broker names each by its user
            TOPICS.subscriptions("kneeguard"),
            lambda inbound: received.append(inbound.topic),
        )
        connection.start()
        connections.append(connection)
    try:
        assert wait_until(lambda: all(c.ready.is_set() for c in connections), 10)
        sender = device(broker.port, "ann", "app").start()
        for _ in range(10):
            sender.client.publish(TOPICS.inbound("ann", "watch", Kind.RUN), b"{}", qos=0)
        assert wait_until(lambda: len(received) == 10, 10)
        sender.stop()
        assert not wait_until(lambda: not all(c.ready.is_set() for c in connections), 1.5)
    finally:
        for connection in connections:
            connection.stop()


def test_over_tls_too_a_device_cannot_take_the_services_session(tmp_path: Path) -> None:
    """The shipped TLS listener (deploy/mosquitto/tls.conf) binds client ids as well."""
    cert, key = self_signed_certificate(tmp_path / "certs")
    mosq = DeployMosquitto(tmp_path / "broker", tls_port=free_port(), certfile=cert, keyfile=key)
    mosq.prepare()
    set_password(mosq.password_file, "ann.watch", DEVICES[("ann", "watch")])
    write_acl(mosq.acl_file, TOPICS, [("ann", "watch")])
    mosq.start()
    try:
        svc = service(mosq.port).start()
        try:
            assert mosq.tls_port is not None
            for client_id in SERVICE_IDS:
                attacker = device(mosq.tls_port, "ann", client_id, clean_session=True)
                attacker.client.tls_set(ca_certs=str(cert))
                attacker.start()
                attacker.stop()
                assert attacker.connects == 1
            assert not wait_until(lambda: svc.disconnects > 0, 1.5)
            assert svc.connects == 1
        finally:
            svc.stop()
    finally:
        mosq.stop()
