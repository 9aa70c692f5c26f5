"""The one class that owns the broker connection.

It connects with a fixed client id and a persistent session, subscribes inside `on_connect` (so
subscriptions come back after a reconnect), turns paho's messages into `Inbound` before anything
else sees them, and acknowledges a message to the broker only when told to (paho's manual ack).
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote, urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt import _packet
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.exception import MalformedPacket
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from db.urls import check_password_encoded, redact_url
from ingest.messages import Inbound

if TYPE_CHECKING:
    from paho.mqtt.client import _OutPacket

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


PROTOCOLS = {"5": MQTTProtocolVersion.MQTTv5, "3.1.1": MQTTProtocolVersion.MQTTv311}

# Every subscription at QoS 1 with the retain flag kept as the device published it.
SUBSCRIBE_OPTIONS = SubscribeOptions(qos=1, retainAsPublished=True)
# MQTT 5 session expiry interval meaning "never" (4294967295 s).
SESSION_NEVER_EXPIRES = 0xFFFFFFFF

# CONNACK reason codes after which retrying cannot help.
_FATAL_CONNACK = {
    133: "the broker refused the client id",
    134: "the broker refused the credentials (bad user name or password)",
    132: "the broker does not speak MQTT 5; upgrade it, or add ?protocol=3.1.1 to the URL",
    135: "the broker refused the credentials (not authorized)",
    140: "the broker refused the authentication method",
}


class BrokerConfigError(ValueError):
    """The broker URL cannot be used."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where and how to connect, parsed from KNEEGUARD_MQTT_URL."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None
    cafile: str | None = None
    # "5", or "3.1.1" for a broker without MQTT 5 (`?protocol=3.1.1`): then a retained publish
    # forwarded live reaches the service unflagged and cannot be refused.
    protocol: str = "5"

    @classmethod
    def from_url(cls, url: str) -> BrokerAddress:
        try:
            check_password_encoded(url, "the broker URL")
        except ValueError as exc:
            raise BrokerConfigError(str(exc)) from None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            # urlsplit's message may quote a part of the URL: say which, not what.
            raise BrokerConfigError(
                f"invalid broker URL {redact_url(url)!r}: bad host or port"
            ) from None
        if parts.scheme not in ("mqtt", "mqtts"):
            raise BrokerConfigError("broker URL must start with mqtt:// or mqtts://")
        if not parts.hostname:
            raise BrokerConfigError("broker URL has no host")
        tls = parts.scheme == "mqtts"
        query = parse_qs(parts.query)
        cafile = query.get("cafile", [None])[0]
        protocol = query.get("protocol", ["5"])[0]
        if protocol not in PROTOCOLS:
            raise BrokerConfigError(
                f"broker URL: protocol must be {' or '.join(PROTOCOLS)}, not {protocol!r}"
            )
        return cls(
            host=parts.hostname,
            port=port or (8883 if tls else 1883),
            tls=tls,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            cafile=cafile,
            protocol=protocol,
        )

    def describe(self) -> str:
        """Address for log lines: never the password."""
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


MessageSink = Callable[[Inbound], None]

READ_CHUNK = 64 * 1024


