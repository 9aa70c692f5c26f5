"""The outbox alone: how long a red flag's email waits in it, and how fast it hands emails over.

PostgreSQL, a real SMTP server (aiosmtpd) and a real HTTP server for ntfy push (both in this
process), and the outbox as `kneeguard run` runs it: `OutboxWorker` with its sender threads,
woken when an alert's deliveries are written, and signed links whose generation is read from
the database. No broker and no ingest: this isolates the outbox from the rest of the service
(bench/latency.py measures the whole path). Every red flag is an urgent alert for an athlete of
its own, with three deliveries (the athlete's email and push, the coach's email). In order:

1. **paced**: one red flag every 50 ms (as bench/latency.py publishes them): the alert and its
   deliveries committed in one transaction, then the worker woken, as the rules do. Latency is
   from just before that transaction to the SMTP server receiving the athlete's email
   (`outbox_redflag_paced_p50/p99`), on this process's monotonic clock.
2. **behind a backlog**: the same, with `BACKLOG` coach digests already due and waiting to be
   sent when the first red flag is written (`outbox_redflag_backlog_p50/p99`): red flags must
   not wait for bulk mail.
3. **throughput**: `FLAGS` red flags written at once; the time until the last of their emails
   arrived (`outbox_emails_per_s`, emails and pushes both counted as deliveries:
   `outbox_deliveries_per_s`).

The in-run reference: the same number of emails, built before timing, handed to the same server
by one bare smtplib session, `send_message` after `send_message` (`outbox_bare_smtplib_ms` per
email, `outbox_bare_smtplib_emails_per_s`): the least one SMTP hand-off costs from Python here.
BENCH_PYSPY=DIR records a py-spy profile of this process during each phase
(`outbox-PHASE.txt`, raw format), as bench/digests.py does.
"""

from __future__ import annotations

import os
import smtplib
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import Engine, insert, update

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench.ingest import profiler
from db.engine import make_engine
from db.models import Alert, Athlete, Coach, Delivery, Digest
from kneeguard.app.delivery import build_transports
from kneeguard.settings import Settings
from kneeguard.web.links import Links, NoticeLinksFromDb
from kneeguard.web.security import Signer
from notifier.base import Message, Recipient
from notifier.outbox import Outbox, OutboxWorker
from notifier.routing import enqueue_alerts
from testsupport import HttpSink, SmtpSink, wait_until
from testsupport.mail import stdlib_email

# (red flags per phase, digests waiting in the backlog phase)
SIZES = {"tiny": (10, 20), "small": (200, 1_000), "full": (200, 3_000)}
FLAG_GAP = 0.05
PHASES = ("paced", "backlog", "burst")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def athlete_id(phase: str, i: int) -> str:
    return f"{phase}-{i:04d}"


def prepare(engine: Engine, flags: int, backlog: int, now: datetime) -> None:
    """One coach per red-flag athlete's team (the coach's email is one more delivery), and
    `backlog` coaches with a digest each, not yet due."""
    coach = {"timezone": "UTC", "created_at": now}
    with engine.begin() as conn:
        conn.execute(
            insert(Coach),
            [{"id": "cora", "name": "Cora", "email": "cora@example.com", **coach}]
            + [
                {"id": f"d{i:05d}", "name": f"Coach {i}", "email": f"d{i:05d}@example.com", **coach}
                for i in range(backlog)
            ],
        )
        conn.execute(
            insert(Athlete),
            [
                {
                    "id": athlete_id(phase, i),
                    "name": f"Runner {i}",
                    "email": f"{athlete_id(phase, i)}@example.com",
                    "timezone": "UTC",
                    "coach_id": "cora",
                    "ntfy_topic": f"knee-{athlete_id(phase, i)}",
                    "channels": "email,push",
                    "quiet_hours": "off",
                    "created_at": now,
                }
                for phase in PHASES
                for i in range(flags)
            ],
        )
        if backlog:
            digests = conn.execute(
                insert(Digest).returning(Digest.id, Digest.coach_id),
                [
                    {
                        "coach_id": f"d{i:05d}",
                        "period": "daily",
                        "period_start": now,
                        "period_end": now,
                        "created_at": now,
                        "subject": "KneeGuard daily digest",
                        "text": "Your athletes yesterday.\n" * 40,
                        "html": "<p>Your athletes yesterday.</p>" * 40,
                        "data": {},
                    }
                    for i in range(backlog)
                ],
            ).all()
            conn.execute(
                insert(Delivery),
                [
                    {
                        "dedup_key": f"digest:{digest_id}:email",
                        "digest_id": digest_id,
                        "reason": "digest",
                        "recipient_kind": "coach",
                        "recipient_id": coach_id,
                        "channel": "email",
                        "status": "pending",
                        "attempts": 0,
                        "created_at": now,
                        "due_at": datetime(2100, 1, 1, tzinfo=UTC),  # made due by the phase
                    }
                    for digest_id, coach_id in digests
                ],
            )


