"""The outbox worker: claims due deliveries, sends them, and records what happened.

Record before you send: a claimed row is `sending` (with the attempt counted) before any
channel is touched; afterwards it is `sent` with the duration, or `failed` with the error and
the next attempt (exponential backoff with jitter, capped at an hour), or `dead` once it has
failed for 24 hours. A permanent error (SMTP 5xx, HTTP 4xx but 429) leaves the row `failed`
with no next attempt. Claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL and SQLite's single
writer elsewhere, so any number of workers never send one row twice.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, and_, bindparam, or_, select, update

from db.models import Alert, Athlete, Coach, Delivery, Digest
from notifier.base import DeliveryError, Message, NoticeLinks, Recipient, Transport
from notifier.digest_charts import decorate
from notifier.render import ESCALATION_HOURS, render_alert

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(hours=24)
MAX_BACKOFF = timedelta(hours=1)
# A row left `sending` this long belongs to a worker that died mid-send: send it again. Every
# channel gives up well within it (SMTP and HTTP time out after 30 s, MQTT after 10 s).
STALE_CLAIM = timedelta(minutes=5)

Clock = Callable[[], datetime]


def backoff(attempts: int, base: float, rng: random.Random) -> timedelta:
    """Delay before the next attempt: base·2^(n−1) seconds, capped at an hour, full jitter
    on the upper half so that many failed rows do not retry in lockstep."""
    ceiling = min(MAX_BACKOFF.total_seconds(), base * 2 ** max(attempts - 1, 0))
    return timedelta(seconds=ceiling * rng.uniform(0.5, 1.0))


@dataclass
class Claimed:
    id: int
    alert_id: int | None
    digest_id: int | None
    reason: str
    recipient_kind: str
    recipient_id: str
    channel: str
    attempts: int
    created_at: datetime


@dataclass
class _Outcome:
    """One delivery's outcome waiting for its commit; `error` if that commit failed."""

    delivery_id: int
    values: dict[str, Any]
    error: Exception | None = None


