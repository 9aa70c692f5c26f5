"""The outbox worker: claims due deliveries, sends them, and records what happened.

Record before you send: a claimed row is `sending` (with the attempt counted) before any
channel is touched; afterwards it is `sent` with the duration, or `failed` with the error and
the next attempt (exponential backoff with jitter, capped at an hour), or `dead` once it has
failed for 24 hours. A permanent error (SMTP 5xx, HTTP 4xx but 429) leaves the row `failed`
with no next attempt. Claims use `FOR UPDATE SKIP LOCKED` on PostgreSQL and SQLite's single
writer elsewhere, so any number of workers never send one row twice. Deliveries of urgent
alerts are claimed first, then those of warnings, then digests and the rest: a red flag never
waits behind bulk mail.
"""

from __future__ import annotations

import heapq
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Row, and_, bindparam, case, or_, select, update

from db.models import Alert, Athlete, AthleteLink, Coach, Delivery, Digest
from notifier.base import DeliveryError, Message, NoticeLinks, Recipient, Transport
from notifier.digest_charts import at_risk, decorate
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
    # What an alert notice says, read in the claim's transaction (`notice_rows`); None for a
    # digest, or when the alert is gone, and then `load_notice` reads it.
    notice: Row[Any] | None = field(default=None, repr=False)
    # The same for a digest to a coach (`digest_rows`): the digest and the coach.
    digest: Row[Any] | None = field(default=None, repr=False)


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
    # Sends are waits (an SMTP reply, a PUBACK, a commit), not CPU: with four, a burst of red
    # flags (three deliveries each) queued in the outbox while the senders waited.
    senders: int = 8
    rng: random.Random = field(default_factory=random.Random)
    links: NoticeLinks | None = None
    escalation_hours: float = ESCALATION_HOURS
    # Who claims: the same for one service instance across restarts (host and broker session),
    # different between replicas. None: claims are not attributed and wait for STALE_CLAIM.
    claimer: str | None = None
    _outcomes: list[_Outcome] = field(default_factory=list, repr=False)
    _outcomes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _commit_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _senders_changed: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _nudged: bool = field(default=False, repr=False)
    # Urgent alerts' deliveries claimed by this process and not done yet (`urgent_busy`).
    _urgent: int = field(default=0, repr=False)

    # --- one step at a time ----------------------------------------------------------------

    def claim(self, now: datetime, limit: int | None = None) -> list[Claimed]:
        """Mark up to `limit` (default `batch`) due rows `sending` and return them.

        Most urgent first: the deliveries of urgent alerts, then of warnings, then the rest
        (digests, check-in prompts), each oldest due first. A red flag written while a round of
        digests is due goes out with the next claim, not after the digests.
        """
        rank = case((Alert.severity == "urgent", 0), (Alert.severity == "warning", 1), else_=2)
        due = (
            select(Delivery.id)
            .outerjoin(Alert, Alert.id == Delivery.alert_id)
            .where(
                or_(
                    and_(Delivery.status.in_(("pending", "failed")), Delivery.due_at <= now),
                    and_(Delivery.status == "sending", Delivery.claimed_at <= now - STALE_CLAIM),
                )
            )
            .order_by(rank, Delivery.due_at, Delivery.id)
            .limit(limit or self.batch)
        )
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                # Only the deliveries are locked: the alerts they join stay free for the rules.
                due = due.with_for_update(skip_locked=True, of=Delivery)
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
            claimed = [Claimed(*row) for row in rows]
            # The notices of the claimed alert deliveries, in one statement on this connection:
            # read one by one at sending time (alert, athlete, recipient, link generation), on
            # connections of their own, they were the largest part of a send.
            notices = notice_rows(conn, [c.id for c in claimed if c.alert_id is not None])
            # Digests likewise: read one by one, each cost a connection's checkout (its ping and
            # its rollback) and two queries, a quarter of a digest's send.
            digests = digest_rows(conn, [c.id for c in claimed if c.digest_id is not None])
        for item in claimed:
            item.notice = notices.get(item.id)
            item.digest = digests.get(item.id)
        return claimed

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
            if item.notice is not None:
                recipient, message = render_notice(
                    item, item.notice, self.links, self.escalation_hours
                )
            elif item.digest is not None:
                recipient, message = render_digest(item, item.digest, self.links, self.engine)
            else:
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

    def run_once(self, *, close_idle: bool = True) -> int:
        """Send everything due now; returns how many deliveries were attempted.

        Up to `senders` deliveries go out side by side: each waits on a server (SMTP, the
        broker's PUBACK, ntfy, a webhook). Claimed rows wait in a small local queue, most
        urgent first, and a sender that is done takes the next one at once; a claim is made
        when fewer rows are queued than there are senders, or as soon as new deliveries are
        written (`nudge`), so a red flag waits for one send at most, never for a whole claim
        to finish. At most `batch` rows are claimed and not yet done at any time. Each
        delivery is claimed by one caller only and records its own outcome, so sending them
        side by side changes nothing else. `close_idle`: close the connections kept from one
        send to the next (SMTP) at the end; the worker keeps them while work keeps coming.
        """
        try:
            with ThreadPoolExecutor(
                max_workers=max(1, self.senders), thread_name_prefix="outbox"
            ) as pool:
                return self._send_while_due(pool)
        finally:
            if close_idle:
                self.close_idle()

    def _send_while_due(self, pool: ThreadPoolExecutor) -> int:
        senders = max(1, self.senders)
        # Claims of several rows each: a claim is a transaction of its own, and one claim per
        # row made the claiming thread the bottleneck of a burst.
        limit = max(1, min(self.batch, 3 * senders))
        state = _Senders(free=senders)
        queued: list[tuple[int, int, Claimed]] = []  # (rank, id, row): a heap
        attempted = 0
        drained = False  # the last claim found fewer rows than it asked for

        def finished(future: Future[str]) -> None:
            with self._senders_changed:
                state.free += 1
                if future.exception() is not None and state.error is None:
                    state.error = future.exception()
                self._senders_changed.notify_all()

        try:
            while True:
                with self._senders_changed:
                    if state.error is not None:
                        break
                    if self._nudged:
                        self._nudged, drained = False, False
                    busy = senders - state.free
                room = limit - len(queued) - busy
                if not drained and len(queued) < senders and room > 0:
                    claimed = self.claim(self.clock(), room)
                    drained = len(claimed) < room
                    urgent = sum(_rank(item) == 0 for item in claimed)
                    if urgent:
                        with self._senders_changed:
                            self._urgent += urgent
                    for item in claimed:
                        heapq.heappush(queued, (_rank(item), item.id, item))
                    attempted += len(claimed)
                with self._senders_changed:
                    starting = min(state.free, len(queued))
                    state.free -= starting
                    busy = senders - state.free
                for _ in range(starting):
                    item = heapq.heappop(queued)[2]
                    pool.submit(self._send_ranked, item).add_done_callback(finished)
                if drained and not queued and busy == 0:
                    break  # nothing due, nothing under way
                with self._senders_changed:
                    room = limit - len(queued) - busy
                    if not drained and len(queued) < senders and room > 0:
                        continue  # claim again: there is room and more may be due

                    def changed(busy: int = busy) -> bool:
                        # A sender finished (or failed), or new deliveries were written.
                        return senders - state.free != busy or self._nudged

                    self._senders_changed.wait_for(changed)
        finally:
            # Rows claimed here are sent whatever stopped the loop: left `sending`, they would
            # wait for STALE_CLAIM.
            while queued:
                pool.submit(self._send_ranked, heapq.heappop(queued)[2]).add_done_callback(finished)
            pool.shutdown(wait=True)
        if state.error is not None:
            raise state.error
        return attempted

    def _send_ranked(self, item: Claimed) -> str:
        """`send`, keeping count of the urgent deliveries under way."""
        try:
            return self.send(item)
        finally:
            if _rank(item) == 0:
                with self._senders_changed:
                    self._urgent -= 1

    def urgent_busy(self) -> bool:
        """Whether an urgent alert's delivery is claimed here and not done: bulk work in the
        same process (the run writer) gives way meanwhile, so a red flag's sends get the CPU."""
        return self._urgent > 0

    def nudge(self) -> None:
        """New deliveries were written: a run waiting for a sender to finish claims again."""
        with self._senders_changed:
            self._nudged = True
            self._senders_changed.notify_all()

    def close_idle(self) -> None:
        """Close the connections transports keep from one send to the next (SMTP)."""
        for transport in self.transports.values():
            close = getattr(transport, "close_idle", None)
            if close is not None:
                close()


