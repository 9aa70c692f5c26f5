"""Coach digests: build and hand to SMTP the digests of many coaches at once.

Coaches with 20 athletes each, 30 days of history per athlete (loaded with COPY), on
PostgreSQL; one forced digest round (`send_due_digests`: claim, build, outbox rows) is timed,
then the outbox hands every digest to a real SMTP server (aiosmtpd, in this process).
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench.sweep import load_club
from db.engine import make_engine
from kneeguard.app.delivery import build_transports
from kneeguard.settings import Settings
from notifier.digest import send_due_digests
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
            started = time.perf_counter()
            outbox.run_once()
            handed = time.perf_counter() - started
            engine.dispose()
    finally:
        smtp.stop()
    if len(ids) != coaches or len(smtp.messages) != coaches:
        raise BenchError(f"{len(ids)} digests built, {len(smtp.messages)} emails for {coaches}")
    return [
        Figure(f"digest_build_seconds_{coaches}", built, "s"),
        Figure(f"digest_smtp_seconds_{coaches}", handed, "s"),
        Figure(f"digest_total_seconds_{coaches}", built + handed, "s"),
    ]