class ReadBufferedSocket:
    """A plain TCP socket whose reads come from a user-space buffer filled 64 KiB at a time.

    paho reads every packet with two or more `recv` calls (the command byte, each byte of the
    remaining length, then the rest); under a burst that was the largest single item in the ingest
    profile. Here one `recv` serves many packets. `pending()` tells paho's loop that buffered bytes
    are waiting, exactly as it already asks of TLS sockets, so none are left unread while `select`
    sleeps.
    """

    __slots__ = ("_buffer", "_offset", "_sock")

    def __init__(self, sock: Any) -> None:
        self._sock = sock
        self._buffer = b""
        self._offset = 0

    def recv(self, bufsize: int) -> bytes:
        if self._offset >= len(self._buffer):
            data: bytes = self._sock.recv(READ_CHUNK)
            if len(data) <= bufsize:
                return data
            self._buffer = data
            self._offset = 0
        start = self._offset
        chunk = self._buffer[start : start + bufsize]
        self._offset = start + len(chunk)
        return chunk

    def pending(self) -> int:
        return len(self._buffer) - self._offset

    def take_packet(self) -> tuple[int, bytes] | None:
        """The next whole MQTT packet in the buffer, as its first byte and what follows its
        remaining length; None when the buffer holds less than a packet, or a remaining length
        longer than the protocol's four bytes (paho's reading says what is wrong with it)."""
        buffer = self._buffer
        start = self._offset
        end = len(buffer)
        at = start + 1
        length = 0
        shift = 0
        while True:
            if at >= end or at - start > 4:
                return None
            byte = buffer[at]
            at += 1
            length |= (byte & 0x7F) << shift
            if not byte & 0x80:
                break
            shift += 7
        stop = at + length
        if stop > end:
            return None
        self._offset = stop
        return buffer[start], buffer[at:stop]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _decode_publish_fast(
    original: Callable[[int, bytes | bytearray, MQTTProtocolVersion], _packet.PublishPacket],
) -> Callable[[int, bytes | bytearray, MQTTProtocolVersion], _packet.PublishPacket]:
    """paho's PUBLISH decoder, without building a `Properties` for an MQTT 5 PUBLISH that has
    none (what devices send): in a bare subscriber, that object and its parsing made MQTT 5 cost
    about 45 µs more per message than MQTT 3.1.1 (docs/BENCHMARKS.md). Such a packet is the
    MQTT 3.1.1 packet plus one zero byte after the packet id; it is read here directly, with one
    copy of the payload (paho's `struct` formats, built per length, copy it three times), and its
    message's `properties` is None.
    Anything else, malformed packets included, goes to paho's decoder unchanged."""

    @functools.wraps(original)
    def decode(
        header: int, packet: bytes | bytearray, protocol: MQTTProtocolVersion
    ) -> _packet.PublishPacket:
        if protocol == MQTTProtocolVersion.MQTTv5 and len(packet) > 2:
            topic_length = (packet[0] << 8) | packet[1]
            qos = (header & 0x06) >> 1
            at = 2 + topic_length + (2 if qos else 0)
            if topic_length and len(packet) > at and packet[at] == 0:
                return _packet.PublishPacket(
                    dup=bool(header & 0x08),
                    qos=qos,
                    retain=bool(header & 0x01),
                    topic=bytes(packet[2 : 2 + topic_length]),
                    mid=(packet[at - 2] << 8) | packet[at - 1] if qos else 0,
                    properties=None,
                    payload=bytes(packet[at + 1 :]),
                )
        return original(header, packet, protocol)

    decode.kneeguard_fast = True  # type: ignore[attr-defined]
    return decode


if not getattr(_packet.decode_publish, "kneeguard_fast", False):
    _packet.decode_publish = _decode_publish_fast(_packet.decode_publish)  # type: ignore[assignment]


class _SharedConditionInfo(mqtt.MQTTMessageInfo):
    """paho's `MQTTMessageInfo` with one `Condition` shared by every message instead of one each.

    paho builds one for every message it publishes or receives, and building the `Condition` was
    the largest single item of a device's answer in the ingest profile (docs/BENCHMARKS.md).
    Waiting for a PUBACK is rare (a clean stop, an in-app delivery), so every completion wakes
    all waiters (`notify_all`) and each checks its own message, as paho's wait loop already does.
    """

    __slots__ = ()
    _condition = threading.Condition()

    def __init__(self, mid: int) -> None:
        self.mid = mid
        self._published = False
        self.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        self._iterpos = 0

    def _set_as_published(self) -> None:
        with self._condition:
            self._published = True
            self._condition.notify_all()


if not issubclass(mqtt.MQTTMessageInfo, _SharedConditionInfo):
    mqtt.MQTTMessageInfo = _SharedConditionInfo  # type: ignore[misc]


def _puback_reason(value: int) -> ReasonCode:
    reason = ReasonCode(PacketTypes.PUBACK)
    reason.unpack(bytes([value]))
    return reason


# What paho would decode for a PUBACK without properties, by reason code (MQTT 5 names each one
# a PUBACK may carry); nothing in the service reads them, they are passed to paho's bookkeeping.
_PUBACK_REASONS = {
    value: _puback_reason(value) for value in (0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99)
}
_PUBACK_NO_PROPERTIES = Properties(PacketTypes.PUBACK)  # type: ignore[no-untyped-call]

# One socket write takes queued packets up to this size.
WRITE_CHUNK = 64 * 1024