@dataclass
class _Senders:
    """How many of a run's senders are free, and the first error one of them raised."""

    free: int
    error: BaseException | None = None


_RANK = {"urgent": 0, "warning": 1}


def _rank(item: Claimed) -> int:
    """Sending order within a run, as in `claim`: urgent alerts, warnings, then the rest."""
    severity = item.notice.severity if item.notice is not None else None
    return _RANK.get(severity or "", 2)


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
        self.outbox.nudge()

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
                # Connections are kept between runs while work keeps coming (red flags are
                # written one by one), and closed once a whole poll interval passed without.
                self.outbox.run_once(close_idle=False)
            except Exception:
                log.exception("outbox run failed; trying again shortly")
            finally:
                self.busy_since = None
                self.runs += 1
            if not self._wake.wait(self.poll_seconds):
                self._close_idle()
        self._close_idle()

    def _close_idle(self) -> None:
        try:
            self.outbox.close_idle()
        except Exception:
            log.exception("could not close the outbox's idle connections")


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
    if item.digest_id is not None:
        recipient = load_recipient(conn, item.recipient_kind, item.recipient_id)
        digest = conn.execute(select(Digest).where(Digest.id == item.digest_id)).one_or_none()
        if digest is None:
            raise LookupError(f"digest {item.digest_id}")
        return recipient, digest_message(conn, digest, item, links)
    row = notice_rows(conn, [item.id]).get(item.id)
    if row is None:
        raise LookupError(f"alert {item.alert_id}")
    return render_notice(item, row, links, escalation_hours)


