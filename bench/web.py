"""The coach's web pages with a full team: 200 athletes with 120 days of runs and check-ins.

The club is loaded into a fresh PostgreSQL database (COPY, as bench/sweep.py does), one rule
sweep opens the alerts the data calls for, and the web app is served for real (uvicorn on a
free port). Each page is requested repeatedly by one client on the same machine; the figures
are the p50 and p95 request times (measured at the client, so they include the local HTTP round
trip) and the number of SQL statements the page runs, counted on the engine: a number that does
not grow with the team means no N+1.
"""

from __future__ import annotations

import secrets
import socket
import statistics
import sys
import time
from datetime import UTC, datetime

import httpx
from sqlalchemy import event, select

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench.sweep import load_club
from db.engine import make_engine
from db.models import Alert
from kneeguard.settings import Settings
from kneeguard.web.server import WebServer, build_context
from rules.config import RulesConfig
from rules.engine import RuleEngine

SIZES = {"tiny": (20, 5), "small": (200, 20), "full": (200, 100)}  # (athletes, requests/page)
DAYS = 120
TARGET_P95_MS = 150


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def figures(scale: str) -> list[Figure]:
    athletes, repeats = SIZES[scale]
    now = datetime.now(UTC)
    with fresh_postgres("kneeguard_bench_web") as url:
        engine = make_engine(url)
        try:
            runs, checkins = load_club(engine, athletes, days=DAYS, per_coach=athletes, now=now)
            say(f"loaded {athletes} athletes: {runs} runs, {checkins} check-ins")
            RuleEngine(engine, RulesConfig()).sweep(now)
            with engine.connect() as conn:
                alerts = len(conn.execute(select(Alert.id)).all())
            say(f"{alerts} alerts open after one sweep")
            return measure(url, engine, now, repeats)
        finally:
            engine.dispose()


def measure(url: str, engine: object, now: datetime, repeats: int) -> list[Figure]:
    from sqlalchemy import Engine

    assert isinstance(engine, Engine)
    port = unused_port()
    settings = Settings(
        database_url=url,
        web_bind=f"127.0.0.1:{port}",
        public_url=f"http://127.0.0.1:{port}",
        secret_key=secrets.token_urlsafe(48),
        _env_file=None,
    )
    ctx = build_context(settings, engine, lambda stored: None, lambda: now)
    server = WebServer(ctx, settings.web_bind)
    statements = [0]

    def count(*args: object) -> None:
        statements[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline:
                raise BenchError("the web app did not start")
            time.sleep(0.05)
        cookie = ctx.signer.sign("session", {"c": "c000000"})
        out: list[Figure] = []
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", cookies={"kg_session": cookie}, timeout=30
        ) as client:
            team = client.get("/coach")
            if team.status_code != 200:
                raise BenchError(f"team overview answered {team.status_code}")
            first = team.text.split('href="/coach/athletes/', 1)[1].split('"', 1)[0]
            pages = {"team": "/coach", "athlete": f"/coach/athletes/{first}"}
            for name, path in pages.items():
                times, counts = [], []
                for _ in range(repeats):
                    before = statements[0]
                    started = time.perf_counter()
                    reply = client.get(path)
                    times.append((time.perf_counter() - started) * 1000)
                    counts.append(statements[0] - before)
                    if reply.status_code != 200:
                        raise BenchError(f"{path} answered {reply.status_code}")
                times.sort()
                p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
                say(f"{name}: p95 {p95:.1f} ms over {repeats} requests, {max(counts)} SQL")
                out += [
                    Figure(f"web_{name}_p50", statistics.median(times), "ms"),
                    Figure(f"web_{name}_p95", p95, "ms"),
                    Figure(f"web_{name}_sql", max(counts), "statements"),
                ]
        return out
    finally:
        server.stop()
        event.remove(engine, "before_cursor_execute", count)


if __name__ == "__main__":
    from bench import scale_from_env

    for figure in figures(scale_from_env()):
        print(figure.line())