def publish_packet(topic: bytes, mid: int, payload: bytes, v5: bool) -> bytes:
    """A QoS 1 PUBLISH without properties, not a resend: what paho's `_send_publish` writes."""
    remaining = 4 + len(topic) + len(payload) + (1 if v5 else 0)
    header = bytearray(b"\x32")
    while True:
        byte = remaining & 0x7F
        remaining >>= 7
        if not remaining:
            header.append(byte)
            break
        header.append(byte | 0x80)
    return b"".join(
        (
            header,
            len(topic).to_bytes(2, "big"),
            topic,
            mid.to_bytes(2, "big"),
            b"\x00" if v5 else b"",
            payload,
        )
    )


_SHORT_PUBLISH_PROTOCOLS = (MQTTProtocolVersion.MQTTv311, MQTTProtocolVersion.MQTTv5)


def _puback_packet(mid: int) -> bytes:
    """A PUBACK with reason "success" and no properties: two bytes after the header in MQTT 3.1.1
    and in MQTT 5 alike."""
    return bytes((mqtt.PUBACK, 2, mid >> 8, mid & 0xFF))


class _Client(mqtt.Client):
    """paho's client with buffered reads and coalesced writes on plain TCP connections (TLS
    sockets buffer already), a way for one thread to queue many packets with one wake-up, and
    short paths for the packets each message costs (a received PUBLISH, its PUBACK, the answer
    and the answer's PUBACK), each tested against paho's own (tests/test_mqtt_short_paths.py)."""

    buffered_reads = False
    # The thread whose packets are queued without waking the network thread (`holding_writes`).
    _holder: int | None = None

    def _create_socket(self) -> Any:
        sock = super()._create_socket()
        if isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
            self.buffered_reads = True
            return ReadBufferedSocket(sock)
        self.buffered_reads = False
        return sock

    def logs_debug(self) -> bool:
        """Whether paho's debug records go anywhere; the short paths below skip them otherwise."""
        return self.on_log is not None or (
            self._logger is not None and self._logger.isEnabledFor(logging.DEBUG)
        )

    def publish_at_least_once(self, topic: str, payload: bytes) -> mqtt.MQTTMessageInfo:
        """paho's `publish(topic, payload, qos=1)` for what the service sends: a topic it built
        (UTF-8, no wildcards) and bytes, without properties. The same bookkeeping (the message
        kept until its PUBACK, the in-flight count, the resend after a reconnect) without
        paho's checks, conversions and debug record: see docs/BENCHMARKS.md."""
        if self._protocol not in _SHORT_PUBLISH_PROTOCOLS or self.logs_debug():
            return self.publish(topic, payload, qos=1)
        topic_bytes = topic.encode()
        mid = self._mid_generate()
        message = mqtt.MQTTMessage(mid, topic_bytes)
        message.timestamp = mqtt.time_func()
        message.payload = payload
        message.qos = 1
        info = message.info
        with self._out_message_mutex:
            if (
                0 < self._max_queued_messages <= len(self._out_messages)
                or mid in self._out_messages
            ):
                info.rc = MQTTErrorCode.MQTT_ERR_QUEUE_SIZE
                return info
            self._out_messages[mid] = message
            if 0 < self._max_inflight_messages <= self._inflight_messages:
                message.state = mqtt.mqtt_ms_queued
                info.rc = MQTTErrorCode.MQTT_ERR_SUCCESS
                return info
            if self._sock is None:
                # Sent when the connection is made again, as paho does.
                message.state = mqtt.mqtt_ms_publish
                info.rc = MQTTErrorCode.MQTT_ERR_NO_CONN
                return info
            self._inflight_messages += 1
            message.state = mqtt.mqtt_ms_wait_for_puback
            packet = publish_packet(
                topic_bytes, mid, payload, self._protocol == MQTTProtocolVersion.MQTTv5
            )
            info.rc = self._packet_queue(mqtt.PUBLISH, packet, mid, 1, info)
            return info

    def _send_puback(self, mid: int) -> MQTTErrorCode:
        """paho's PUBACK, without its debug record when those are off."""
        if self.logs_debug():
            return super()._send_puback(mid)
        return self._packet_queue(mqtt.PUBACK, _puback_packet(mid), mid, 1)

    def _packet_read(self) -> MQTTErrorCode:
        """A packet that lies whole in the read buffer is taken from it at once; paho reads it
        with a call for its first byte, one for each byte of its remaining length and one for the
        rest, each copied into its own growing buffer. Anything else (the first packet of a
        `recv`, one cut by the end of the buffer, a malformed length) is paho's to read."""
        sock = self._sock
        if self._in_packet["command"] != 0 or not isinstance(sock, ReadBufferedSocket):
            return super()._packet_read()
        taken = sock.take_packet()
        if taken is None:
            return super()._packet_read()
        command, body = taken
        self._in_packet = {
            "command": command,
            "have_remaining": 1,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": len(body),
            "packet": bytearray(body),
            "to_process": 0,
            "pos": 0,
        }
        try:
            rc = self._packet_handle()
        except MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        self._in_packet = {
            "command": 0,
            "have_remaining": 0,
            "remaining_count": [],
            "remaining_mult": 1,
            "remaining_length": 0,
            "packet": bytearray(b""),
            "to_process": 0,
            "pos": 0,
        }
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        return rc

    def _handle_publish(self) -> MQTTErrorCode:
        """paho's handling of a received PUBLISH at QoS 0 or 1, without its debug record when
        those are off and without looking for per-topic callbacks (the service sets none)."""
        if self.logs_debug() or self._on_message_filtered._root._children:
            return super()._handle_publish()
        result = _packet.decode_publish(
            self._in_packet["command"], self._in_packet["packet"], self._protocol
        )
        if result.qos == 2:
            return super()._handle_publish()
        message = mqtt.MQTTMessage(result.mid, result.topic)
        message.dup = result.dup
        message.qos = result.qos
        message.retain = result.retain
        message.properties = result.properties
        message.payload = result.payload
        message.timestamp = mqtt.time_func()
        with self._callback_mutex:
            on_message = self.on_message
        if on_message is not None:
            with self._in_callback_mutex:
                try:
                    on_message(self, self._userdata, message)
                except Exception as err:
                    self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                    if not self.suppress_exceptions:
                        raise
        if result.qos == 1 and not self._manual_ack:
            return self._send_puback(result.mid)
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    @contextmanager
    def holding_writes(self) -> Iterator[None]:
        """Packets this thread queues inside the block wake the network thread once, at the end.

        paho writes a byte to a socket pair for every packet queued from another thread, so that
        its `select` wakes up; for a batch's answers and acks that was one system call and one
        wake-up per packet. The network thread still writes whatever is queued whenever it loops.
        """
        self._holder = threading.get_ident()
        try:
            yield
        finally:
            self._holder = None
            if self._out_packet:
                self._wake_for_writes()

    def _wake_for_writes(self) -> None:
        # The end of paho's `_packet_queue`, once.
        if self._sockpairW is not None:
            with suppress(BlockingIOError):
                self._sockpairW.send(mqtt.sockpair_data)
        if (
            self._thread is None
            and self._on_socket_register_write is None
            and self._in_callback_mutex.acquire(False)
        ):
            self._in_callback_mutex.release()
            self.loop_write()
            return
        self._call_socket_register_write()

    def _packet_queue(
        self,
        command: int,
        packet: bytes | bytearray,
        mid: int,
        qos: int,
        info: mqtt.MQTTMessageInfo | None = None,
    ) -> MQTTErrorCode:
        if self._holder is None or self._holder != threading.get_ident():
            return super()._packet_queue(command, packet, mid, qos, info)
        self._out_packet.append(
            {
                "command": command,
                "mid": mid,
                "qos": qos,
                "pos": 0,
                "to_process": len(packet),
                "packet": packet,
                "info": info,
            }
        )
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _packet_write(self) -> MQTTErrorCode:
        """Queued packets in one `send` each 64 KiB instead of one each.

        Only packets after whose writing paho does nothing are joined (not a QoS 0 PUBLISH, which
        completes on writing, nor a DISCONNECT); paho writes the others, and everything on TLS.
        """
        if not self.buffered_reads:
            return super()._packet_write()
        out = self._out_packet
        while True:
            group: list[_OutPacket] = []
            size = 0
            while out and size < WRITE_CHUNK:
                head = out[0]
                kind = head["command"] & 0xF0
                if kind == mqtt.DISCONNECT or (kind == mqtt.PUBLISH and head["qos"] == 0):
                    break
                group.append(out.popleft())
                size += head["to_process"]
            if not group:
                return super()._packet_write() if out else MQTTErrorCode.MQTT_ERR_SUCCESS
            data = b"".join(bytes(item["packet"][item["pos"] :]) for item in group)
            try:
                written = self._sock_send(data)
            except (AttributeError, ValueError):
                out.extendleft(reversed(group))
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            except BlockingIOError:
                out.extendleft(reversed(group))
                return MQTTErrorCode.MQTT_ERR_AGAIN
            except OSError as err:
                out.extendleft(reversed(group))
                self._easy_log(mqtt.MQTT_LOG_ERR, "failed to write on socket: %s", err)
                return MQTTErrorCode.MQTT_ERR_CONN_LOST
            with self._msgtime_mutex:
                self._last_msg_out = mqtt.time_func()
            for index, item in enumerate(group):
                if written >= item["to_process"]:
                    written -= item["to_process"]
                    item["pos"] += item["to_process"]
                    item["to_process"] = 0
                    continue
                item["pos"] += written
                item["to_process"] -= written
                out.extendleft(reversed(group[index:]))
                # The socket took less than offered: it is full for now.
                return MQTTErrorCode.MQTT_ERR_AGAIN
            if not out:
                return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_pubackcomp(self, cmd: Any) -> MQTTErrorCode:
        """A PUBACK without properties (what the broker sends for every answer: two bytes, or
        with MQTT 5 three, with a reason code such as mosquitto's 0x10, no subscriber) without
        decoding a reason code and properties for each: one is kept per known reason code.
        Anything else, malformed packets included, goes to paho."""
        packet = self._in_packet["packet"]
        size = len(packet)
        short = size == 2 or (
            self._protocol == MQTTProtocolVersion.MQTTv5
            and (size == 3 or (size == 4 and packet[3] == 0))
        )
        if cmd != "PUBACK" or not short:
            return super()._handle_pubackcomp(cmd)
        reason = _PUBACK_REASONS.get(packet[2] if size > 2 else 0)
        if reason is None:
            return super()._handle_pubackcomp(cmd)
        mid = (packet[0] << 8) | packet[1]
        with self._out_message_mutex:
            if mid in self._out_messages:
                return self._do_on_publish(mid, reason, _PUBACK_NO_PROPERTIES)
        return MQTTErrorCode.MQTT_ERR_SUCCESS


