"""The service's changes to paho's client (ingest/mqtt.py): coalesced writes, one wake-up for a
batch's answers, a shared condition for publish confirmations, and the short PUBACK path.

Writes go through real TCP sockets small enough to fill; the rest runs against a real broker.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.mqtt import (
    _PUBACK_REASONS,
    BrokerAddress,
    MqttConnection,
    ReadBufferedSocket,
    _Client,
    _SharedConditionInfo,
)
from testsupport import Mosquitto, device_client, wait_until

PUBLISH, PUBACK, PINGREQ = 0x30, 0x40, 0xC0


@pytest.fixture
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected loopback pair; the sender's end is non-blocking with a small buffer, so it
    fills whenever the receiver falls behind."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.socket()
        sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        sender.connect(server.getsockname())
        receiver, _ = server.accept()
    sender.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sender.setblocking(False)
    try:
        yield sender, receiver
    finally:
        sender.close()
        receiver.close()


def client_on(sock: socket.socket) -> _Client:
    """A client whose connection is `sock` (plain TCP, so its writes are coalesced)."""
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="writes")
    client._sock = ReadBufferedSocket(sock)
    client.buffered_reads = True
    return client


def test_coalesced_writes_keep_every_byte_in_order_through_a_full_socket(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = tcp_pair
    client = client_on(sender)
    chance = random.Random(1752)
    expected = bytearray()
    qos0: list[mqtt.MQTTMessageInfo] = []
    with client.holding_writes():
        for mid in range(1, 1501):
            if mid % 250 == 0:
                # A QoS 0 PUBLISH completes on writing: paho writes it and marks it published.
                info = mqtt.MQTTMessageInfo(mid)
                qos0.append(info)
                command, qos = PUBLISH, 0
            else:
                info = None
                command, qos = chance.choice(((PUBLISH | 0x02, 1), (PUBACK, 0), (PINGREQ, 0)))
            packet = bytes([command]) + chance.randbytes(chance.randrange(1, 9000))
            expected += packet
            client._packet_queue(command, packet, mid, qos, info)
    received = bytearray()

    def drain() -> None:
        # Slowly, so that the sender's socket is full again and again.
        while len(received) < len(expected):
            chunk = receiver.recv(1500)
            if not chunk:
                return
            received.extend(chunk)
            time.sleep(0.0002)

    reader = threading.Thread(target=drain)
    reader.start()
    results: set[MQTTErrorCode] = set()
    deadline = time.monotonic() + 60
    while client._out_packet and time.monotonic() < deadline:
        results.add(client._packet_write())
        time.sleep(0.0005)
    reader.join(60)
    assert not client._out_packet
    assert MQTTErrorCode.MQTT_ERR_AGAIN in results, "the socket never filled: nothing was tested"
    assert bytes(received) == bytes(expected)
    assert all(info.is_published() for info in qos0)


def test_a_write_on_a_lost_connection_keeps_the_packets_for_the_next_one(
    tcp_pair: tuple[socket.socket, socket.socket],
) -> None:
    sender, receiver = tcp_pair
    client = client_on(sender)
    receiver.close()
    # The first write reaches the kernel; the peer's reset comes back to it.
    client._packet_queue(PUBACK, bytes([PUBACK, 2, 0, 1]), 1, 0)
    assert client._packet_write() == MQTTErrorCode.MQTT_ERR_SUCCESS
    time.sleep(0.2)
    packets = [bytes([PUBACK, 2, 0, mid]) for mid in range(2, 50)]
    with client.holding_writes():
        for mid, packet in enumerate(packets, start=2):
            client._packet_queue(PUBACK, packet, mid, 0)
    assert client._packet_write() == MQTTErrorCode.MQTT_ERR_CONN_LOST
    assert [item["packet"] for item in client._out_packet] == packets
    assert all(item["pos"] == 0 for item in client._out_packet)


class CountingSocket:
    """Counts paho's wake-up bytes to its network thread; passes them on."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.sends = 0

    def send(self, data: bytes) -> int:
        self.sends += 1
        sent: int = self.sock.send(data)
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)


@pytest.fixture
def connection(broker: Mosquitto) -> Iterator[MqttConnection]:
    conn = MqttConnection(
        BrokerAddress.from_url(broker.url),
        "client-test",
        ["kneeguard/v1/+/+/run"],
        sink=lambda message: None,
    )
    conn.start()
    assert conn.ready.wait(10)
    try:
        yield conn
    finally:
        conn.stop()


def test_a_batch_of_answers_wakes_the_network_thread_once_and_all_arrive_in_order(
    broker: Mosquitto, connection: MqttConnection
) -> None:
    topic = "kneeguard/v1/alice/watch/ack"
    client = connection._client
    counter = CountingSocket(client._sockpairW)
    client._sockpairW = counter  # type: ignore[assignment]
    with device_client(broker.port) as device:
        device.client.subscribe(topic, qos=1)
        time.sleep(0.3)
        with connection.answering():
            for index in range(500):
                connection.publish(topic, b'{"n":%d}' % index)
            held = counter.sends
        assert held == 0
        assert counter.sends == 1
        assert wait_until(lambda: len(device.received) >= 500, 20)
        assert [payload for _, payload in device.received] == [
            b'{"n":%d}' % index for index in range(500)
        ]
        # The broker confirmed every one of them (the short PUBACK path).
        assert wait_until(lambda: not client._out_messages, 10)
    # Outside a batch, paho wakes its thread for each packet, as before.
    before = counter.sends
    connection.publish(topic, b"{}")
    assert counter.sends == before + 1


