"""Coach digests: build and hand to SMTP the digests of many coaches at once.

Coaches with 20 athletes each, 30 days of history per athlete (loaded with COPY), on
PostgreSQL; one forced digest round (`send_due_digests`: claim, build, outbox rows) is timed,
then the outbox hands every digest to a real SMTP server (aiosmtpd, in this process). In the
same run, the reference: the same emails handed to the same server by a bare smtplib session
(one connection, `send_message` after `send_message`), which is the least an SMTP hand-off costs
from Python here.

BENCH_PYSPY=DIR records a py-spy profile of this process while the outbox sends
(`digests-outbox.txt`, `--format raw`), as bench/ingest.py does for the service.
"""

from __future__ import annotations

import os
import smtplib
import sys
import time
from datetime import UTC, datetime
from email.message import EmailMessage

from sqlalchemy import Engine, select

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench.ingest import profiler
from bench.sweep import load_club
from db.engine import make_engine
from db.models import Coach, Digest
from kneeguard.app.delivery import build_transports
from kneeguard.settings import Settings
from notifier.base import Message, Recipient
from notifier.digest import send_due_digests
from notifier.email import build_email
from notifier.outbox import Outbox
from testsupport import SmtpSink

COACHES = {"tiny": 10, "small": 1_000, "full": 1_000}
PER_COACH = 20


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def figures(scale: str) -> list[Figure]:
    coaches = COACHES[scale]
    now = datetime.now(UTC)
    smtp = SmtpSink().start()
    try:
        with fresh_postgres() as url:
            engine = make_engine(url)
            runs, _checkins = load_club(
                engine, coaches * PER_COACH, days=30, per_coach=PER_COACH, now=now
            )
            say(f"{coaches} coaches, {coaches * PER_COACH} athletes, {runs} runs loaded")
            started = time.perf_counter()
            ids = send_due_digests(engine, now, force=True, available_channels=("email",))
            built = time.perf_counter() - started
            settings = Settings(database_url=url, smtp_url=smtp.url, _env_file=None)
            outbox = Outbox(engine, build_transports(settings), lambda: datetime.now(UTC))
            with profiler(os.getpid(), "digests-outbox"):
                started = time.perf_counter()
                outbox.run_once()
                handed = time.perf_counter() - started
            emails = bare_emails(engine, settings.mail_from)
            engine.dispose()
        delivered = len(smtp.messages)
        started = time.perf_counter()
        bare_session(smtp.port, emails)
        bare = time.perf_counter() - started
    finally:
        smtp.stop()
    if len(ids) != coaches or delivered != coaches:
        raise BenchError(f"{len(ids)} digests built, {delivered} emails for {coaches}")
    if len(smtp.messages) != 2 * coaches:
        raise BenchError(f"the bare session delivered {len(smtp.messages) - delivered} emails")
    return [
        Figure(f"digest_build_seconds_{coaches}", built, "s"),
        Figure(f"digest_smtp_seconds_{coaches}", handed, "s"),
        Figure(f"digest_total_seconds_{coaches}", built + handed, "s"),
        Figure("email_handoff_ms", handed / coaches * 1000, "ms"),
        Figure("email_handoff_bare_smtplib_ms", bare / coaches * 1000, "ms"),
        Figure("email_handoff_ratio", handed / bare, "x"),
    ]


def bare_emails(engine: Engine, mail_from: str) -> list[tuple[str, EmailMessage]]:
    """The digests as the outbox sent them, built once, before the bare session is timed."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Digest.subject, Digest.text, Digest.html, Coach.id, Coach.name, Coach.email)
            .join(Coach, Coach.id == Digest.coach_id)
            .order_by(Digest.id)
        ).all()
    emails = []
    for subject, text, html, coach_id, name, email in rows:
        recipient = Recipient(kind="coach", id=coach_id, name=name, email=email, timezone="UTC")
        message = Message(subject=subject, text=text, html=html)
        emails.append((email, build_email(recipient, message, mail_from)))
    return emails


def bare_session(port: int, emails: list[tuple[str, EmailMessage]]) -> None:
    """One smtplib connection, every email through it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as session:
        for to, email in emails:
            session.send_message(email, from_addr="kneeguard@localhost", to_addrs=[to])


if __name__ == "__main__":
    from bench import scale_from_env

    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
