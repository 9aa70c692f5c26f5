"""Coach digests: build and hand to SMTP the digests of many coaches at once.

Coaches with 20 athletes each, 30 days of history per athlete (loaded with COPY), on
PostgreSQL; one forced digest round (`send_due_digests`: claim, build, outbox rows) is timed,
then the outbox hands every digest to a real SMTP server (aiosmtpd, in a process of its own that
parses nothing, so that neither sender shares an interpreter with it). In the
same run, two references: a bare scan of the rows a digest reads (each coach's athletes, their
open or recent alerts, runs and check-ins over the same look-backs, streamed and touched in
Python, nothing else), the least building the digests can cost; and the same emails handed to the
same server by a bare smtplib session (one connection, `send_message` after `send_message` of
messages the standard library built before the session is timed), the reference of the hand-off
figure. Beside it, the floor: the same session sending the very bytes the outbox writes
(`sendmail`, the emails built before it is timed). The CPU time of this process in the outbox's
hand-off and in each session is printed too.

BENCH_PYSPY=DIR records py-spy profiles of this process while the digests are built
(`digests-build.txt`) and while the outbox sends (`digests-outbox.txt`), `--format raw`, as
bench/ingest.py does for the service.
"""

from __future__ import annotations

import os
import smtplib
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any

from sqlalchemy import Engine, Select, or_, select

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench._smtp import SinkProcess
from bench.ingest import profiler
from bench.sweep import load_club
from db.engine import make_engine
from db.models import Alert, Athlete, Checkin, Coach, Digest, Run
from kneeguard.app.delivery import build_transports
from kneeguard.settings import Settings
from notifier.base import Message, Recipient
from notifier.digest import send_due_digests
from notifier.digest.periods import WEEK_DAYS
from notifier.email import build_email
from notifier.outbox import Outbox
from rules.config import RulesConfig
from rules.evaluate import history_days_needed
from testsupport import wait_until
from testsupport.mail import stdlib_email

COACHES = {"tiny": 10, "small": 1_000, "full": 1_000}
PER_COACH = 20


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def figures(scale: str) -> list[Figure]:
    coaches = COACHES[scale]
    now = datetime.now(UTC)
    smtp = SinkProcess().start()
    try:
        with fresh_postgres() as url:
            engine = make_engine(url)
            runs, _checkins = load_club(
                engine, coaches * PER_COACH, days=30, per_coach=PER_COACH, now=now
            )
            say(f"{coaches} coaches, {coaches * PER_COACH} athletes, {runs} runs loaded")
            scan, scanned = bare_scan(engine, now)
            say(f"bare scan: {scanned} rows in {scan:.2f} s")
            with profiler(os.getpid(), "digests-build"):
                started = time.perf_counter()
                ids = send_due_digests(engine, now, force=True, available_channels=("email",))
                built = time.perf_counter() - started
            settings = Settings(database_url=url, smtp_url=smtp.url, _env_file=None)
            outbox = Outbox(engine, build_transports(settings), lambda: datetime.now(UTC))
            with profiler(os.getpid(), "digests-outbox"):
                handed = timed("outbox", coaches, outbox.run_once)
            sent = sent_digests(engine)
            engine.dispose()
        emails = [(r.email, stdlib_email(r, m, settings.mail_from)) for r, m in sent]
        wire = [(r.email, build_email(r, m, settings.mail_from)) for r, m in sent]
        wait_until(lambda: len(smtp.received) >= coaches, 30)
        delivered = len(smtp.received)
        bare = timed("bare send_message", coaches, lambda: bare_session(smtp.port, emails))
        wait_until(lambda: len(smtp.received) >= 2 * coaches, 30)
        floor = timed("bare sendmail", coaches, lambda: bare_bytes_session(smtp.port, wire))
        wait_until(lambda: len(smtp.received) >= 3 * coaches, 30)
        total = len(smtp.received)
    finally:
        smtp.stop()
    if len(ids) != coaches or delivered != coaches:
        raise BenchError(f"{len(ids)} digests built, {delivered} emails for {coaches}")
    if total != 3 * coaches:
        raise BenchError(f"the bare sessions delivered {total - delivered} emails")
    return [
        Figure(f"digest_build_seconds_{coaches}", built, "s"),
        Figure(f"digest_bare_scan_seconds_{coaches}", scan, "s"),
        Figure(f"digest_build_scan_ratio_{coaches}", built / scan, "x"),
        Figure(f"digest_smtp_seconds_{coaches}", handed, "s"),
        Figure(f"digest_total_seconds_{coaches}", built + handed, "s"),
        Figure("email_handoff_ms", handed / coaches * 1000, "ms"),
        Figure("email_handoff_bare_smtplib_ms", bare / coaches * 1000, "ms"),
        Figure("email_handoff_ratio", handed / bare, "x"),
        Figure("email_handoff_bare_sendmail_ms", floor / coaches * 1000, "ms"),
        Figure("email_handoff_sendmail_ratio", handed / floor, "x"),
    ]