def test_a_publish_from_another_thread_during_a_batch_is_not_held(
    broker: Mosquitto, connection: MqttConnection
) -> None:
    topic = "kneeguard/v1/alice/watch/prompt"
    with device_client(broker.port) as device:
        device.client.subscribe(topic, qos=1)
        time.sleep(0.3)
        with connection.answering():
            other = threading.Thread(target=connection.publish, args=(topic, b"other"))
            other.start()
            other.join()
            assert wait_until(lambda: len(device.received) == 1, 10)
        assert device.received == [(topic, b"other")]


def test_confirmations_short_and_with_a_reason_code_and_from_many_threads(
    broker: Mosquitto, connection: MqttConnection
) -> None:
    """MQTT 5: mosquitto answers a publish the ACL refuses with a PUBACK carrying reason code 0x87
    (three bytes), an accepted one with two bytes. Both confirm."""
    lengths: list[int] = []
    client = connection._client
    short = client._handle_pubackcomp

    def spy(cmd: Any) -> MQTTErrorCode:
        lengths.append(len(client._in_packet["packet"]))
        return short(cmd)

    client._handle_pubackcomp = spy  # type: ignore[method-assign]
    connection.publish_confirmed("not/the/service/topic", b"x", timeout=10)
    topic = "kneeguard/v1/alice/watch/ack"
    with device_client(broker.port) as device:
        device.client.subscribe(topic, qos=1)
        time.sleep(0.3)
        errors: list[BaseException] = []

        def confirm(index: int) -> None:
            try:
                connection.publish_confirmed(topic, b"%d" % index, timeout=10)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=confirm, args=(index,)) for index in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert errors == []
        assert wait_until(lambda: len(device.received) == 20, 10)
    assert lengths[0] == 3 and lengths[1:] == [2] * 20


def test_a_waiter_is_not_released_by_another_messages_confirmation() -> None:
    assert mqtt.MQTTMessageInfo is _SharedConditionInfo
    mine, other = mqtt.MQTTMessageInfo(1), mqtt.MQTTMessageInfo(2)
    done = threading.Event()

    def wait() -> None:
        mine.wait_for_publish(10)
        done.set()

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    other._set_as_published()
    assert not done.wait(0.5)
    assert not mine.is_published()
    mine._set_as_published()
    assert done.wait(5)
    waiter.join(5)
    assert mine.is_published() and other.is_published()


def test_each_kept_puback_reason_is_what_paho_decodes() -> None:
    for value, kept in _PUBACK_REASONS.items():
        decoded = _packet.decode_puback(PUBACK, bytes([0, 1, value]), MQTTProtocolVersion.MQTTv5)
        assert (kept.value, kept.getName()) == (decoded.reason.value, decoded.reason.getName())


def puback_with_reason_string() -> bytes:
    properties = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]
    properties.ReasonString = "quota"
    packed: bytes = properties.pack()  # type: ignore[no-untyped-call]
    return bytes([0x97]) + packed


@pytest.mark.parametrize(
    "tail",
    [b"", b"\x10", b"\x10\x00", b"\x87", puback_with_reason_string()],
    ids=["two bytes", "reason code", "empty properties", "refused", "with properties"],
)
def test_every_puback_form_completes_its_message_and_no_other(tail: bytes) -> None:
    client = _Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="pubacks",
        protocol=MQTTProtocolVersion.MQTTv5,
    )
    completed: list[tuple[int, int]] = []
    client.on_publish = lambda client, userdata, mid, reason, properties: completed.append(
        (mid, reason.value)
    )
    # Not connected: paho keeps the messages for sending after a connect.
    first = client.publish("kneeguard/v1/a/w/ack", b"1", qos=1)
    second = client.publish("kneeguard/v1/a/w/ack", b"2", qos=1)
    client._in_packet["command"] = PUBACK
    client._in_packet["packet"] = bytearray(first.mid.to_bytes(2, "big") + tail)
    assert client._handle_pubackcomp("PUBACK") == MQTTErrorCode.MQTT_ERR_SUCCESS
    assert completed == [(first.mid, tail[0] if tail else 0)]
    assert list(client._out_messages) == [second.mid]


def test_a_puback_too_long_for_mqtt_3_1_1_is_refused_as_paho_refuses_it() -> None:
    client = _Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="pubacks-311",
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    info = client.publish("kneeguard/v1/a/w/ack", b"1", qos=1)
    client._in_packet["command"] = PUBACK
    client._in_packet["packet"] = bytearray(info.mid.to_bytes(2, "big") + b"\x10")
    with pytest.raises(MalformedPacket):
        client._handle_pubackcomp("PUBACK")
    assert list(client._out_messages) == [info.mid]
