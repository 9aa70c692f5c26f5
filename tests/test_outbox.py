"""The outbox's order and pace: red flags first, never behind a claim's slowest send, and no
database reads per send for an alert's notice. Real SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, event, insert, select, update

from db.engine import session_factory
from db.models import Delivery, Digest
from kneeguard.admin.registry import Registry
from notifier.base import Channel, Message, Recipient
from notifier.outbox import Claimed, Outbox, OutboxWorker
from notifier.routing import enqueue_alerts
from testsupport import add_alert, register, wait_until


class Recording:
    """An email channel that records who it sent to, in order."""

    channel: Channel = "email"

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def send(self, recipient: Recipient, message: Message) -> None:
        self.sent.append((recipient.id, message.subject))


def digests(engine: Engine, count: int, at: datetime) -> None:
    """`count` digest deliveries to Cora, due at `at`."""
    with engine.begin() as conn:
        for i in range(count):
            digest_id = conn.execute(
                insert(Digest).returning(Digest.id),
                {
                    "coach_id": "cora",
                    "period": "daily",
                    "period_start": at - timedelta(days=i + 1),
                    "period_end": at - timedelta(days=i),
                    "created_at": at,
                    "subject": "KneeGuard digest",
                    "text": "Your athletes.",
                    "html": "<p>Your athletes.</p>",
                    "data": {},
                },
            ).scalar_one()
            conn.execute(
                insert(Delivery),
                {
                    "dedup_key": f"digest:{digest_id}:email",
                    "digest_id": digest_id,
                    "reason": "digest",
                    "recipient_kind": "coach",
                    "recipient_id": "cora",
                    "channel": "email",
                    "status": "pending",
                    "attempts": 0,
                    "created_at": at,
                    "due_at": at,
                },
            )


def test_an_urgent_alert_is_claimed_before_older_digests_and_warnings(engine: Engine) -> None:
    register(engine)
    Registry(session_factory(engine)).update_athlete("ann", quiet_hours="off")
    now = datetime.now(UTC)
    earlier = now - timedelta(hours=1)
    digests(engine, 3, earlier)  # a round of digests, due for an hour
    warning = add_alert(engine, "warning", earlier)
    urgent = add_alert(engine, "urgent", now, rule="redflag.locked_knee")
    with engine.begin() as conn:
        enqueue_alerts(conn, [(warning, "opened")], earlier, ("email",))
        enqueue_alerts(conn, [(urgent, "opened")], now, ("email",))
    outbox = Outbox(engine, {"email": Recording()}, lambda: now, batch=1)
    order = []
    while claimed := outbox.claim(now):
        (item,) = claimed
        order.append("digest" if item.digest_id else item.alert_id)
    # The urgent alert's athlete and coach first, then the warning (athlete only), then digests.
    assert order == [urgent, urgent, warning, "digest", "digest", "digest"]


class Blocking(Recording):
    """Sends to `slow` wait until released; every other send goes out at once."""

    def __init__(self, slow: str) -> None:
        super().__init__()
        self.slow = slow
        self.release = threading.Event()

    def send(self, recipient: Recipient, message: Message) -> None:
        if recipient.id == self.slow:
            assert self.release.wait(20)
        super().send(recipient, message)


def test_a_red_flag_does_not_wait_for_the_slowest_send_of_a_claim(engine: Engine) -> None:
    """While one delivery of a claim hangs on its server, a red flag written after the claim is
    claimed and sent by a free sender: it used to wait until the whole claim was done."""
    register(engine)
    now = datetime.now(UTC)
    first = add_alert(engine, "urgent", now, rule="redflag.locked_knee")
    with engine.begin() as conn:
        enqueue_alerts(conn, [(first, "opened")], now, ("email",))
    transport = Blocking(slow="cora")  # the coach's server hangs
    outbox = Outbox(engine, {"email": transport}, lambda: now, senders=4)
    worker = OutboxWorker(outbox, poll_seconds=60)
    worker.start()
    try:
        assert wait_until(lambda: ("ann", _subject(transport, "ann")) in transport.sent, 10)
        second = add_alert(engine, "urgent", now, rule="redflag.severe_pain")
        with engine.begin() as conn:
            enqueue_alerts(conn, [(second, "opened")], now, ("email",))
        worker.wake()
        assert wait_until(lambda: [to for to, _ in transport.sent] == ["ann", "ann"], 10), (
            transport.sent
        )
        assert not transport.release.is_set()  # the first claim's coach email still hangs
    finally:
        transport.release.set()
        worker.stop()
    with engine.connect() as conn:
        statuses = list(conn.execute(select(Delivery.status)).scalars())
    assert statuses == ["sent"] * 4


def _subject(transport: Recording, to: str) -> str:
    return next((subject for who, subject in transport.sent if who == to), "")


def reads_while_sending(engine: Engine, outbox: Outbox, claimed: list[Claimed]) -> list[str]:
    """Send every claimed delivery (each must go out) and return the SELECTs that ran meanwhile."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        for item in claimed:
            assert outbox.send(item) == "sent"
    finally:
        event.remove(engine, "before_cursor_execute", record)
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_an_alert_notice_is_read_with_its_claim_not_per_send(engine: Engine) -> None:
    """The alert, its athlete, the recipient and the link generation come with the claim, in
    one statement: sending reads nothing more (it read each on its own, on two connections)."""
    register(engine)
    now = datetime.now(UTC)
    alerts = [add_alert(engine, "urgent", now, rule=f"redflag.r{i}") for i in range(3)]
    with engine.begin() as conn:
        enqueue_alerts(conn, [(a, "opened") for a in alerts], now, ("email",))
    links = CountingLinks()
    outbox = Outbox(engine, {"email": Recording()}, lambda: now, links=links)
    claimed = outbox.claim(now)
    assert len(claimed) == 6
    assert reads_while_sending(engine, outbox, claimed) == []
    assert links.generations == [0, 0, 0]  # the athlete's links, generation read with the claim