class MqttConnection:
    """A paho client with KneeGuard's connection policy; the writer's `Broker`."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        subscriptions: Sequence[str],
        sink: MessageSink,
        *,
        clock: Callable[[], Any] = utcnow,
        max_inflight: int = 0,
        status_topic: str | None = None,
        unsubscribe: Sequence[str] = (),
    ) -> None:
        self.address = address
        self._subscriptions = list(subscriptions)
        # Filters this session no longer uses: a persistent session keeps its subscriptions, so
        # one that used to take more kinds would go on receiving them after a configuration
        # change (docs/OPERATIONS.md, the check-in session).
        self._unsubscribe = [f for f in unsubscribe if f not in self._subscriptions]
        self._sink = sink
        self._clock = clock
        self._receiving = threading.Event()
        self._receiving.set()
        self.fatal_error: str | None = None
        self.publishes_refused = 0
        # Connections made so far; the messages of each carry its number (`ack`).
        self._connection = 0
        self.stale_acks = 0
        self._refusal_said: float | None = None
        self.ready = threading.Event()
        self.failed = threading.Event()
        self._pending_suback: int | None = None
        self._last_publish: mqtt.MQTTMessageInfo | None = None
        self._publish_lock = threading.Lock()
        # Topics whose retained message this connection cleared, and how many echoes are due.
        self._cleared: dict[str, int] = {}
        # MQTT 5, for one subscription option: "retain as published". Under MQTT 3.1.1 the
        # broker clears the retain flag of a message it forwards live, so a device's retained
        # publish could not be told from any other and was stored; now it arrives flagged and is
        # rejected (DESIGN.md: retained publishes are never stored).
        self._v5 = address.protocol == "5"
        if not self._v5:
            log.warning(
                "MQTT %s: a retained publish forwarded live cannot be told from any other and "
                "is stored; use a broker with MQTT 5 to refuse it",
                address.protocol,
            )
        client = _Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if self._v5 else False,
            protocol=PROTOCOLS[address.protocol],
            manual_ack=True,
        )
        client.enable_logger(logging.getLogger("ingest.paho"))
        client.reconnect_delay_set(min_delay=1, max_delay=120)
        # 0 = no window for our own QoS 1 publishes (the acks). With a window, paho walks every
        # outstanding message on each PUBACK to find queued ones to send; under a burst that scan
        # was half of the network thread's time in the ingest profile.
        client.max_inflight_messages_set(max_inflight)
        # Birth and last will: a retained `online` once subscribed, `offline` when the broker
        # loses the connection (the will) or the service stops cleanly.
        self._status_topic = status_topic
        if status_topic is not None:
            client.will_set(status_topic, b"offline", qos=1, retain=True)
        if address.username is not None:
            client.username_pw_set(address.username, address.password)
        if address.tls:
            client.tls_set(ca_certs=address.cafile, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._client = client

    @property
    def buffered_reads(self) -> bool:
        """Whether the current connection reads through `ReadBufferedSocket` (plain TCP)."""
        return self._client.buffered_reads

    def start(self) -> None:
        """Connect in the background; paho keeps reconnecting with backoff until `stop`."""
        log.info("connecting to broker %s", self.address.describe())
        # A persistent session, as MQTT 3.1.1's clean_session=False gave: resumed on every
        # connect and kept by the broker while the service is away, for as long as it is away.
        if not self._v5:
            self._client.connect_async(self.address.host, self.address.port, keepalive=30)
        else:
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = SESSION_NEVER_EXPIRES
            self._client.connect_async(
                self.address.host,
                self.address.port,
                keepalive=30,
                clean_start=False,
                properties=properties,
            )
        self._client.loop_start()

    def stop_receiving(self) -> None:
        """Take no more messages: anything arriving now stays unacknowledged for redelivery."""
        self._receiving.clear()

    def stop(self, flush_timeout: float = 5.0) -> None:
        """Wait for outgoing acks to leave, then disconnect cleanly."""
        if self._status_topic is not None and self.ready.is_set():
            info = self._client.publish(self._status_topic, b"offline", qos=1, retain=True)
            with self._publish_lock:
                self._last_publish = info
        with self._publish_lock:
            last = self._last_publish
        if last is not None and last.rc == MQTTErrorCode.MQTT_ERR_SUCCESS:
            try:
                last.wait_for_publish(flush_timeout)
            except (RuntimeError, ValueError):
                log.warning("could not confirm the last acks before disconnecting")
        self._client.disconnect()
        self._client.loop_stop()

    # Broker protocol used by the writer ------------------------------------------------------

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 without waiting (a device's answer, a prompt). paho keeps the message
        until its PUBACK; it refuses one only when 65,535 are already
        outstanding (its message ids) or its queue is full, and then the answer is lost: the
        device publishes again and is answered `duplicate`. Counted, and said at most once a
        minute, so that an operator can see it."""
        info = self._client.publish_at_least_once(topic, payload)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            self.publishes_refused += 1
            now = time.monotonic()
            if self._refusal_said is None or now - self._refusal_said >= 60:
                self._refusal_said = now
                log.warning(
                    "the MQTT client holds too many unconfirmed publishes; answers to devices "
                    "not sent so far: %d (the devices publish again)",
                    self.publishes_refused,
                )
            return
        with self._publish_lock:
            self._last_publish = info

    def publish_confirmed(self, topic: str, payload: bytes, timeout: float = 10.0) -> None:
        """Publish at QoS 1 and wait for the broker's PUBACK; raise if it does not come."""
        # Right after a start or a reconnect the session is still being set up: wait for it
        # rather than fail and push the delivery back by a whole backoff step.
        if not self.ready.wait(timeout):
            raise ConnectionError("not connected to the broker")
        info = self._client.publish(topic, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish failed: {mqtt.error_string(info.rc)}")
        info.wait_for_publish(timeout)
        if not info.is_published():
            raise TimeoutError(f"no PUBACK from the broker within {timeout:.0f} s")

    def ack(self, mid: int, qos: int, connection: int | None = None) -> None:
        """Acknowledge a message to the broker; `connection` is the one it came on.

        Not on a later connection: after a reconnect the broker sends what was not acknowledged
        again, with the same packet id, and that copy gets its own ack. Acknowledged here, the
        id would be free again at the broker, and the copy's ack could then reach a different
        message given that id, before that message is stored.
        """
        if qos == 0:
            return
        if connection is not None and connection != self._connection:
            self.stale_acks += 1
            log.debug("no ack for message %d of an earlier connection", mid)
            return
        self._client.ack(mid, qos)

    def answering(self) -> AbstractContextManager[None]:
        """Around a batch's publishes and acks: the network thread is woken once for all of them
        and writes them together."""
        return self._client.holding_writes()

    # paho callbacks: each one guarded, since an exception would end paho's network loop ---------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        try:
            if reason_code.is_failure:
                fatal = _FATAL_CONNACK.get(reason_code.value)
                if fatal is not None:
                    self.fatal_error = f"{fatal} ({self.address.describe()}); not retrying"
                    log.error("%s", self.fatal_error)
                    self.failed.set()
                    client.disconnect()
                    return
                log.warning("broker refused the connection: %s; retrying", reason_code)
                return
            self._connection += 1
            if self._v5:
                result, mid = client.subscribe(
                    [(topic, SUBSCRIBE_OPTIONS) for topic in self._subscriptions]
                )
            else:
                result, mid = client.subscribe([(topic, 1) for topic in self._subscriptions])
            if result != MQTTErrorCode.MQTT_ERR_SUCCESS:
                log.error("subscribing failed: %s", mqtt.error_string(result))
                return
            self._pending_suback = mid
            if self._unsubscribe:
                client.unsubscribe(self._unsubscribe)
            log.debug("connected (session present: %s)", flags.session_present)
        except Exception:
            log.exception("error while handling the broker's CONNACK")

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: Any,
    ) -> None:
        try:
            if mid != self._pending_suback:
                return
            refused = [
                topic
                for topic, code in zip(self._subscriptions, reason_codes, strict=False)
                if code.is_failure
            ]
            if refused:
                self.fatal_error = (
                    f"the broker refused the subscriptions {', '.join(refused)} "
                    f"({self.address.describe()}); check the ACL"
                )
                log.error("%s", self.fatal_error)
                self.failed.set()
                client.disconnect()
                return
            log.info(
                "connected to %s and subscribed to %s",
                self.address.describe(),
                ", ".join(self._subscriptions),
            )
            self.ready.set()
            if self._status_topic is not None:
                client.publish(self._status_topic, b"online", qos=1, retain=True)
        except Exception:
            log.exception("error while handling the broker's SUBACK")

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Any,
    ) -> None:
        self.ready.clear()
        if reason_code.is_failure and self.fatal_error is None:
            log.warning("lost the broker connection (%s); reconnecting with backoff", reason_code)

    def _clear_retained(self, client: mqtt.Client, topic: str) -> None:
        with self._publish_lock:
            self._cleared[topic] = self._cleared.get(topic, 0) + 1
            if len(self._cleared) > 10_000:
                self._cleared.clear()
        client.publish(topic, b"", qos=1, retain=True)
        log.warning("cleared a retained message on %s", topic[:200])

    def _take_cleared(self, topic: str) -> bool:
        """Whether an empty message on `topic` is the echo of our own clearing publish."""
        with self._publish_lock:
            count = self._cleared.get(topic, 0)
            if count <= 0:
                return False
            if count == 1:
                del self._cleared[topic]
            else:
                self._cleared[topic] = count - 1
            return True

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            if not self._receiving.is_set():
                return
            topic = msg.topic if isinstance(msg.topic, str) else ""
            payload = bytes(msg.payload)
            if msg.retain and payload:
                # A device's retained message, live or kept by the broker: rejected by decode,
                # and cleared here, or the broker would hand it out again on every subscribe (an
                # empty retained publish deletes it). Its empty echo is dropped below.
                self._clear_retained(client, topic)
            elif not payload and self._take_cleared(topic):
                self.ack(msg.mid, msg.qos)
                return
            self._sink(
                Inbound(
                    topic,
                    payload,
                    msg.mid,
                    msg.qos,
                    self._clock(),
                    retain=bool(msg.retain),
                    connection=self._connection,
                )
            )
        except UnicodeDecodeError:
            # A topic that is not UTF-8 cannot name a device; acknowledge and drop it.
            log.warning("dropped a message whose topic is not valid UTF-8")
            self.ack(msg.mid, msg.qos)
        except Exception:
            log.exception("error while receiving a message")
