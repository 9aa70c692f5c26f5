"""The ingest writer: stores messages in batches, then answers the device and the broker.

The network loop only hands messages over (`submit`); this thread validates, stores a batch in
one transaction, and only after the commit publishes the acks to the devices and acknowledges the
messages to the broker. A crash before the commit means the broker redelivers; redelivery is
answered `duplicate`, because rows are keyed on (athlete, `header.uuid`).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, Table, insert
from sqlalchemy.orm import configure_mappers

from contract.topics import DeviceTopic, Kind, Topics
from db.bulk import insert_new, is_unavailable, registered_devices
from db.models import Checkin, DeadLetter, Run
from ingest.floods import UNLIMITED, RejectionLimit
from ingest.messages import (
    Inbound,
    Invalid,
    Status,
    Valid,
    WireError,
    ack_payload,
    decode,
    describe_errors,
    truncate_payload,
)
from ingest.spill import SpillFile

log = logging.getLogger(__name__)

RUNS: Table = Run.__table__  # type: ignore[assignment]
CHECKINS: Table = Checkin.__table__  # type: ignore[assignment]
DEAD_LETTERS: Table = DeadLetter.__table__  # type: ignore[assignment]


class Broker(Protocol):
    """What the writer needs from the broker connection."""

    def publish(self, topic: str, payload: bytes) -> None: ...

    def ack(self, mid: int, qos: int, connection: int = 0) -> None:
        """Acknowledge to the broker the message `mid` received on `connection`."""
        ...

    def answering(self) -> AbstractContextManager[None]:
        """Around the publishes and acks of one batch, which may be sent together."""
        ...


@dataclass(frozen=True, slots=True)
class Stored:
    """A run or check-in that was just committed (the event later stages hook into)."""

    kind: Kind
    id: int
    uuid: str
    athlete_id: str
    device_id: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one message."""

    message: Inbound
    status: Status
    uuid: str | None
    device: DeviceTopic | None
    errors: tuple[WireError, ...] = ()
    stored: Stored | None = None
    # A rejection beyond its device's limit (ingest.floods): answered, but not logged.
    quiet: bool = False


StoredListener = Callable[[Sequence[Stored]], None]


class _Mark:
    """In the writer's queue: the messages that follow are in the spill file."""


_SPILLED = _Mark()


