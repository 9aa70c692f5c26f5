"""The run lane in a process of its own (`KNEEGUARD_RUN_LANE_PROCESS`, with a check-in session).

Runs come in bulk: a club's morning sync, a watch replaying a week offline. Stored in the
service's own process they take the CPU, and with it the interpreter lock, from the check-in
writer, the red-flag rules and the outbox, so that a red flag's email waits seconds behind runs
that could wait. In a child process the runs' broker session and writer have an interpreter of
their own, and the child runs at a lower CPU priority (`NICENESS`): when the machine is busy
the operating system gives the red flag's path the CPU first, and the runs wait at the broker,
unacknowledged, so nothing is lost.

The child reports to the service over a pipe, several times a second: whether its session is
up, why it gave up for good, its writer's state for the readiness check, and what it counted
for the metrics. The service tells it when to stop receiving and when to store what it holds
and exit; when the service itself dies, the child sees its pipe close and does the same.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ingest.writer import Outcome
    from kneeguard.app.metrics import Metrics
    from kneeguard.settings import Settings

log = logging.getLogger(__name__)

# The child's nice value: it gets about a third of the CPU weight of a normal process (the
# kernel's weights: 1024 at nice 0, 335 at nice 5), and all of the CPU nobody else wants.
NICENESS = 5
REPORT_INTERVAL = 0.2
STOP_TIMEOUT = 60.0
NAME = "run-writer"


class Session(Protocol):
    """A broker session as the service watches it (`MqttConnection`, or the run process's)."""

    ready: threading.Event
    failed: threading.Event
    fatal_error: str | None

    def stop_receiving(self) -> None: ...


class Lane(Protocol):
    """An ingest writer as the service watches and stops it (`Writer`, or the run process's)."""

    name: str
    committed: int
    dropped_qos0: int
    busy_since: float | None

    def is_alive(self) -> bool: ...

    def queue_depth(self) -> int: ...

    def stop(self) -> bool: ...


@dataclass
class Report:
    """What the child tells the service; the counts are those since its last report."""

    ready: bool = False
    fatal_error: str | None = None
    writer_alive: bool = False
    busy_for: float | None = None
    queue_depth: int = 0
    committed: int = 0
    dropped_qos0: int = 0
    suppressed: int = 0
    publishes_refused: int = 0
    received: dict[str, int] = field(default_factory=dict)
    answered: dict[tuple[str, str], int] = field(default_factory=dict)
    batch_seconds: list[float] = field(default_factory=list)
    stopped: bool = False
    stored_all: bool = False


class RunLane:
    """The service's handle on the child process: a broker session and a writer to readiness,
    metrics and `Service.stop`."""

    name = NAME

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ready = threading.Event()
        self.failed = threading.Event()
        self.fatal_error: str | None = None
        self.busy_since: float | None = None
        self.committed = 0
        self.dropped_qos0 = 0
        self.suppressed_total = 0
        self.publishes_refused = 0
        self._depth = 0
        self._alive = False
        self._writer_alive = False
        self._stopped = threading.Event()
        self._stored_all = False
        self._stopping = False
        self._process: multiprocessing.process.BaseProcess | None = None
        self._pipe: Connection | None = None
        self._reader: threading.Thread | None = None
        self._send_lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        context = multiprocessing.get_context("spawn")  # the service has threads: never fork
        ours, theirs = context.Pipe()
        self._process = context.Process(
            target=child_main, args=(self.settings, theirs), name="kneeguard-runs"
        )
        self._process.start()
        theirs.close()
        self._pipe = ours
        self._alive = True
        self._reader = threading.Thread(target=self._read, name="run-lane-reports", daemon=True)
        self._reader.start()
        log.info("runs are stored by a process of their own (pid %d)", self._process.pid)

    # The writer's side, as the readiness check and the metrics read it.

    def is_alive(self) -> bool:
        """Whether the child runs and its writer thread is alive."""
        return self._alive and self._writer_alive and not self._stopped.is_set()

    def queue_depth(self) -> int:
        return self._depth

    # The session's side.

    def stop_receiving(self) -> None:
        self._send("stop-receiving")

    def stop(self, timeout: float = STOP_TIMEOUT) -> bool:
        """Have the child store and acknowledge what it holds and exit; False when it did not
        within `timeout` (what it holds stays unacknowledged and the broker redelivers it)."""
        process = self._process
        if process is None:
            return True
        self._stopping = True
        self._send("stop")
        self._stopped.wait(timeout)
        process.join(5 if self._stopped.is_set() else 0.1)
        if process.is_alive():
            log.error("the run process did not stop within %.0f s; ending it", timeout)
            process.terminate()
            process.join(5)
            return False
        return self._stored_all

    def _send(self, command: str) -> None:
        if self._pipe is None:
            return
        # The child may be gone; `_read` reports that.
        with self._send_lock, contextlib.suppress(OSError, EOFError):
            self._pipe.send(command)

    def _read(self) -> None:
        assert self._pipe is not None and self._process is not None
        while True:
            try:
                report: Report = self._pipe.recv()
            except (EOFError, OSError):
                break
            self._apply(report)
            if report.stopped:
                self._stored_all = report.stored_all
                break
        self._alive = False
        self.ready.clear()
        self._process.join(5)
        if not self._stopping and not self.failed.is_set():
            code = self._process.exitcode
            self.fatal_error = f"the run process exited unexpectedly (exit status {code})"
            log.error("%s", self.fatal_error)
            self.failed.set()
        self._stopped.set()

    def _apply(self, report: Report) -> None:
        if report.ready:
            self.ready.set()
        else:
            self.ready.clear()
        if report.fatal_error is not None and not self.failed.is_set():
            self.fatal_error = report.fatal_error
            self.failed.set()
        self._writer_alive = report.writer_alive
        self.busy_since = None if report.busy_for is None else time.monotonic() - report.busy_for
        self._depth = report.queue_depth
        self.committed = report.committed
        self.dropped_qos0 = report.dropped_qos0
        self.suppressed_total = report.suppressed
        self.publishes_refused = report.publishes_refused
        metrics = self.metrics
        if metrics is not None:
            for kind, count in report.received.items():
                metrics.received.labels(kind).inc(count)
            for (kind, outcome), count in report.answered.items():
                metrics.answered.labels(kind, outcome).inc(count)
            for seconds in report.batch_seconds:
                metrics.batch_seconds.observe(seconds)


class _Counts:
    """The child's counts since its last report (the network thread and the writer add)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: Counter[str] = Counter()
        self.answered: Counter[tuple[str, str]] = Counter()
        self.batch_seconds: list[float] = []
        from kneeguard.app.metrics import message_kind

        self._kind = message_kind  # imported once, called for every message

    def message_received(self, topic: str) -> None:
        kind = self._kind(topic)
        with self.lock:
            self.received[kind] += 1

    def batch_answered(self, outcomes: Sequence[Outcome], seconds: float) -> None:
        from kneeguard.app.metrics import answer_counts

        counts = answer_counts(outcomes)
        with self.lock:
            self.batch_seconds.append(seconds)
            self.answered.update(counts)

    def take(self, report: Report) -> None:
        with self.lock:
            report.received = dict(self.received)
            report.answered = dict(self.answered)
            report.batch_seconds = self.batch_seconds
            self.received = Counter()
            self.answered = Counter()
            self.batch_seconds = []


def child_main(settings: Settings, pipe: Connection) -> None:
    """The child process: the run session and its writer, until told to stop or orphaned."""
    # Ctrl-C reaches the whole process group; the service decides when its child stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    # Where lowering the priority is not allowed, the lane still has an interpreter of its own.
    with contextlib.suppress(OSError):
        os.nice(NICENESS)
    from kneeguard.app.heap import settle_after_start_up
    from kneeguard.app.logs import configure_logging

    configure_logging(settings.log_level)
    send_lock = threading.Lock()

    def send(report: Report) -> bool:
        with send_lock:
            try:
                pipe.send(report)
            except (OSError, EOFError):
                return False
        return True

    try:
        lane = _ChildLane(settings)
    except Exception as exc:
        log.exception("the run process could not start")
        send(Report(fatal_error=f"the run process could not start: {exc}", stopped=True))
        raise SystemExit(1) from None
    settle_after_start_up()
    lane.start()
    done = threading.Event()

    def report_loop() -> None:
        while not done.wait(REPORT_INTERVAL):
            if not send(lane.report()):
                return

    reporter = threading.Thread(target=report_loop, name="run-lane-report", daemon=True)
    reporter.start()
    while True:
        try:
            command = pipe.recv()
        except (EOFError, OSError):
            log.warning("the service has gone: storing the runs held, then exiting")
            command = "stop"
        if command == "stop-receiving":
            lane.connection.stop_receiving()
        elif command == "stop":
            break
    stored_all = lane.stop()
    done.set()
    reporter.join()
    final = lane.report()
    final.stopped = True
    final.stored_all = stored_all
    send(final)
    raise SystemExit(0 if stored_all else 1)


class _ChildLane:
    def __init__(self, settings: Settings) -> None:
        from contract.topics import Kind, Topics
        from db.engine import make_engine
        from ingest.floods import RejectionLimit
        from ingest.mqtt import MqttConnection
        from ingest.writer import Writer
        from kneeguard.app.service import broker_address

        self.counts = _Counts()
        self.engine = make_engine(settings.database_url)
        topics = Topics(settings.topic_prefix)
        group = settings.mqtt_shared_group
        self.connection = MqttConnection(
            broker_address("KNEEGUARD_MQTT_URL", settings.mqtt_url),
            settings.mqtt_client_id,
            topics.subscriptions(group, (Kind.RUN,)),
            sink=self._submit,
            status_topic=topics.service_status(),
            unsubscribe=topics.subscriptions(group),
        )
        self.writer = Writer(
            self.engine,
            topics,
            self.connection,
            batch_size=settings.ingest_batch_size,
            name=NAME,
            rejections=RejectionLimit(limit=settings.dead_letters_per_device_minute),
        )
        self.writer.on_batch = self.counts.batch_answered

    def _submit(self, message: Any) -> None:
        self.counts.message_received(message.topic)
        self.writer.submit(message)

    def start(self) -> None:
        self.writer.start()
        self.connection.start()

    def stop(self) -> bool:
        self.connection.stop_receiving()
        stored_all = self.writer.stop()
        if not stored_all:
            log.error("could not store the held runs; the broker will redeliver them")
        self.connection.stop()
        self.engine.dispose()
        return stored_all

    def report(self) -> Report:
        writer = self.writer
        busy = writer.busy_since
        report = Report(
            ready=self.connection.ready.is_set(),
            fatal_error=self.connection.fatal_error if self.connection.failed.is_set() else None,
            writer_alive=writer.is_alive(),
            busy_for=None if busy is None else time.monotonic() - busy,
            queue_depth=writer.queue_depth(),
            committed=writer.committed,
            dropped_qos0=writer.dropped_qos0,
            suppressed=writer.rejections.suppressed_total,
            publishes_refused=self.connection.publishes_refused,
        )
        self.counts.take(report)
        return report
