"""The client's short paths for what every message costs (ingest/mqtt.py), each against paho's own
path as the reference: the packets it reads from a buffer, the PUBLISH it builds for an answer
and the bookkeeping kept for it, the PUBACK, and a received PUBLISH handed to `on_message`.

Reads go through real TCP sockets; the answers and the received messages through a real broker.
"""

from __future__ import annotations

import logging
import random
import socket
import time
from collections.abc import Iterator
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion

from ingest.mqtt import (
    BrokerAddress,
    MqttConnection,
    ReadBufferedSocket,
    _Client,
    publish_packet,
)
from testsupport import Mosquitto, device_client, wait_until

V5, V311 = MQTTProtocolVersion.MQTTv5, MQTTProtocolVersion.MQTTv311
ANSWER_TOPIC = "kneeguard/v1/alice/watch/ack"


class Unwritten:
    """Where a client's socket would be, for tests that stop its packets before the socket."""

    def close(self) -> None:
        pass


def remaining_length(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + remaining_length(len(body)) + body


# Packets a client reads: PUBLISH of every size class of the remaining length (1 to 3 bytes),
# PUBACK short and with a reason code, SUBACK, PINGRESP.
packets = st.one_of(
    st.builds(
        lambda qos, mid, size: packet(
            0x30 | (qos << 1),
            b"\x00\x05a/b/c" + (mid.to_bytes(2, "big") if qos else b"") + b"\x00" + b"x" * size,
        ),
        st.integers(0, 1),
        st.integers(1, 65535),
        st.sampled_from([0, 1, 100, 118, 119, 120, 1000, 16374, 16375, 20000]),
    ),
    st.builds(lambda mid: packet(0x40, mid.to_bytes(2, "big")), st.integers(1, 65535)),
    st.builds(lambda mid: packet(0x40, mid.to_bytes(2, "big") + b"\x10"), st.integers(1, 65535)),
    st.just(packet(0x90, b"\x00\x01\x00\x01")),
    st.just(packet(0xD0, b"")),
)


@pytest.fixture
def socket_pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    pairs: list[tuple[socket.socket, socket.socket]] = []
    yield pairs
    for sender, receiver in pairs:
        sender.close()
        receiver.close()


def tcp_pair(pairs: list[tuple[socket.socket, socket.socket]]) -> tuple[socket.socket, Any]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        sender = socket.create_connection(server.getsockname())
        receiver, _ = server.accept()
    receiver.setblocking(False)
    pairs.append((sender, receiver))
    return sender, receiver


def reader(client: mqtt.Client, sock: Any) -> list[tuple[int, bytes, int]]:
    """Make `client` read from `sock` and record each packet it hands to its handlers."""
    handled: list[tuple[int, bytes, int]] = []

    def record() -> MQTTErrorCode:
        packet = client._in_packet
        handled.append((packet["command"], bytes(packet["packet"]), packet["remaining_length"]))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    client._sock = sock
    client._packet_handle = record  # type: ignore[method-assign]
    return handled


def read_until(client: mqtt.Client, handled: list[Any], count: int) -> None:
    deadline = time.monotonic() + 10
    while len(handled) < count:
        rc = client._packet_read()
        assert rc in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_AGAIN), rc
        assert time.monotonic() < deadline, f"read {len(handled)} of {count} packets"


@given(stream=st.lists(packets, min_size=1, max_size=30), cuts=st.randoms())
@settings(max_examples=60, deadline=None)
def test_packets_taken_from_the_buffer_are_the_packets_paho_reads(
    stream: list[bytes], cuts: random.Random
) -> None:
    """The same bytes, sent in the same pieces, to this client and to paho's: the same packets
    reach the handlers, whole or cut anywhere by the end of a `recv`."""
    pairs: list[tuple[socket.socket, socket.socket]] = []
    try:
        ours_out, ours_in = tcp_pair(pairs)
        paho_out, paho_in = tcp_pair(pairs)
        ours = _Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ours")
        theirs = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="paho")
        ours_handled = reader(ours, ReadBufferedSocket(ours_in))
        paho_handled = reader(theirs, paho_in)
        data = b"".join(stream)
        at = 0
        while at < len(data):
            piece = data[at : at + cuts.choice([1, 3, 700, 5000, len(data)])]
            at += len(piece)
            ours_out.sendall(piece)
            paho_out.sendall(piece)
        read_until(ours, ours_handled, len(stream))
        read_until(theirs, paho_handled, len(stream))
        assert ours_handled == paho_handled
    finally:
        for sender, receiver in pairs:
            sender.close()
            receiver.close()


