"""The service's PUBLISH decoder for MQTT 5 (ingest/mqtt.py) against paho's own: the same
message for every packet, with or without properties, and the same error for a malformed one."""

from __future__ import annotations

import struct
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from paho.mqtt import _packet
from paho.mqtt.enums import MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

import ingest.mqtt  # noqa: F401  (installs the decoder)

V5 = MQTTProtocolVersion.MQTTv5
paho_decode = _packet.decode_publish.__wrapped__  # type: ignore[attr-defined]
DECODERS = (_packet.decode_publish, paho_decode)


def publish_packet(
    topic: bytes, qos: int, mid: int, payload: bytes, props: dict[str, Any] | None
) -> bytes:
    """The variable header and payload of an MQTT 5 PUBLISH (what follows the fixed header)."""
    head = struct.pack("!H", len(topic)) + topic + (struct.pack("!H", mid) if qos else b"")
    return head + packed_properties(props) + payload


def packed_properties(props: dict[str, Any] | None) -> bytes:
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    for name, value in (props or {}).items():
        setattr(properties, name, value)
    packed: bytes = properties.pack()  # type: ignore[no-untyped-call]
    return packed


properties = st.none() | st.fixed_dictionaries(
    {},
    optional={
        "MessageExpiryInterval": st.integers(0, 2**32 - 1),
        "ContentType": st.text(max_size=20),
        "UserProperty": st.lists(st.tuples(st.text(max_size=8), st.text(max_size=8)), max_size=3),
        "PayloadFormatIndicator": st.integers(0, 1),
    },
)


def outcome(decode: Any, header: int, packet: bytes) -> object:
    """What a decoder makes of a packet: the message's parts, or "malformed"."""
    try:
        result = decode(header, packet, V5)
    except MalformedPacket:
        return "malformed"
    properties = str(result.properties) if result.properties is not None else None
    return (result.dup, result.qos, result.retain, result.topic, result.mid), (
        bytes(result.payload),
        properties,
    )


@given(
    topic=st.binary(min_size=1, max_size=60),
    qos=st.integers(0, 2),
    mid=st.integers(1, 65535),
    retain=st.booleans(),
    dup=st.booleans(),
    payload=st.binary(max_size=300),
    props=properties,
)
def test_the_fast_decoder_reads_every_packet_as_paho_does(
    topic: bytes,
    qos: int,
    mid: int,
    retain: bool,
    dup: bool,
    payload: bytes,
    props: dict[str, Any] | None,
) -> None:
    header = 0x30 | (dup << 3) | (qos << 1) | retain
    packet = publish_packet(topic, qos, mid, payload, props)
    fast, slow = (
        outcome(decode, header, packet) for decode in (_packet.decode_publish, paho_decode)
    )
    if packed_properties(props) != b"\x00":
        assert fast == slow
    else:  # none on the wire (an empty list of user properties packs to none either):
        # the same message; no `Properties` object where paho made an empty one
        assert isinstance(fast, tuple) and isinstance(slow, tuple)
        assert fast[0] == slow[0] and fast[1][0] == slow[1][0] and fast[1][1] is None


@given(header=st.integers(0x30, 0x3F), packet=st.binary(max_size=40))
def test_a_malformed_packet_fails_as_it_does_in_paho(header: int, packet: bytes) -> None:
    fast, slow = (
        outcome(decode, header, packet) for decode in (_packet.decode_publish, paho_decode)
    )
    if fast != slow:  # only the empty properties may differ
        assert isinstance(fast, tuple) and isinstance(slow, tuple)
        assert fast[0] == slow[0] and fast[1][0] == slow[1][0] and fast[1][1] is None