def red_flag(engine: Engine, athlete: str, now: datetime) -> None:
    """An urgent alert and its deliveries in one transaction, as the rules write them."""
    with engine.begin() as conn:
        alert_id = conn.execute(
            insert(Alert).returning(Alert.id),
            {
                "athlete_id": athlete,
                "rule_id": "redflag.locked_knee",
                "severity": "urgent",
                "recommendation": "urgent_care",
                "status": "open",
                "opened_at": now,
                "last_triggered_at": now,
                "updated_at": now,
                "message": "Seen: your knee locked. What to do: stop running and get help "
                "today. This is not a diagnosis.",
                "coach_message": "Seen: {athlete}'s knee locked.",
                "evidence": {"symptoms": ["locking"]},
            },
        ).scalar_one()
        enqueue_alerts(conn, [(alert_id, "opened")], now, ("email", "push"))


def arrived(smtp: SmtpSink, since: int) -> dict[str, float]:
    """Recipient → when their email arrived, for the emails received after the first `since`."""
    return {to: at for at, tos in smtp.received[since:] for to in tos}


def percentile99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def paced(
    name: str,
    engine: Engine,
    smtp: SmtpSink,
    worker: OutboxWorker,
    flags: int,
    before: Callable[[], None] | None = None,
) -> list[float]:
    since = len(smtp.received)
    written: dict[str, float] = {}
    with profiler(os.getpid(), f"outbox-{name}"):
        if before is not None:
            before()
            worker.wake()
        for i in range(flags):
            athlete = athlete_id(name, i)
            at = time.monotonic()
            red_flag(engine, athlete, datetime.now(UTC))
            written[f"{athlete}@example.com"] = at
            worker.wake()
            time.sleep(max(0.0, at + FLAG_GAP - time.monotonic()))
        if not wait_until(lambda: set(written) <= set(arrived(smtp, since)), 300, interval=0.05):
            got = len(set(written) & set(arrived(smtp, since)))
            raise BenchError(f"{name}: only {got} of {flags} red-flag emails arrived")
    received = arrived(smtp, since)
    latencies = [(received[to] - at) * 1000 for to, at in written.items()]
    say(
        f"{name}: {flags} red flags, athlete's email p50 {statistics.median(latencies):.0f} ms, "
        f"p99 {percentile99(latencies):.0f} ms, max {max(latencies):.0f} ms"
    )
    return latencies