def test_a_remaining_length_longer_than_four_bytes_is_refused_as_paho_refuses_it(
    socket_pairs: list[tuple[socket.socket, socket.socket]],
) -> None:
    sender, receiver = tcp_pair(socket_pairs)
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="ours")
    handled = reader(client, ReadBufferedSocket(receiver))
    # A whole packet first, so that the bad one is read from the buffer.
    sender.sendall(packet(0xD0, b"") + b"\x30\xff\xff\xff\xff\x01")
    read_until(client, handled, 1)
    rc = client._packet_read()
    while rc == MQTTErrorCode.MQTT_ERR_AGAIN:
        rc = client._packet_read()
    assert rc == MQTTErrorCode.MQTT_ERR_PROTOCOL
    assert len(handled) == 1


@given(
    topic=st.text(st.characters(codec="utf-8", exclude_characters="#+\x00"), min_size=1),
    mid=st.integers(1, 65535),
    size=st.one_of(st.integers(0, 300), st.sampled_from([16_370, 16_384, 2_097_140, 2_097_152])),
    v5=st.booleans(),
)
@settings(max_examples=80, deadline=None)
def test_an_answers_publish_packet_is_the_one_paho_builds(
    topic: str, mid: int, size: int, v5: bool
) -> None:
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="paho",
        protocol=V5 if v5 else V311,
    )
    built: list[bytes] = []
    client._sock = Unwritten()  # type: ignore[assignment]
    client._packet_queue = lambda command, packet, *rest: built.append(bytes(packet))  # type: ignore[assignment, method-assign]
    payload = b"p" * size
    client._send_publish(mid, topic.encode(), payload, qos=1)
    assert publish_packet(topic.encode(), mid, payload, v5) == built[0]


def bookkeeping(client: mqtt.Client, info: mqtt.MQTTMessageInfo) -> object:
    kept = client._out_messages.get(info.mid)
    message = (
        None
        if kept is None
        else (kept.topic, kept.payload, kept.qos, kept.retain, kept.dup, kept.state, kept.mid)
    )
    return info.rc, info.mid, message, client._inflight_messages, len(client._out_messages)


def prepare(client: mqtt.Client, situation: str) -> list[tuple[int, bytes, int, int]]:
    """Put `client` in `situation`; the packets it queues from then on are listed."""
    queued: list[tuple[int, bytes, int, int]] = []

    def queue(
        command: int, packet: bytes | bytearray, mid: int, qos: int, info: object = None
    ) -> MQTTErrorCode:
        queued.append((command, bytes(packet), mid, qos))
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    client._packet_queue = queue  # type: ignore[method-assign]
    if situation != "not connected":
        client._sock = Unwritten()  # type: ignore[assignment]
    if situation == "window full":
        client.max_inflight_messages_set(1)
        client.publish("first", b"1", qos=1)
    if situation == "queue full":
        client.max_queued_messages_set(1)
        client.publish("first", b"1", qos=1)
    if situation == "id in use":
        client._out_messages[1] = mqtt.MQTTMessage(1, b"held")
    return queued


@pytest.mark.parametrize("protocol", [V5, V311], ids=["MQTT 5", "MQTT 3.1.1"])
@pytest.mark.parametrize(
    "situation", ["connected", "not connected", "window full", "queue full", "id in use"]
)
def test_an_answer_is_kept_as_paho_keeps_a_qos_1_publish(
    protocol: MQTTProtocolVersion, situation: str
) -> None:
    ours = _Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="c", protocol=protocol
    )
    theirs = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id="c", protocol=protocol
    )
    ours_queued, theirs_queued = (prepare(client, situation) for client in (ours, theirs))
    mine = ours.publish_at_least_once(ANSWER_TOPIC, b'{"status":"accepted"}')
    paho = theirs.publish(ANSWER_TOPIC, b'{"status":"accepted"}', qos=1)
    assert bookkeeping(ours, mine) == bookkeeping(theirs, paho)
    assert ours_queued == theirs_queued


