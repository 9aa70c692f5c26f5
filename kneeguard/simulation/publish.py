"""Publishing a simulated club's runs and knee check-ins over MQTT.

The data comes from `kneeguard.simulation.simulator` (pure and seeded); this module is the I/O
around it: registering the club, and one paho 2.x client that publishes every message at QoS 1,
paced to a rate, and waits for the broker's PUBACK of each before it reports success.
`kneeguard simulate`, `kneeguard demo` and the benchmarks publish through the same `Publisher`.
"""

from __future__ import annotations

import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Athlete, Coach, Device
from ingest.mqtt import BrokerAddress
from kneeguard.admin.registry import Registry
from kneeguard.clock import utcnow
from kneeguard.simulation.simulator import Message, Plan
from notifier.routing import DEFAULT_QUIET_HOURS

__all__ = [
    "PublishError",
    "Published",
    "Publisher",
    "default_first_day",
    "publish_all",
    "register_club",
]


class PublishError(RuntimeError):
    """The broker cannot be reached or did not take the messages; the message is one line."""


class Publisher:
    """One MQTT client that publishes at QoS 1 and counts the broker's PUBACKs.

    Its credentials come from the broker URL (a device's, or the service account's, which may
    write under the whole prefix). The session is clean: a simulator has nothing to resume.
    """

    def __init__(self, url: str, *, client_id: str | None = None, timeout: float = 10.0) -> None:
        self.address = BrokerAddress.from_url(url)
        self.timeout = timeout
        self._connected = threading.Event()
        self._refused: str | None = None
        self._lock = threading.Condition()
        self._sent = 0
        self._acked = 0
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"kneeguard-sim-{secrets.token_hex(4)}",
            clean_session=True,
            protocol=MQTTProtocolVersion.MQTTv311,
        )
        client.max_inflight_messages_set(1000)
        client.connect_timeout = timeout
        if self.address.username is not None:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            client.tls_set(ca_certs=self.address.cafile, cert_reqs=ssl.CERT_REQUIRED)
        client.on_connect = self._on_connect
        client.on_publish = self._on_publish
        self._client = client

    @property
    def acked(self) -> int:
        with self._lock:
            return self._acked

    def connect(self) -> None:
        """Connect and wait for the CONNACK; `PublishError` says why it failed."""
        where = self.address.describe()
        try:
            self._client.connect(self.address.host, self.address.port, keepalive=30)
        except (OSError, ssl.SSLError) as exc:
            raise PublishError(f"cannot reach the MQTT broker at {where}: {exc}") from None
        self._client.loop_start()
        if not self._connected.wait(self.timeout) or self._refused is not None:
            self.close()
            reason = self._refused or f"no CONNACK within {self.timeout:g} s"
            raise PublishError(f"the MQTT broker at {where} did not accept us: {reason}")

    def publish(self, topic: str, payload: bytes) -> None:
        info = self._client.publish(topic, payload, qos=1)
        if info.rc not in (MQTTErrorCode.MQTT_ERR_SUCCESS, MQTTErrorCode.MQTT_ERR_NO_CONN):
            # NO_CONN is queued by paho and sent after its automatic reconnect.
            raise PublishError(f"publishing to {topic} failed: {mqtt.error_string(info.rc)}")
        with self._lock:
            self._sent += 1

    def flush(self, timeout: float = 60.0) -> None:
        """Wait until the broker has acknowledged everything published so far."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._acked < self._sent:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise PublishError(
                        f"the broker acknowledged {self._acked} of {self._sent} messages "
                        f"within {timeout:g} s"
                    )
                self._lock.wait(min(left, 0.5))

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if reason.is_failure:
            self._refused = str(reason)
        self._connected.set()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
    ) -> None:
        with self._lock:
            self._acked += 1
            self._lock.notify_all()


@dataclass(frozen=True, slots=True)
class Published:
    """What a publishing pass did."""

    messages: int
    runs: int
    checkins: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else float("inf")


def publish_all(
    publisher: Publisher,
    messages: Iterable[Message],
    rate: float,
    on_message: Callable[[Message], None] | None = None,
) -> Published:
    """Publish `messages` in order, at most `rate` per second (0: no pacing), then wait for
    every PUBACK. Pacing is against the start instant, so a slow moment is caught up."""
    started = time.monotonic()
    runs = checkins = 0
    for count, message in enumerate(messages):
        if rate > 0:
            delay = started + count / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        publisher.publish(message.topic, message.payload)
        if message.kind == "run":
            runs += 1
        else:
            checkins += 1
        if on_message is not None:
            on_message(message)
    publisher.flush()
    return Published(runs + checkins, runs, checkins, time.monotonic() - started)


def default_first_day(days: int, timezone: str, now: datetime | None = None) -> date:
    """The first day of a period of `days` days that ends at today's local midnight, so every
    message is in the past and a sweep "now" sees the whole period."""
    today = (now or utcnow()).astimezone(ZoneInfo(timezone)).date()
    return today - timedelta(days=days)


def register_club(
    sessions: sessionmaker[Session],
    plan: Plan,
    *,
    coach_id: str,
    coach_name: str,
    quiet_hours: str | None = DEFAULT_QUIET_HOURS,
) -> tuple[int, int]:
    """Add the plan's coach, athletes and devices that are missing; returns (added, kept).

    Existing rows are left as they are, so the same club can be simulated again (with another
    seed or period) without a registration error.
    """
    registry = Registry(sessions)
    with sessions() as session:
        has_coach = session.get(Coach, coach_id) is not None
        known = set(session.scalars(select(Athlete.id)))
        devices = set(session.execute(select(Device.athlete_id, Device.id)).tuples())
    if not has_coach:
        registry.add_coach(
            coach_id=coach_id,
            name=coach_name,
            email=f"{coach_id}@example.com",
            timezone=plan.timezone,
            quiet_hours=quiet_hours,
        )
        if quiet_hours is None:
            # An insert of "no quiet hours" gets the column default back; an update keeps it.
            registry.update_coach(coach_id, quiet_hours="off")
    added = kept = 0
    for athlete in plan.roster():
        if athlete.athlete_id in known:
            kept += 1
        else:
            registry.add_athlete(
                athlete_id=athlete.athlete_id,
                name=athlete.name,
                email=athlete.email,
                timezone=plan.timezone,
                coach_id=coach_id,
                quiet_hours=quiet_hours,
            )
            if quiet_hours is None:
                registry.update_athlete(athlete.athlete_id, quiet_hours="off")
            added += 1
        if (athlete.athlete_id, athlete.device_id) not in devices:
            registry.add_device(athlete_id=athlete.athlete_id, device_id=athlete.device_id)
    return added, kept