# The recipient's columns when it is a coach, read with a claimed notice (`_coach_recipient`).
_COACH_COLUMNS = (
    Coach.id.label("coach_id"),
    Coach.name.label("coach_name"),
    Coach.email.label("coach_email"),
    Coach.timezone.label("coach_timezone"),
    Coach.webhook_url,
    Coach.webhook_secret,
)


def _coach_recipient(row: Row[Any]) -> Recipient:
    return Recipient(
        kind="coach",
        id=row.coach_id,
        name=row.coach_name,
        email=row.coach_email,
        timezone=row.coach_timezone,
        webhook_url=row.webhook_url,
        webhook_secret=row.webhook_secret,
    )


def notice_rows(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Per alert delivery id: its alert, the alert's athlete (the recipient, or named in a
    coach's notice), the athlete's link generation and, for a coach, the coach; one statement
    for all. A delivery whose alert is gone is missing."""
    if not delivery_ids:
        return {}
    rows = conn.execute(
        select(
            Delivery.id.label("delivery_id"),
            Alert.id,
            Alert.athlete_id,
            Alert.rule_id,
            Alert.severity,
            Alert.recommendation,
            Alert.message,
            Alert.coach_message,
            Alert.evidence,
            Alert.opened_at,
            Athlete.name.label("athlete_name"),
            Athlete.email.label("athlete_email"),
            Athlete.timezone.label("athlete_timezone"),
            Athlete.ntfy_topic,
            AthleteLink.generation.label("link_generation"),
            *_COACH_COLUMNS,
        )
        .join(Alert, Alert.id == Delivery.alert_id)
        .join(Athlete, Athlete.id == Alert.athlete_id)
        .outerjoin(AthleteLink, AthleteLink.athlete_id == Alert.athlete_id)
        .outerjoin(
            Coach, and_(Delivery.recipient_kind == "coach", Coach.id == Delivery.recipient_id)
        )
        .where(Delivery.id.in_(list(delivery_ids)))
    ).all()
    return {row.delivery_id: row for row in rows}


def digest_rows(conn: Connection, delivery_ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Per digest delivery id to a coach: the digest and the coach, in one statement for all.
    A delivery whose digest or coach is gone is missing."""
    if not delivery_ids:
        return {}
    rows = conn.execute(
        select(
            Delivery.id.label("delivery_id"),
            Digest.subject,
            Digest.text,
            Digest.html,
            Digest.data,
            *_COACH_COLUMNS,
        )
        .join(Digest, Digest.id == Delivery.digest_id)
        .join(Coach, and_(Delivery.recipient_kind == "coach", Coach.id == Delivery.recipient_id))
        .where(Delivery.id.in_(list(delivery_ids)))
    ).all()
    return {row.delivery_id: row for row in rows}


def render_digest(
    item: Claimed, row: Row[Any], links: NoticeLinks | None, engine: Engine
) -> tuple[Recipient, Message]:
    """The coach and the message of a digest delivery, from its `digest_rows` row; the database
    is read only for the charts of athletes at risk."""
    recipient = _coach_recipient(row)
    if not at_risk(row.data):
        return recipient, digest_message(None, row, item, links)
    with engine.connect() as conn:
        return recipient, digest_message(conn, row, item, links)


def digest_message(
    conn: Connection | None, digest: Any, item: Claimed, links: NoticeLinks | None
) -> Message:
    """A digest as sent: its stored text and HTML with the charts drawn now (`decorate`)."""
    html, images = decorate(conn, digest.html, digest.data, item.created_at, links)
    return Message(
        subject=digest.subject,
        text=digest.text + _dashboard_line(links),
        html=html,
        images=images,
        severity="info",
        tags=("digest",),
        data=digest.data,
    )


def render_notice(
    item: Claimed,
    row: Row[Any],
    links: NoticeLinks | None = None,
    escalation_hours: float = ESCALATION_HOURS,
) -> tuple[Recipient, Message]:
    """The recipient and the message of an alert delivery, from its `notice_rows` row."""
    if item.recipient_kind == "coach":
        if row.coach_id is None:
            raise LookupError(f"coach {item.recipient_id}")
        recipient = _coach_recipient(row)
    elif item.recipient_id == row.athlete_id:
        recipient = Recipient(
            kind="athlete",
            id=row.athlete_id,
            name=row.athlete_name,
            email=row.athlete_email,
            timezone=row.athlete_timezone,
            athlete_id=row.athlete_id,
            ntfy_topic=row.ntfy_topic,
        )
    else:
        raise LookupError(f"athlete {item.recipient_id} for an alert of {row.athlete_id}")
    message = render_alert(
        alert_id=row.id,
        athlete_id=row.athlete_id,
        athlete_name=row.athlete_name,
        rule_id=row.rule_id,
        severity=row.severity,
        recommendation=row.recommendation,
        text=row.message,
        evidence=row.evidence,
        reason=item.reason,
        audience=item.recipient_kind,
        opened_at=row.opened_at,
        timezone=recipient.timezone,
        link=(
            links.for_alert(
                item.recipient_kind,
                item.recipient_id,
                row.athlete_id,
                row.id,
                generation=row.link_generation or 0,
            )
            if links is not None
            else None
        ),
        coach_text=row.coach_message,
        athlete_email=row.athlete_email,
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
