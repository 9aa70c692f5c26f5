"""Composition root: builds the engine, broker connection, ingest writer, rule engine and
scheduler from `Settings`, wires "check-in stored" to the red-flag rules, and runs them.

Nothing here runs at import time; `Service` is built from `Settings` and started explicitly.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection, Engine

from contract.topics import Kind, Topics
from ingest.floods import RejectionLimit
from ingest.messages import Inbound
from ingest.mqtt import BrokerAddress, BrokerConfigError, MqttConnection
from ingest.writer import Stored, Writer
from kneeguard.admin.retention import purge
from kneeguard.app.delivery import alert_deliveries, build_transports
from kneeguard.app.events import Events
from kneeguard.app.health import Readiness
from kneeguard.app.metrics import Metrics
from kneeguard.app.runlane import Lane, RunLane, Session
from kneeguard.clock import Clock, utcnow
from kneeguard.importing import ActivityImport
from kneeguard.settings import Settings
from notifier.digest import send_due_digests
from notifier.outbox import Outbox, OutboxWorker
from notifier.routing import escalate_due
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.store import Change

if TYPE_CHECKING:
    from kneeguard.web.prompts import PromptSender
    from kneeguard.web.server import WebServer

log = logging.getLogger(__name__)


def claimer_name(broker_user: str | None, client_id: str) -> str:
    """Who this service instance is when it claims deliveries: its host and broker identity,
    which stay the same across its restarts and differ between replicas (each has a broker user
    of its own: the broker binds sessions to users)."""
    return f"{socket.gethostname()}/{broker_user or '-'}/{client_id}"[:200]


class ServiceError(RuntimeError):
    """The service cannot run; the message says why and is safe to show."""


def broker_address(setting: str, url: str) -> BrokerAddress:
    """`url` parsed; a `BrokerConfigError` that names the setting when it cannot be used."""
    try:
        return BrokerAddress.from_url(url)
    except BrokerConfigError as exc:
        raise BrokerConfigError(f"{setting}: {exc}") from None


@dataclass
class Service:
    """Ingest, rules and their schedule, wired together."""

    settings: Settings
    engine: Engine
    rules_config: RulesConfig = field(default_factory=RulesConfig)
    only: str | None = None
    clock: Clock = utcnow
    first_run_delay: timedelta = timedelta(seconds=5)
    events: Events = field(default_factory=Events)
    stop_requested: threading.Event = field(default_factory=threading.Event)
    serve_web: bool = False  # `kneeguard run` serves the web app; code that builds a Service asks

    def __post_init__(self) -> None:
        self.topics = Topics(self.settings.topic_prefix)
        address = broker_address("KNEEGUARD_MQTT_URL", self.settings.mqtt_url)
        checkin_address = None
        if self.settings.mqtt_checkin_url is not None:
            checkin_address = broker_address(
                "KNEEGUARD_MQTT_CHECKIN_URL", self.settings.mqtt_checkin_url
            )
            if checkin_address.username is not None and (
                checkin_address.username == address.username
            ):
                raise BrokerConfigError(
                    "KNEEGUARD_MQTT_CHECKIN_URL: needs a broker user of its own, not the user of "
                    "KNEEGUARD_MQTT_URL (the broker names each session after its user, so two "
                    "sessions under one user would take each other's place)"
                )
        group = self.settings.mqtt_shared_group
        # Runs in a process of their own: this process takes check-ins only, on the check-in
        # session, which is then its `connection` (kneeguard.app.runlane).
        self.run_lane: RunLane | None = None
        if checkin_address is not None and self.settings.run_lane_process and self.ingests:
            self.run_lane = RunLane(self.settings)
            address = checkin_address
            checkin_address = None
            client_id = f"{self.settings.mqtt_client_id}-checkin"
            kinds: tuple[Kind, ...] = (Kind.CHECKIN,)
            status_topic = None
            unsubscribe: Sequence[str] = ()
            name = "checkin-writer"
        else:
            client_id = self.settings.mqtt_client_id
            # The run lane: with a check-in session of its own it takes runs only, so that a
            # backlog of runs queued at the broker for this session never holds up a check-in.
            kinds = (Kind.RUN,) if checkin_address is not None else tuple(Kind)
            status_topic = self.topics.service_status()
            unsubscribe = self.topics.subscriptions(group)
            name = "ingest-writer"
        self.connection = MqttConnection(
            address,
            client_id,
            self.topics.subscriptions(group, kinds),
            sink=self._submit,
            status_topic=status_topic,
            unsubscribe=unsubscribe,
        )
        self.writer = Writer(
            self.engine,
            self.topics,
            self.connection,
            on_stored=self.events.dispatch,
            batch_size=self.settings.ingest_batch_size,
            name=name,
            rejections=RejectionLimit(limit=self.settings.dead_letters_per_device_minute),
        )
        # The check-in lane: its own broker session (so its own queue and in-flight window at
        # the broker), its own writer thread and batches.
        self.checkin_connection: MqttConnection | None = None
        self.checkin_writer: Writer | None = None
        if checkin_address is not None:
            self.checkin_connection = MqttConnection(
                checkin_address,
                f"{self.settings.mqtt_client_id}-checkin",
                self.topics.subscriptions(group, (Kind.CHECKIN,)),
                sink=self._submit_checkin,
            )
            self.checkin_writer = Writer(
                self.engine,
                self.topics,
                self.checkin_connection,
                on_stored=self.events.dispatch,
                batch_size=self.settings.ingest_batch_size,
                name="checkin-writer",
                rejections=self.writer.rejections,  # one limit per device across both lanes
            )
        self.metrics = Metrics(
            self.engine, lambda: sum(writer.queue_depth() for writer in self.writers)
        )
        for writer in self.local_writers:
            writer.on_batch = self.metrics.batch_answered
        if self.run_lane is not None:
            self.run_lane.metrics = self.metrics
        self.metrics.watch_shedding(
            lambda: (
                sum(writer.dropped_qos0 for writer in self.writers),
                # One limit for both lanes in one process; the run process has its own.
                self.writer.rejections.suppressed_total
                + (self.run_lane.suppressed_total if self.run_lane is not None else 0),
                sum(connection.publishes_refused for connection in self.local_connections)
                + (self.run_lane.publishes_refused if self.run_lane is not None else 0),
            )
        )
        self.readiness = Readiness(self)
        # In-app alerts go out on the check-in session when there is one: the PUBACK the
        # delivery waits for then does not queue behind a burst of runs on the same socket.
        alerts = self.checkin_connection or self.connection
        self.transports = build_transports(self.settings, alerts.publish_confirmed)
        self.outbox = Outbox(
            self.engine,
            self.transports,
            self.clock,
            escalation_hours=self.rules_config.lifecycle.escalation_hours,
            claimer=claimer_name(address.username, self.settings.mqtt_client_id),
        )
        self.worker = OutboxWorker(self.outbox)
        if self.checkin_writer is not None:
            # Runs give way to a red flag's sends (the GIL is shared); check-ins never wait.
            self.writer.give_way_to = self.outbox.urgent_busy
        self.rules = RuleEngine(
            self.engine,
            self.rules_config,
            on_change=self._alerts_changed,
            write_changes=self._write_deliveries,
        )
        self.events.checkin_stored.connect(self._checkins_stored)
        # Uploads from the web app: stored like MQTT runs, judged at once when recent.
        self.imports = ActivityImport(self.engine, self.rules, self.clock, self.events.dispatch)
        self.scheduler: BackgroundScheduler | None = None
        if self.only is None:
            self.scheduler = self._build_scheduler()
        self.web: WebServer | None = None
        self.prompt_sender: PromptSender | None = None
        if self.only == "web" or (self.only is None and self.serve_web):
            self.web = self._build_web()
        elif self.only == "ingest" and self.serve_web:
            self.web = self._build_ops_web()

    @property
    def ingests(self) -> bool:
        return self.only in (None, "ingest")

    def _build_web(self) -> WebServer:
        from kneeguard.web.server import WebServer, build_context

        email = self.transports.get("email")
        ctx = build_context(
            self.settings,
            self.engine,
            self.events.dispatch,
            self.clock,
            mailer=email.send if email is not None else None,
            upload=self.imports.upload,
        )
        from kneeguard.web.links import NoticeLinksFromDb
        from kneeguard.web.prompts import PromptSender

        self.outbox.links = NoticeLinksFromDb(ctx.links, self.engine)
        self.prompt_sender = PromptSender(self.engine, ctx.links, self.transports)
        # The operators' endpoints (kneeguard.web.ops) report on this service.
        ctx.extra["readiness"] = self.readiness.reasons
        ctx.extra["metrics"] = self.metrics.registry
        return WebServer(ctx, self.settings.web_bind)

    def _build_ops_web(self) -> WebServer:
        """An ingest replica serves /healthz, /readyz and /metrics, and nothing else."""
        from kneeguard.web.ops import ops_app
        from kneeguard.web.server import WebServer

        extra = {"readiness": self.readiness.reasons, "metrics": self.metrics.registry}
        return WebServer(None, self.settings.web_bind, app=ops_app(extra))

    def _submit(self, message: Inbound) -> None:
        self.metrics.message_received(message.topic)
        self.writer.submit(message)

    def _submit_checkin(self, message: Inbound) -> None:
        assert self.checkin_writer is not None
        self.metrics.message_received(message.topic)
        self.checkin_writer.submit(message)

    @property
    def local_connections(self) -> list[MqttConnection]:
        """The broker sessions of this process: runs (and check-ins, without a check-in
        session), check-ins; with the run lane in a process of its own, check-ins only."""
        return [c for c in (self.connection, self.checkin_connection) if c is not None]

    @property
    def local_writers(self) -> list[Writer]:
        return [w for w in (self.writer, self.checkin_writer) if w is not None]

    @property
    def connections(self) -> list[Session]:
        """Every broker session, the run process's included."""
        lane: list[Session] = [self.run_lane] if self.run_lane is not None else []
        return lane + list(self.local_connections)

    @property
    def writers(self) -> list[Lane]:
        """Every ingest writer, the run process's included."""
        lane: list[Lane] = [self.run_lane] if self.run_lane is not None else []
        return lane + list(self.local_writers)

    def session_name(self, session: Session) -> str:
        """How the readiness check names a broker session."""
        if session is self.run_lane:
            return "run process's session"
        if session is self.checkin_connection or (
            self.run_lane is not None and session is self.connection
        ):
            return "check-in session"
        return "session"

    def wait_ready(self, timeout: float) -> bool:
        """True once every broker session is connected and subscribed (within `timeout`)."""
        deadline = time.monotonic() + timeout
        return all(c.ready.wait(max(0.0, deadline - time.monotonic())) for c in self.connections)

    def broker_failure(self) -> str | None:
        """Why a broker session gave up for good (refused credentials or subscriptions)."""
        for connection in self.connections:
            if connection.failed.is_set():
                return connection.fatal_error or "broker connection failed"
        return None

    def _checkins_stored(self, stored: Sequence[Stored]) -> None:
        self.rules.checkins_stored([item.id for item in stored], self.clock())

    def _write_deliveries(self, conn: Connection, changes: Sequence[Change], now: datetime) -> None:
        alert_deliveries(tuple(self.transports))(conn, changes, now)

    def _alerts_changed(self, changes: Sequence[Change]) -> None:
        # An urgent alert goes out now, not at the next poll.
        self.worker.wake()

    def escalate(self) -> None:
        try:
            after = timedelta(hours=self.rules_config.lifecycle.escalation_hours)
            with self.engine.begin() as conn:
                escalated = escalate_due(conn, self.clock(), after, tuple(self.transports))
            if escalated:
                log.info("escalated %d unacknowledged urgent alerts", len(escalated))
                self.worker.wake()
        except Exception:
            log.exception("escalation failed; it runs again at the next interval")

    def send_digests(self) -> None:
        try:
            sent = send_due_digests(
                self.engine,
                self.clock(),
                available_channels=tuple(self.transports),
                config=self.rules_config,
            )
            if sent:
                log.info("%d coach digests due", len(sent))
                self.worker.wake()
        except Exception:
            log.exception("digests failed; they run again at the next interval")

    def _build_scheduler(self) -> BackgroundScheduler:
        scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 600},
        )
        # Soon after start, not at once: a restart right after a crash first catches up on
        # the messages the broker held, then sweeps (which re-checks missed red flags).
        soon = datetime.now(UTC) + self.first_run_delay
        scheduler.add_job(
            self.sweep,
            "interval",
            minutes=self.rules_config.sweep.interval_minutes,
            next_run_time=soon,
            id="rule-sweep",
        )
        scheduler.add_job(
            self.send_prompts,
            "interval",
            minutes=self.settings.prompt_interval_minutes,
            next_run_time=soon,
            id="checkin-prompts",
        )
        scheduler.add_job(self.escalate, "interval", minutes=1, next_run_time=soon, id="escalation")
        scheduler.add_job(
            self.send_digests, "interval", minutes=5, next_run_time=soon, id="coach-digests"
        )
        scheduler.add_job(
            self.purge_expired, "interval", days=1, next_run_time=soon, id="retention"
        )
        return scheduler

    def purge_expired(self) -> None:
        """Retention: old dead letters and finished delivery records (kneeguard.admin.retention)."""
        try:
            purged = purge(
                self.engine,
                self.clock(),
                self.settings.dead_letter_retention_days,
                self.settings.delivery_retention_days,
            )
            if purged.total:
                log.info("%s", purged.summary())
        except Exception:
            log.exception("retention purge failed; it runs again tomorrow")

    def sweep(self) -> None:
        try:
            with self.metrics.sweep_seconds.time():
                result = self.rules.sweep(self.clock())
            log.info("%s", result.summary())
        except Exception:
            log.exception("rule sweep failed; it runs again at the next interval")

    def send_prompts(self) -> None:
        if not self.connection.ready.wait(30):
            log.warning("no broker connection; check-in prompts wait for the next interval")
            return
        try:
            sent = self.rules.send_prompts(
                self.clock(),
                self.connection.publish,
                self.settings.topic_prefix,
                on_prompt=self.prompt_sender.send if self.prompt_sender is not None else None,
            )
            if sent:
                log.info("sent %d check-in prompts", sent)
        except Exception:
            log.exception("check-in prompts failed; they run again at the next interval")

    def start(self) -> None:
        if self.ingests:
            if self.checkin_connection is None and self.run_lane is None:
                log.warning(
                    "KNEEGUARD_MQTT_CHECKIN_URL is not set: check-ins share the broker session "
                    "and the writer of the runs, so a red flag waits behind any backlog of runs"
                )
            if self.run_lane is not None:
                self.run_lane.start()
            for writer in self.local_writers:
                writer.start()
            for connection in self.local_connections:
                connection.start()
        if self.web is not None:
            self.web.start()
        if self.scheduler is not None:
            self.scheduler.start()
            self.worker.start()

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is held, disconnect."""
        log.info("stopping: no new messages; storing what is held")
        if self.ingests:
            # First of all: the web app and a running job can take seconds to end, and every
            # message the broker hands over meanwhile would be one more to store before exit.
            for connection in self.connections:
                connection.stop_receiving()
        if self.web is not None:
            self.web.stop()
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=True)
            self.worker.stop()
        if self.ingests:
            # Check-ins first: they are few, and their red flags are what must not wait.
            for writer in reversed(self.writers):
                if not writer.stop():
                    log.error(
                        "could not store the held messages of %s; the broker will redeliver them",
                        writer.name,
                    )
            for connection in self.local_connections:
                connection.stop()
        self.engine.dispose()
        log.info("stopped after %d messages", sum(w.committed for w in self.writers))

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.start()
        while not self.stop_requested.wait(0.5):
            if self.web is not None and self.web.failed:
                self.stop()
                raise ServiceError(f"the web app could not serve on {self.settings.web_bind}")
            failure = self.broker_failure() if self.ingests else None
            if failure is not None:
                self.stop()
                raise ServiceError(failure)
        self.stop()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()