def test_with_paho_debug_records_on_an_answer_takes_pahos_path(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = _Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="c")
    client.enable_logger(logging.getLogger("ingest.paho"))
    client._sock = Unwritten()  # type: ignore[assignment]
    client._packet_queue = lambda *args: MQTTErrorCode.MQTT_ERR_SUCCESS  # type: ignore[method-assign]
    with caplog.at_level(logging.DEBUG, logger="ingest.paho"):
        client.publish_at_least_once(ANSWER_TOPIC, b"{}")
        client._send_puback(7)
    assert [r.getMessage().split(" (")[0] for r in caplog.records] == [
        "Sending PUBLISH",
        "Sending PUBACK",
    ]


@pytest.fixture
def connection(broker: Mosquitto) -> Iterator[tuple[MqttConnection, list[mqtt.MQTTMessage]]]:
    received: list[mqtt.MQTTMessage] = []
    conn = MqttConnection(
        BrokerAddress.from_url(broker.url), "short-paths", ["kneeguard/v1/+/+/run"], sink=print
    )
    conn._client.on_message = lambda client, userdata, message: received.append(message)
    conn.start()
    assert conn.ready.wait(10)
    try:
        yield conn, received
    finally:
        conn.stop()


def test_answers_reach_the_device_and_are_confirmed(
    broker: Mosquitto, connection: tuple[MqttConnection, list[mqtt.MQTTMessage]]
) -> None:
    conn, _ = connection
    with device_client(broker.port) as device:
        device.client.subscribe(ANSWER_TOPIC, qos=1)
        time.sleep(0.3)
        with conn.answering():
            for index in range(300):
                conn.publish(ANSWER_TOPIC, b'{"n":%d}' % index)
        assert wait_until(lambda: len(device.received) >= 300, 20)
        assert [payload for _, payload in device.received] == [
            b'{"n":%d}' % index for index in range(300)
        ]
        assert wait_until(lambda: not conn._client._out_messages, 10)
        assert conn._client._inflight_messages == 0


@pytest.mark.parametrize("qos", [0, 1])
def test_a_received_publish_reaches_on_message_as_from_paho(
    broker: Mosquitto, connection: tuple[MqttConnection, list[mqtt.MQTTMessage]], qos: int
) -> None:
    conn, received = connection
    topic = "kneeguard/v1/alice/watch/run"
    with device_client(broker.port) as device:
        for index in range(50):
            device.client.publish(topic, b"run %d" % index, qos=qos)
        assert wait_until(lambda: len(received) == 50, 10)
    assert [(m.topic, m.payload, m.qos, m.retain, m.dup) for m in received] == [
        (topic, b"run %d" % index, qos, False, False) for index in range(50)
    ]
    assert all(m.properties is None for m in received)
    if qos:
        assert all(m.mid for m in received)
        # Not acknowledged by the client itself: the service acks when it has stored them.
        for m in received:
            conn.ack(m.mid, m.qos)


def test_a_per_topic_callback_still_takes_its_messages(
    broker: Mosquitto, connection: tuple[MqttConnection, list[mqtt.MQTTMessage]]
) -> None:
    conn, received = connection
    filtered: list[bytes] = []
    conn._client.message_callback_add(
        "kneeguard/v1/alice/+/run",
        lambda client, userdata, message: filtered.append(bytes(message.payload)),
    )
    with device_client(broker.port) as device:
        device.client.publish("kneeguard/v1/alice/watch/run", b"a", qos=1)
        device.client.publish("kneeguard/v1/bob/watch/run", b"b", qos=1)
        assert wait_until(lambda: len(filtered) == 1 and len(received) == 1, 10)
    assert filtered == [b"a"]
    assert [m.payload for m in received] == [b"b"]
