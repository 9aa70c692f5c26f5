"""`kneeguard simulate`: publish a simulated club's runs and knee check-ins over MQTT.

The data comes from `kneeguard.simulator` (pure and seeded); this module is the I/O around it:
an optional registration of the club, and one paho 2.x client that publishes every message at
QoS 1, paced to `--rate`, and waits for the broker's PUBACK of each before it reports success.
The benchmarks and `kneeguard demo` publish through the same `Publisher`.
"""

from __future__ import annotations

import secrets
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db.models import Athlete, Coach, Device
from ingest.mqtt import BrokerAddress, BrokerConfigError
from kneeguard.clock import utcnow
from kneeguard.registry import Registry, RegistryError
from kneeguard.simulator import SCENARIOS, Message, Plan, PlanError, generate
from notifier.routing import DEFAULT_QUIET_HOURS

__all__ = ["PublishError", "Publisher", "default_first_day", "register_club", "simulate"]


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


def _parse_start(value: str | None, days: int, timezone: str) -> date:
    from kneeguard.cli import fail

    if value is None:
        try:
            return default_first_day(days, timezone)
        except (KeyError, ValueError):
            fail(f"unknown timezone {timezone!r}: use an IANA name such as Europe/London", 2)
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--start must be a date such as 2026-09-01, not {value!r}", 2)
    if instant.tzinfo is not None:
        try:
            instant = instant.astimezone(ZoneInfo(timezone))
        except (KeyError, ValueError):
            fail(f"unknown timezone {timezone!r}: use an IANA name such as Europe/London", 2)
    return instant.date()


@click.command("simulate")
@click.option("--athletes", default=10, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=56, show_default=True, type=click.IntRange(1, 3650))
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Messages per second; 0 publishes as fast as the broker takes them.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--scenario", default="mixed", show_default=True, type=click.Choice(SCENARIOS))
@click.option(
    "--start",
    default=None,
    help="First simulated day (YYYY-MM-DD); by default the period ends at today's midnight.",
)
@click.option("--timezone", default="UTC", show_default=True, help="The athletes' time zone.")
@click.option("--prefix", default=None, help="Topic prefix [default: KNEEGUARD_TOPIC_PREFIX].")
@click.option(
    "--id-prefix", default="sim", show_default=True, help="Athlete ids are ID-PREFIX-01, …"
)
@click.option("--mqtt-url", default=None, help="Broker URL [default: KNEEGUARD_MQTT_URL].")
@click.option(
    "--register",
    is_flag=True,
    help="First add the coach ID-PREFIX-coach, the athletes and their devices to the database "
    "(KNEEGUARD_DATABASE_URL); ones that exist are kept.",
)
@click.option("--dry-run", is_flag=True, help="Print 'TOPIC PAYLOAD' lines; publish nothing.")
def simulate(
    athletes: int,
    days: int,
    rate: float,
    seed: int,
    scenario: str,
    start: str | None,
    timezone: str,
    prefix: str | None,
    id_prefix: str,
    mqtt_url: str | None,
    register: bool,
    dry_run: bool,
) -> None:
    """Publish realistic runs and knee check-ins of simulated athletes over MQTT.

    Scenarios: healthy (no rule fires), long_run_spike, rising_pain, locked_knee, lateral_pain,
    and mixed (one of each story, the rest healthy). See docs/SIMULATOR.md.
    """
    from kneeguard.cli import fail, load_settings, open_database

    settings = load_settings()
    try:
        plan = Plan(
            athletes=athletes,
            days=days,
            seed=seed,
            scenario=scenario,
            first_day=_parse_start(start, days, timezone),
            timezone=timezone,
            prefix=prefix if prefix is not None else settings.topic_prefix,
            id_prefix=id_prefix,
        )
    except PlanError as exc:
        fail(str(exc), 2)
    if dry_run:
        for message in generate(plan):
            sys.stdout.write(f"{message.topic} {message.payload.decode()}\n")
        return
    if register:
        from db.engine import session_factory

        sessions = session_factory(open_database(settings))
        try:
            added, kept = register_club(
                sessions, plan, coach_id=f"{id_prefix}-coach", coach_name="Simulated Coach"
            )
        except RegistryError as exc:
            fail(str(exc), 2)
        click.echo(f"registered {added} athletes ({kept} already there) with their devices")
    try:
        publisher = Publisher(mqtt_url or settings.mqtt_url)
    except BrokerConfigError as exc:
        fail(f"invalid broker URL: {exc}", 2)
    try:
        publisher.connect()
    except PublishError as exc:
        fail(str(exc))
    try:
        done = _publish_with_progress(publisher, plan, rate)
    except PublishError as exc:
        fail(str(exc))
    finally:
        publisher.close()
    click.echo(
        f"published {done.messages} messages ({done.runs} runs, {done.checkins} check-ins) "
        f"for {plan.athletes} athletes over {plan.days} days from {plan.first_day} "
        f"({plan.timezone}), scenario {plan.scenario}, seed {plan.seed}, "
        f"in {done.seconds:.1f} s ({done.rate:.0f} msg/s)"
    )


def _publish_with_progress(publisher: Publisher, plan: Plan, rate: float) -> Published:
    """Publish the plan, with a progress bar on stderr when it is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    console = Console(stderr=True)
    if not console.is_terminal:
        return publish_all(publisher, generate(plan), rate)
    total = sum(1 for _ in generate(plan))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("publishing", total=total)

        def advance(message: Message) -> None:
            day = message.at.astimezone(plan.zone).date()
            progress.update(task, advance=1, description=f"publishing {day}")

        return publish_all(publisher, generate(plan), rate, advance)