def bare_scan(engine: Engine, now: datetime) -> tuple[float, int]:
    """Stream the columns and rows the digests read, touch every row, do nothing else: the
    athletes with their coach, the alerts open or opened in the last week, runs over the rules'
    history look-back and check-ins over the digest's."""
    run_since = now - timedelta(days=history_days_needed(RulesConfig()) + 1)
    checkin_since = now - timedelta(days=2 * WEEK_DAYS + 2)
    week_ago = now - timedelta(days=WEEK_DAYS)
    queries: list[Select[Any]] = [
        select(Coach.id, Coach.name, Coach.timezone),
        select(Athlete.id, Athlete.name, Athlete.timezone, Athlete.coach_id),
        select(Alert).where(or_(Alert.status != "resolved", Alert.opened_at >= week_ago)),
        select(Run.athlete_id, Run.uuid, Run.start_time, Run.distance_m).where(
            Run.start_time >= run_since, Run.start_time <= now
        ),
        select(
            Checkin.athlete_id,
            Checkin.recorded_at,
            Checkin.context,
            Checkin.pain_score,
            Checkin.related_run_uuid,
            Checkin.pain_sites,
            Checkin.note,
        ).where(Checkin.recorded_at >= checkin_since, Checkin.recorded_at <= now),
    ]
    started = time.perf_counter()
    rows = 0
    touched = 0
    with engine.connect() as conn:
        stream = conn.execution_options(yield_per=5000)
        for query in queries:
            for row in stream.execute(query):
                rows += 1
                touched += len(row)
    return time.perf_counter() - started, rows


def timed(what: str, count: int, work: Callable[[], object]) -> float:
    """Run `work`; print this process's CPU time per email; return the seconds it took."""
    cpu = os.times()
    started = time.perf_counter()
    work()
    seconds = time.perf_counter() - started
    after = os.times()
    user, system = after.user - cpu.user, after.system - cpu.system
    say(
        f"{what}: {seconds:.2f} s, CPU {1000 * (user + system) / count:.2f} ms an email "
        f"(user {user:.2f} s, system {system:.2f} s)"
    )
    return seconds


def sent_digests(engine: Engine) -> list[tuple[Recipient, Message]]:
    """The recipients and messages of the digests the outbox sent, read back for the bare
    sessions, which send the same emails."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Digest.subject, Digest.text, Digest.html, Coach.id, Coach.name, Coach.email)
            .join(Coach, Coach.id == Digest.coach_id)
            .order_by(Digest.id)
        ).all()
    return [
        (
            Recipient(kind="coach", id=coach_id, name=name, email=email, timezone="UTC"),
            Message(subject=subject, text=text, html=html),
        )
        for subject, text, html, coach_id, name, email in rows
    ]


def bare_session(port: int, emails: list[tuple[str, EmailMessage]]) -> None:
    """One smtplib connection, every email through it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as session:
        for to, email in emails:
            session.send_message(email, from_addr="kneeguard@localhost", to_addrs=[to])


def bare_bytes_session(port: int, emails: list[tuple[str, bytes]]) -> None:
    """One smtplib connection, every email's bytes through it."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as session:
        for to, email in emails:
            session.sendmail("kneeguard@localhost", [to], email)


if __name__ == "__main__":
    from bench import scale_from_env

    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