@dataclass
class Outbox:
    engine: Engine
    transports: Mapping[str, Transport]
    clock: Clock
    backoff_base: float = 30.0
    batch: int = 20
    senders: int = 4
    rng: random.Random = field(default_factory=random.Random)
    links: NoticeLinks | None = None
    escalation_hours: float = ESCALATION_HOURS
    # Who claims: the same for one service instance across restarts (host and broker session),
    # different between replicas. None: claims are not attributed and wait for STALE_CLAIM.
    claimer: str | None = None
    _outcomes: list[_Outcome] = field(default_factory=list, repr=False)
    _outcomes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _commit_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- one step at a time ----------------------------------------------------------------

    def claim(self, now: datetime) -> list[Claimed]:
        """Mark up to `batch` due rows `sending` and return them."""
        due = (
            select(Delivery.id)
            .where(
                or_(
                    and_(Delivery.status.in_(("pending", "failed")), Delivery.due_at <= now),
                    and_(Delivery.status == "sending", Delivery.claimed_at <= now - STALE_CLAIM),
                )
            )
            .order_by(Delivery.due_at, Delivery.id)
            .limit(self.batch)
        )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                due = due.with_for_update(skip_locked=True)
            rows = conn.execute(
                update(Delivery)
                .where(Delivery.id.in_(due.scalar_subquery()))
                .values(
                    status="sending",
                    claimed_at=now,
                    claimed_by=self.claimer,
                    attempts=Delivery.attempts + 1,
                )
                .returning(
                    Delivery.id,
                    Delivery.alert_id,
                    Delivery.digest_id,
                    Delivery.reason,
                    Delivery.recipient_kind,
                    Delivery.recipient_id,
                    Delivery.channel,
                    Delivery.attempts,
                    Delivery.created_at,
                )
            ).all()
        return [Claimed(*row) for row in rows]

    def take_back_own_claims(self, now: datetime) -> int:
        """Make the deliveries this instance's previous run left `sending` (it crashed mid-send)
        due now, instead of after STALE_CLAIM. Call once at start, before claiming anything."""
        if self.claimer is None:
            return 0
        with self.engine.begin() as conn:
            taken = conn.execute(
                update(Delivery)
                .where(Delivery.status == "sending", Delivery.claimed_by == self.claimer)
                .values(status="failed", due_at=now, claimed_by=None)
            ).rowcount
        if taken:
            log.warning("took back %d deliveries left mid-send by this service's last run", taken)
        return int(taken or 0)

    def send(self, item: Claimed) -> str:
        """Send one claimed delivery and record the outcome; returns the new status."""
        started = time.monotonic()
        try:
            transport = self.transports.get(item.channel)
            if transport is None:
                raise DeliveryError(f"channel {item.channel} is not configured", permanent=True)
            with self.engine.connect() as conn:
                recipient, message = load_notice(conn, item, self.links, self.escalation_hours)
            transport.send(recipient, replace(message, reference=delivery_reference(item)))
        except DeliveryError as exc:
            return self._failed(item, str(exc), exc.permanent)
        except LookupError as exc:
            return self._failed(item, f"nothing to deliver: {exc}", True)
        except Exception as exc:
            log.exception("delivery %d failed unexpectedly", item.id)
            return self._failed(item, f"{type(exc).__name__}: {exc}", False)
        duration_ms = (time.monotonic() - started) * 1000
        self._record(
            item.id,
            status="sent",
            sent_at=self.clock(),
            duration_ms=duration_ms,
            last_error=None,
            due_at=None,
        )
        log.info(
            "delivery %d sent: %s to %s %s (%s) in %.0f ms",
            item.id,
            item.channel,
            item.recipient_kind,
            item.recipient_id,
            item.reason,
            duration_ms,
        )
        return "sent"

    def _failed(self, item: Claimed, error: str, permanent: bool) -> str:
        now = self.clock()
        error = error[:2000]
        if permanent:
            self._record(item.id, status="failed", last_error=error, due_at=None)
            log.error("delivery %d failed permanently (%s): %s", item.id, item.channel, error)
            return "failed"
        if now - item.created_at >= GIVE_UP_AFTER:
            self._record(item.id, status="dead", last_error=error, due_at=None)
            log.error("delivery %d is dead after 24 h of failures: %s", item.id, error)
            return "dead"
        due = now + backoff(item.attempts, self.backoff_base, self.rng)
        self._record(item.id, status="failed", last_error=error, due_at=due)
        log.warning(
            "delivery %d failed (attempt %d, next at %s): %s",
            item.id,
            item.attempts,
            due.isoformat(timespec="seconds"),
            error,
        )
        return "failed"

    def _record(self, delivery_id: int, **values: Any) -> None:
        """Record one delivery's outcome; returns once it is committed.

        Group commit: the senders of a claim finish at nearly the same time, and each commit
        waits on the database's flush. An outcome goes into the next transaction; whoever holds
        the commit lock writes every outcome queued by then, in one transaction, and the
        others find theirs already written. No outcome waits for more than the commit before
        its own, and none is left unwritten when `send` returns.
        """
        mine = _Outcome(delivery_id, values)
        with self._outcomes_lock:
            self._outcomes.append(mine)
        with self._commit_lock:
            with self._outcomes_lock:
                batch, self._outcomes = self._outcomes, []
            if batch:
                try:
                    with self.engine.begin() as conn:
                        # One UPDATE per set of columns; the SET clause comes from the rows.
                        for rows in _by_columns(batch).values():
                            conn.execute(
                                update(Delivery).where(Delivery.id == bindparam("delivery_id")),
                                rows,
                            )
                except Exception as exc:
                    # Each sender in the batch gets the error, as it would for its own commit.
                    for outcome in batch:
                        outcome.error = exc
        if mine.error is not None:
            raise mine.error

    def run_once(self) -> int:
        """Send everything due now; returns how many deliveries were attempted.

        The deliveries of one claim go out up to `senders` at a time: each waits on a server
        (SMTP, the broker's PUBACK, ntfy, a webhook), and one after another an urgent alert's
        email waited behind every delivery claimed before it. Each delivery is claimed by one
        caller only and records its own outcome, so sending them side by side changes nothing
        else.
        """
        attempted = 0
        try:
            with ThreadPoolExecutor(max_workers=self.senders, thread_name_prefix="outbox") as pool:
                while True:
                    claimed = self.claim(self.clock())
                    if not claimed:
                        return attempted
                    if len(claimed) == 1 or self.senders <= 1:
                        for item in claimed:
                            self.send(item)
                    else:
                        list(pool.map(self.send, claimed))
                    attempted += len(claimed)
        finally:
            # Connections kept from one send to the next (SMTP) last while there is work.
            for transport in self.transports.values():
                close_idle = getattr(transport, "close_idle", None)
                if close_idle is not None:
                    close_idle()