class CountingLinks:
    def __init__(self) -> None:
        self.generations: list[int | None] = []

    def for_alert(
        self,
        recipient_kind: str,
        recipient_id: str,
        athlete_id: str,
        alert_id: int,
        generation: int | None = None,
    ) -> None:
        if recipient_kind == "athlete":
            self.generations.append(generation)

    def dashboard(self, athlete_id: str | None = None) -> str:
        return "http://localhost/coach"


def statuses(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.status).order_by(Delivery.id)).scalars())


def test_urgent_busy_while_a_red_flag_is_being_sent_and_not_for_a_digest(engine: Engine) -> None:
    """What the run writer gives way to (kneeguard/app/service.py): an urgent alert's delivery
    claimed and not done. A digest being sent is bulk work and does not count."""
    register(engine)
    now = datetime.now(UTC)
    digests(engine, 1, now)
    transport = Blocking(slow="cora")
    outbox = Outbox(engine, {"email": transport}, lambda: now, senders=4)
    worker = OutboxWorker(outbox, poll_seconds=60)
    worker.start()
    try:
        assert wait_until(lambda: statuses(engine) == ["sending"], 10)
        time.sleep(0.1)
        assert not outbox.urgent_busy()  # the digest hangs, and it is not urgent
        transport.release.set()
        assert wait_until(lambda: len(transport.sent) == 1, 10)
        transport.release.clear()
        alert = add_alert(engine, "urgent", now, rule="redflag.locked_knee")
        with engine.begin() as conn:
            enqueue_alerts(conn, [(alert, "opened")], now, ("email",))
        worker.wake()
        # The athlete's email goes at once; the coach's hangs, and is urgent.
        assert wait_until(lambda: ("ann", _subject(transport, "ann")) in transport.sent, 10)
        assert wait_until(outbox.urgent_busy, 10)
        transport.release.set()
        assert wait_until(lambda: not outbox.urgent_busy(), 10)
    finally:
        transport.release.set()
        worker.stop()


class Keeping:
    """An email channel that keeps every message it is given."""

    channel: Channel = "email"

    def __init__(self) -> None:
        self.messages: list[tuple[Recipient, Message]] = []

    def send(self, recipient: Recipient, message: Message) -> None:
        self.messages.append((recipient, message))


def test_a_digest_is_read_with_its_claim_and_sent_as_before(engine: Engine) -> None:
    """A digest and its coach come with the claim: sending one with no athlete at risk reads
    nothing more (it read the coach and the digest on a connection of its own), and the email
    is the one `load_notice` gives."""
    from notifier.outbox import load_notice

    register(engine)
    now = datetime.now(UTC)
    digests(engine, 2, now)
    links = CountingLinks()
    transport = Keeping()
    outbox = Outbox(engine, {"email": transport}, lambda: now, links=links)
    claimed = outbox.claim(now)
    assert [item.digest is not None for item in claimed] == [True, True]
    assert reads_while_sending(engine, outbox, claimed) == []
    with engine.connect() as conn:
        expected = [load_notice(conn, item, links) for item in claimed]
    sent = [(recipient, message) for recipient, message in transport.messages]
    assert [(r, m.subject, m.text, m.html, m.data) for r, m in sent] == [
        (r, m.subject, m.text, m.html, m.data) for r, m in expected
    ]
    assert (
        sent[0][1].text.endswith("http://localhost/coach\n") or "localhost/coach" in sent[0][1].text
    )


def test_a_digest_with_an_athlete_at_risk_still_gets_its_chart(engine: Engine) -> None:
    register(engine)
    now = datetime.now(UTC)
    digests(engine, 1, now)
    open_alert = {"athlete_id": "ann", "athlete_name": "Ann", "severity": "urgent"}
    with engine.begin() as conn:
        conn.execute(update(Digest).values(data={"open_alerts": [open_alert]}))
    transport = Keeping()
    outbox = Outbox(engine, {"email": transport}, lambda: now, links=CountingLinks())
    (item,) = outbox.claim(now)
    assert outbox.send(item) == "sent"
    ((_, message),) = transport.messages
    assert [image.cid for image in message.images] == ["chart-0@kneeguard"]
    assert "cid:chart-0@kneeguard" in (message.html or "")