@dataclass
class Writer:
    """Stores inbound messages in batches on its own thread."""

    engine: Engine
    topics: Topics
    broker: Broker
    on_stored: StoredListener = lambda stored: None
    batch_size: int = 500
    retry_initial: float = 0.5
    retry_max: float = 30.0
    name: str = "ingest-writer"
    # Messages, the `_SPILLED` mark (what follows is in `spill`), None to stop.
    _queue: queue.SimpleQueue[Inbound | _Mark | None] = field(default_factory=queue.SimpleQueue)
    _thread: threading.Thread | None = None
    _abort: threading.Event = field(default_factory=threading.Event)
    committed: int = 0
    # Called after each batch is answered, with its outcomes and the seconds it took (metrics).
    on_batch: Callable[[Sequence[Outcome], float], None] = lambda outcomes, seconds: None
    # How many rejections per device are stored and logged (a flood is counted instead).
    # Unlimited unless given one: the service passes KNEEGUARD_DEAD_LETTERS_PER_DEVICE_MINUTE.
    rejections: RejectionLimit = field(default_factory=lambda: RejectionLimit(limit=UNLIMITED))
    # Bytes held in the queue in memory. Beyond `max_queued_bytes` QoS 0 messages are dropped
    # and QoS 1 ones go to `spill`, a file read back in order once the queue is drained; they
    # are acknowledged after storing, never dropped (ingest.spill).
    max_queued_bytes: int = 32 * 1024 * 1024
    queued_bytes: int = 0
    dropped_qos0: int = 0
    spill: SpillFile = field(default_factory=SpillFile)
    spilled: int = 0  # messages held on disk in all
    _spilling: bool = False
    _spill_failed: bool = False
    _dropping: bool = False
    _bytes_lock: threading.Lock = field(default_factory=threading.Lock)
    # monotonic() since which the thread has held a batch it has not answered yet, else None:
    # how long the writer is stuck (a database away, a hang), for the readiness check.
    busy_since: float | None = None
    # Whether more urgent work in this process needs the CPU now (the outbox sending a red
    # flag): before each batch the writer waits while it says so, for at most `max_give_way`
    # seconds. The batch's messages are not acknowledged meanwhile, so nothing is lost, and the
    # broker holds the rest. None: never wait (a writer that also takes check-ins).
    give_way_to: Callable[[], bool] | None = None
    max_give_way: float = 0.25
    gave_way_seconds: float = 0.0

    def queue_depth(self) -> int:
        """Messages handed over and not yet taken into a batch, in memory or on disk."""
        return self._queue.qsize() + len(self.spill)

    def submit(self, message: Inbound) -> None:
        """Hand a message over; never waits for the writer (called on the network thread, which
        must keep answering the broker's keepalive and reading check-ins and PUBACKs).

        While the queue holds more than `max_queued_bytes`, a QoS 1 message goes to the spill
        file, and so does every one after it until the writer has drained the file, so that
        messages are stored in the order they came; a QoS 0 message is dropped: the contract is
        QoS 1, and a QoS 0 flood must not fill the disk while the database is slow or away."""
        size = len(message.payload)
        with self._bytes_lock:
            over = self._spilling or self.queued_bytes + size > self.max_queued_bytes
            if message.qos == 0 and over:
                self.dropped_qos0 += 1
                if not self._dropping:
                    self._dropping = True
                    log.warning(
                        "writer queue holds over %d MiB: dropping QoS 0 messages until it drains",
                        self.max_queued_bytes // (1024 * 1024),
                    )
                return
            if self._dropping and not over:
                self._dropping = False
                log.warning(
                    "writer queue drained; %d QoS 0 messages dropped in all", self.dropped_qos0
                )
            if over:
                try:
                    self.spill.put(message)
                except OSError as exc:
                    # No room on disk (or no writable TMPDIR): keep it in memory rather than
                    # lose it or break the network thread; it is stored after what is on disk.
                    if not self._spill_failed:
                        self._spill_failed = True
                        log.error("cannot hold the backlog on disk (%s); keeping it in memory", exc)
                    self.queued_bytes += size
                    self._queue.put(message)
                    return
                self.spilled += 1
                if not self._spilling:
                    self._spilling = True
                    self._queue.put(_SPILLED)
                    log.warning(
                        "writer queue holds over %d MiB: holding what comes next on disk until "
                        "the writer catches up",
                        self.max_queued_bytes // (1024 * 1024),
                    )
                return
            self.queued_bytes += size
            self._queue.put(message)

    def _taken(self, message: Inbound) -> None:
        with self._bytes_lock:
            self.queued_bytes -= len(message.payload)

    def start(self) -> None:
        # The ORM's one-time set-up (some ten milliseconds) now, not while the first batch waits.
        configure_mappers()
        self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
        self._thread.start()

    def is_alive(self) -> bool:
        """True while the writer thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> bool:
        """Store and acknowledge everything submitted so far, then end the thread.

        Returns False when the thread did not finish within `timeout` (for example because the
        database is down); what it holds then stays unacknowledged and the broker redelivers it.
        """
        if self._thread is None:
            return True
        self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._abort.set()
            self._thread.join(5)
            return False
        return True

    def _loop(self) -> None:
        try:
            self._batches()
        finally:
            self.spill.close()  # what it still holds is unacknowledged: the broker resends it

    def _batches(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            if isinstance(first, _Mark):
                if not self._drain_spill():
                    return
                continue
            self._taken(first)
            batch = [first]
            done = spilled = False
            while len(batch) < self.batch_size:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    done = True
                    break
                if isinstance(item, _Mark):
                    spilled = True
                    break
                self._taken(item)
                batch.append(item)
            self._give_way()
            if not self._handle(batch) or done:
                return
            if spilled and not self._drain_spill():
                return

    def _drain_spill(self) -> bool:
        """Store what the spill file holds, batch by batch, until it is empty and new messages
        go to memory again. False when told to abort while the database was away."""
        while True:
            batch = self.spill.take(self.batch_size)
            if not batch:
                with self._bytes_lock:
                    if len(self.spill) == 0:
                        self._spilling = False
                        log.warning(
                            "writer caught up: %d messages were held on disk in all", self.spilled
                        )
                        return True
                continue
            self._give_way()
            if not self._handle(batch):
                return False

    def _give_way(self) -> None:
        urgent = self.give_way_to
        if urgent is None or not urgent():
            return
        started = time.monotonic()
        deadline = started + self.max_give_way
        while urgent() and time.monotonic() < deadline and not self._abort.is_set():
            time.sleep(0.005)
        self.gave_way_seconds += time.monotonic() - started

    def _handle(self, batch: list[Inbound]) -> bool:
        """Store, then answer. False when told to abort while the database was away.

        Nothing one message holds can stop the writer or its batch: a failure while storing that
        no other path caught rejects each message of the batch on its own (dead letter, then
        ack), so no message is left unacknowledged to come back on every reconnect.
        """
        started = time.monotonic()
        self.busy_since = started
        try:
            return self._handle_batch(batch, started)
        finally:
            self.busy_since = None

    def _handle_batch(self, batch: list[Inbound], started: float) -> bool:
        try:
            outcomes = self._store_with_retry(batch)
        except Exception as exc:
            log.error(
                "could not store a batch of %d messages (%s); rejecting them one by one",
                len(batch),
                type(exc).__name__,
            )
            outcomes = [self._store_refused(message, exc) for message in batch]
        if outcomes is None:
            return False
        self._answer(outcomes)
        try:
            self.on_batch(outcomes, time.monotonic() - started)
        except Exception:
            log.exception("could not record the metrics of a batch")
        return True

    def _store_with_retry(self, batch: list[Inbound]) -> list[Outcome] | None:
        delay = self.retry_initial
        failing = False
        while True:
            try:
                outcomes = self.store_batch(batch)
            except Exception as exc:
                if not is_unavailable(exc):
                    return self._store_one_by_one(batch)
                if not failing:
                    log.error(
                        "database unavailable, holding %d messages unacknowledged: %s",
                        len(batch),
                        type(exc).__name__,
                    )
                    failing = True
                if self._abort.wait(delay):
                    return None
                delay = min(delay * 2, self.retry_max)
                continue
            if failing:
                log.info("database back, storing %d held messages", len(batch))
            return outcomes

    def _store_one_by_one(self, batch: list[Inbound]) -> list[Outcome] | None:
        # A batch the database refused: find the message it refuses and keep the others.
        outcomes: list[Outcome] = []
        for message in batch:
            try:
                outcomes.extend(self.store_batch([message]))
            except Exception as exc:
                if is_unavailable(exc):
                    single = self._store_with_retry([message])
                    if single is None:
                        return None
                    outcomes.extend(single)
                    continue
                # The exception text holds the row's values: health data stays out of the log.
                log.error(
                    "database refused a message on %s: %s", message.topic[:200], type(exc).__name__
                )
                outcomes.append(self._store_refused(message, exc))
        return outcomes

    def _store_refused(self, message: Inbound, exc: Exception) -> Outcome:
        decoded = decode(self.topics, message)
        device = decoded.device
        uuid = decoded.uuid
        errors = (
            decoded.errors
            if isinstance(decoded, Invalid)
            else (WireError("", "the message could not be stored"),)
        )
        invalid = Invalid(device, uuid, errors)
        if not self.rejections.admit(_flood_key(invalid)):
            return Outcome(message, "rejected", uuid, device, invalid.errors, quiet=True)
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(DEAD_LETTERS), [self._dead_letter(message, invalid)])
        except Exception:
            # Better a rejected message without its dead letter than one redelivered forever.
            log.exception("could not keep the dead letter of a message on %s", message.topic[:200])
        return Outcome(message, "rejected", uuid, device, invalid.errors)

    def store_batch(self, batch: Sequence[Inbound]) -> list[Outcome]:
        """Validate and store one batch in one transaction; returns one outcome per message."""
        decoded = [decode(self.topics, message) for message in batch]
        with self.engine.begin() as conn:
            known = self._known_devices(conn, decoded)
            results: list[Outcome | None] = [None] * len(batch)
            pending: dict[Kind, list[tuple[int, Valid]]] = {Kind.RUN: [], Kind.CHECKIN: []}
            seen: set[tuple[Kind, str, str]] = set()
            dead: list[dict[str, Any]] = []
            for index, (message, item) in enumerate(zip(batch, decoded, strict=True)):
                if (
                    isinstance(item, Valid)
                    and (
                        item.device.athlete_id,
                        item.device.device_id,
                    )
                    not in known
                ):
                    item = Invalid(
                        item.device,
                        item.uuid,
                        (
                            WireError(
                                "topic",
                                f"device {item.device.device_id!r} is not registered to "
                                f"athlete {item.device.athlete_id!r}",
                            ),
                        ),
                    )
                if isinstance(item, Invalid):
                    admitted = self.rejections.admit(_flood_key(item))
                    if admitted:
                        dead.append(self._dead_letter(message, item))
                    results[index] = Outcome(
                        message, "rejected", item.uuid, item.device, item.errors, quiet=not admitted
                    )
                    continue
                key = (item.device.kind, item.device.athlete_id, item.uuid)
                if key in seen:
                    results[index] = Outcome(message, "duplicate", item.uuid, item.device)
                    continue
                seen.add(key)
                pending[item.device.kind].append((index, item))
            for kind, table in ((Kind.RUN, RUNS), (Kind.CHECKIN, CHECKINS)):
                items = pending[kind]
                if not items:
                    continue
                ids = self._insert_new(conn, table, [valid.row for _, valid in items])
                for index, valid in items:
                    row_id = ids.get((valid.device.athlete_id, valid.uuid))
                    stored = (
                        Stored(
                            kind,
                            row_id,
                            valid.uuid,
                            valid.device.athlete_id,
                            valid.device.device_id,
                        )
                        if row_id is not None
                        else None
                    )
                    results[index] = Outcome(
                        batch[index],
                        "accepted" if stored else "duplicate",
                        valid.uuid,
                        valid.device,
                        stored=stored,
                    )
            if dead:
                conn.execute(insert(DEAD_LETTERS), dead)
        return [outcome for outcome in results if outcome is not None]

    @staticmethod
    def _known_devices(
        conn: Connection, decoded: Sequence[Valid | Invalid]
    ) -> set[tuple[str, str]]:
        return registered_devices(
            conn,
            {
                (item.device.athlete_id, item.device.device_id)
                for item in decoded
                if isinstance(item, Valid)
            },
        )

    @staticmethod
    def _insert_new(
        conn: Connection, table: Table, rows: list[dict[str, Any]]
    ) -> dict[tuple[str, str], int]:
        return insert_new(conn, table, rows)

    @staticmethod
    def _dead_letter(message: Inbound, item: Invalid) -> dict[str, Any]:
        return {
            "received_at": message.received_at,
            "topic": message.topic[:512],
            "athlete_id": item.device.athlete_id if item.device else None,
            "device_id": item.device.device_id if item.device else None,
            "uuid": item.uuid,
            "reason": item.reason[:4000],
            "payload": truncate_payload(message.payload),
            "payload_size": len(message.payload),
        }

    def _answer(self, outcomes: list[Outcome]) -> None:
        with self.broker.answering():
            stored = self._answer_each(outcomes)
        self.committed += len(outcomes)
        if stored:
            try:
                self.on_stored(stored)
            except Exception:
                log.exception("a listener failed on %d stored messages", len(stored))

    def _answer_each(self, outcomes: list[Outcome]) -> list[Stored]:
        stored: list[Stored] = []
        for outcome in outcomes:
            try:
                self._answer_device(outcome)
            except Exception:
                # The device misses its answer; the broker must still get its ack below, or the
                # message would come back forever.
                log.exception("could not answer a message on %s", outcome.message.topic[:200])
            try:
                message = outcome.message
                self.broker.ack(message.mid, message.qos, message.connection)
            except Exception:
                log.exception("could not acknowledge a message on %s", outcome.message.topic[:200])
            if outcome.stored is not None:
                stored.append(outcome.stored)
        return stored

    def _answer_device(self, outcome: Outcome) -> None:
        device = outcome.device
        if device is not None:
            self.broker.publish(
                self.topics.ack(device.athlete_id, device.device_id),
                ack_payload(outcome.uuid, outcome.status, outcome.errors),
            )
        if outcome.status == "rejected" and not outcome.quiet:
            log.warning(
                "rejected message on %s: %s",
                outcome.message.topic[:200],
                describe_errors(outcome.errors)[:300],
            )
            log.debug("rejected payload (truncated): %r", outcome.message.payload[:200])


def _flood_key(item: Invalid) -> str:
    """Whose rejection this is: the device the topic names (the ACL confines a device to its own
    topics), or one shared key for topics that name none."""
    device = item.device
    if device is None:
        return "messages on unknown topics"
    return f"device {device.athlete_id}/{device.device_id}"