def _by_columns(batch: list[_Outcome]) -> dict[tuple[str, ...], list[dict[str, Any]]]:
    """Outcomes grouped by the columns they set, as parameter rows for one UPDATE each."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for outcome in batch:
        keys = tuple(sorted(outcome.values))
        groups.setdefault(keys, []).append({"delivery_id": outcome.delivery_id, **outcome.values})
    return groups


@dataclass
class OutboxWorker:
    """Runs the outbox on its own thread: at every poll, and at once when woken."""

    outbox: Outbox
    poll_seconds: float = 5.0
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    # monotonic() since which the current run has been going, else None (readiness check).
    busy_since: float | None = None
    runs: int = 0

    def wake(self) -> None:
        self._wake.set()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        try:
            self.outbox.take_back_own_claims(self.outbox.clock())
        except Exception:
            log.exception("could not take back this service's earlier claims; they go stale")
        while not self._stop.is_set():
            self._wake.clear()
            self.busy_since = time.monotonic()
            try:
                self.outbox.run_once()
            except Exception:
                log.exception("outbox run failed; trying again shortly")
            finally:
                self.busy_since = None
                self.runs += 1
            self._wake.wait(self.poll_seconds)


# --- what a delivery says ---------------------------------------------------------------------


def delivery_reference(item: Claimed) -> str:
    """The same for every attempt of one delivery and different between deliveries, also those
    of another database (the row's creation time in microseconds beside its id); safe as the
    left-hand side of a Message-ID (RFC 5322 dot-atom)."""
    created = int(item.created_at.replace(tzinfo=item.created_at.tzinfo or UTC).timestamp() * 1e6)
    return f"kneeguard.delivery.{item.id}.{created}"


def load_notice(
    conn: Connection,
    item: Claimed,
    links: NoticeLinks | None = None,
    escalation_hours: float = ESCALATION_HOURS,
) -> tuple[Recipient, Message]:
    """The recipient and the rendered message of a claimed delivery; an escalation states
    `escalation_hours`, the configured `lifecycle.escalation_hours`."""
    recipient = load_recipient(conn, item.recipient_kind, item.recipient_id)
    if item.digest_id is not None:
        digest = conn.execute(select(Digest).where(Digest.id == item.digest_id)).one_or_none()
        if digest is None:
            raise LookupError(f"digest {item.digest_id}")
        html, images = decorate(conn, digest.html, digest.data, item.created_at, links)
        return recipient, Message(
            subject=digest.subject,
            text=digest.text + _dashboard_line(links),
            html=html,
            images=images,
            severity="info",
            tags=("digest",),
            data=digest.data,
        )
    alert = conn.execute(select(Alert).where(Alert.id == item.alert_id)).one_or_none()
    if alert is None:
        raise LookupError(f"alert {item.alert_id}")
    athlete = conn.execute(
        select(Athlete.name, Athlete.email).where(Athlete.id == alert.athlete_id)
    ).one()
    message = render_alert(
        alert_id=alert.id,
        athlete_id=alert.athlete_id,
        athlete_name=athlete.name,
        rule_id=alert.rule_id,
        severity=alert.severity,
        recommendation=alert.recommendation,
        text=alert.message,
        evidence=alert.evidence,
        reason=item.reason,
        audience=item.recipient_kind,
        opened_at=alert.opened_at,
        timezone=recipient.timezone,
        link=(
            links.for_alert(item.recipient_kind, item.recipient_id, alert.athlete_id, alert.id)
            if links is not None
            else None
        ),
        coach_text=alert.coach_message,
        athlete_email=athlete.email,
        escalation_hours=escalation_hours,
    )
    return recipient, message


def _dashboard_line(links: NoticeLinks | None) -> str:
    return f"\nTeam overview: {links.dashboard()}\n" if links is not None else ""


def load_recipient(conn: Connection, kind: str, recipient_id: str) -> Recipient:
    if kind == "athlete":
        athlete = conn.execute(select(Athlete).where(Athlete.id == recipient_id)).one_or_none()
        if athlete is None:
            raise LookupError(f"athlete {recipient_id}")
        return Recipient(
            kind="athlete",
            id=athlete.id,
            name=athlete.name,
            email=athlete.email,
            timezone=athlete.timezone,
            athlete_id=athlete.id,
            ntfy_topic=athlete.ntfy_topic,
        )
    coach = conn.execute(select(Coach).where(Coach.id == recipient_id)).one_or_none()
    if coach is None:
        raise LookupError(f"coach {recipient_id}")
    return Recipient(
        kind="coach",
        id=coach.id,
        name=coach.name,
        email=coach.email,
        timezone=coach.timezone,
        webhook_url=coach.webhook_url,
        webhook_secret=coach.webhook_secret,
    )