def burst(engine: Engine, smtp: SmtpSink, worker: OutboxWorker, flags: int) -> float:
    """All red flags written at once (the worker asleep), then the time to send them all."""
    since = len(smtp.received)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        ids = conn.execute(
            insert(Alert).returning(Alert.id),
            [
                {
                    "athlete_id": athlete_id("burst", i),
                    "rule_id": "redflag.locked_knee",
                    "severity": "urgent",
                    "recommendation": "urgent_care",
                    "status": "open",
                    "opened_at": now,
                    "last_triggered_at": now,
                    "updated_at": now,
                    "message": "Seen: your knee locked. This is not a diagnosis.",
                    "coach_message": "Seen: {athlete}'s knee locked.",
                    "evidence": {"symptoms": ["locking"]},
                }
                for i in range(flags)
            ],
        ).scalars()
        enqueue_alerts(conn, [(i, "opened") for i in ids], now, ("email", "push"))
    expected = 2 * flags  # the athlete's and the coach's
    with profiler(os.getpid(), "outbox-burst"):
        started = time.monotonic()
        worker.wake()
        if not wait_until(lambda: len(smtp.received) - since >= expected, 300, interval=0.02):
            raise BenchError(f"burst: {len(smtp.received) - since} of {expected} emails arrived")
        seconds = max(at for at, _ in smtp.received[since:]) - started
    say(f"burst: {expected} emails and {flags} pushes sent in {seconds:.2f}s")
    return seconds


def bare_session(port: int, count: int, mail_from: str) -> float:
    """`count` alert-sized emails through one smtplib connection; seconds."""
    recipient = Recipient(
        kind="athlete", id="bare", name="Runner", email="bare@example.com", timezone="UTC"
    )
    message = Message(
        subject="[URGENT] stop running and get help today",
        text="Seen: your knee locked. This is not a diagnosis.\n" * 10,
        html="<p>Seen: your knee locked. This is not a diagnosis.</p>" * 10,
    )
    emails: list[EmailMessage] = [stdlib_email(recipient, message, mail_from) for _ in range(count)]
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as session:
        for email in emails:
            session.send_message(email, from_addr="kneeguard@localhost", to_addrs=["bare@x.org"])
    return time.monotonic() - started


def figures(scale: str) -> list[Figure]:
    flags, backlog = SIZES[scale]
    smtp = SmtpSink().start()
    ntfy = HttpSink().start()
    try:
        with fresh_postgres() as url:
            engine = make_engine(url)
            now = datetime.now(UTC)
            prepare(engine, flags, backlog, now)
            settings = Settings(
                database_url=url, smtp_url=smtp.url, ntfy_url=ntfy.url, _env_file=None
            )
            outbox = Outbox(engine, build_transports(settings), lambda: datetime.now(UTC))
            signer = Signer("bench-secret-key-" + "x" * 32)
            outbox.links = NoticeLinksFromDb(Links("http://localhost:8080", signer), engine)
            worker = OutboxWorker(outbox)
            worker.start()
            try:
                normal = paced("paced", engine, smtp, worker, flags)

                def digests_due() -> None:
                    with engine.begin() as conn:
                        conn.execute(
                            update(Delivery)
                            .where(Delivery.digest_id.is_not(None))
                            .values(due_at=datetime.now(UTC))
                        )

                behind = paced("backlog", engine, smtp, worker, flags, before=digests_due)
                if not wait_until(
                    lambda: len(smtp.received) >= 4 * flags + backlog, 600, interval=0.1
                ):
                    raise BenchError("the digest backlog was not sent")
                seconds = burst(engine, smtp, worker, flags)
            finally:
                worker.stop()
                engine.dispose()
        bare = bare_session(smtp.port, 2 * flags, settings.mail_from)
    finally:
        ntfy.stop()
        smtp.stop()
    return [
        Figure("outbox_redflag_paced_p50", statistics.median(normal), "ms"),
        Figure("outbox_redflag_paced_p99", percentile99(normal), "ms"),
        Figure("outbox_redflag_backlog_p50", statistics.median(behind), "ms"),
        Figure("outbox_redflag_backlog_p99", percentile99(behind), "ms"),
        Figure("outbox_emails_per_s", 2 * flags / seconds, "emails/s"),
        Figure("outbox_deliveries_per_s", 3 * flags / seconds, "deliveries/s"),
        Figure("outbox_bare_smtplib_emails_per_s", 2 * flags / bare, "emails/s"),
        Figure("outbox_bare_smtplib_ms", bare / (2 * flags) * 1000, "ms"),
    ]


if __name__ == "__main__":
    from bench import scale_from_env

    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
