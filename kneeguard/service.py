"""Composition root: builds the engine, the broker connection and the ingest writer, and runs them.

Nothing here runs at import time; `Service` is built from `Settings` and started explicitly.
"""

from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field
from types import FrameType

from sqlalchemy import Engine

from db.engine import check_ready, make_engine
from ingest.messages import Inbound
from ingest.mqtt import BrokerAddress, MqttConnection
from ingest.topics import Topics
from ingest.writer import Writer
from kneeguard.events import Events
from kneeguard.settings import Settings

log = logging.getLogger(__name__)


class ServiceError(RuntimeError):
    """The service cannot run; the message says why and is safe to show."""


@dataclass
class Service:
    """Ingest (and, as they arrive, the scheduler and delivery) wired together."""

    settings: Settings
    engine: Engine
    events: Events = field(default_factory=Events)
    stop_requested: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.topics = Topics(self.settings.topic_prefix)
        address = BrokerAddress.from_url(self.settings.mqtt_url)
        self.connection = MqttConnection(
            address,
            self.settings.mqtt_client_id,
            self.topics.subscriptions(self.settings.mqtt_shared_group),
            sink=self._submit,
        )
        self.writer = Writer(
            self.engine,
            self.topics,
            self.connection,
            on_stored=self.events.dispatch,
            batch_size=self.settings.ingest_batch_size,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> Service:
        engine = make_engine(settings.database_url)
        check_ready(engine, settings.database_url)
        return cls(settings, engine)

    def _submit(self, message: Inbound) -> None:
        self.writer.submit(message)

    def start(self) -> None:
        self.writer.start()
        self.connection.start()

    def stop(self) -> None:
        """Stop taking messages, commit and acknowledge what is held, disconnect."""
        log.info("stopping: no new messages; storing what is held")
        self.connection.stop_receiving()
        if not self.writer.stop():
            log.error("could not store the held messages; the broker will redeliver them")
        self.connection.stop()
        self.engine.dispose()
        log.info("stopped after %d messages", self.writer.committed)

    def run_forever(self) -> int:
        """Run until SIGTERM or SIGINT; returns the process exit code."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._on_signal)
        self.start()
        while not self.stop_requested.wait(0.5):
            if self.connection.failed.is_set():
                self.stop()
                raise ServiceError(self.connection.fatal_error or "broker connection failed")
        self.stop()
        return 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stop_requested.set()
