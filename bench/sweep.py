"""Rule sweep against a bare scan of the same rows, on PostgreSQL, at growing club sizes.

For each size: N athletes with 120 days of history (runs on about four days a week, a weekly long
run, a post-run check-in after most runs) are loaded with COPY; then, in the same run, a bare
full scan (the same columns of the same rows, streamed and touched in Python) and one rule sweep
(`RuleEngine.sweep`, which also opens the alerts the data calls for) are timed. The figures are
the sweep time, the scan time, their ratio, and the growth of the sweep time per athlete from one
size to the next (1.0 means linear).
"""

from __future__ import annotations

import io
import random
import sys
import time
import uuid as uuidlib
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from bench import Figure
from bench._db import fresh_postgres
from db.engine import make_engine
from db.models import Checkin, Run
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.evaluate import history_days_needed
from rules.store import CHECKIN_COLUMNS, RUN_COLUMNS

SIZES = {"tiny": [50], "small": [1_000, 10_000], "full": [1_000, 10_000, 100_000]}
DAYS = 120
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def load_club(
    engine: Engine,
    athletes: int,
    seed: int = 1,
    *,
    days: int = DAYS,
    per_coach: int = 0,
    now: datetime = NOW,
) -> tuple[int, int]:
    """COPY a club's history into the database; returns (runs, check-ins).

    With `per_coach`, coaches `c000000`... are created and each gets that many athletes.
    """
    rng = random.Random(seed)
    start = now - timedelta(days=days)
    coach_rows = io.StringIO()
    athlete_rows = io.StringIO()
    device_rows = io.StringIO()
    run_rows = io.StringIO()
    checkin_rows = io.StringIO()
    runs = checkins = 0
    created = start.isoformat()
    for a in range(athletes):
        athlete = f"a{a:06d}"
        coach = "\\N"
        if per_coach:
            coach = f"c{a // per_coach:06d}"
            if a % per_coach == 0:
                coach_rows.write(
                    f"{coach}\tCoach {coach}\t{coach}@example.com\tUTC\tdaily\t7\t{created}\n"
                )
        athlete_rows.write(f"{athlete}\tRunner {a}\tr{a}@example.com\tUTC\t{coach}\t{created}\n")
        device_rows.write(f"{athlete}\twatch\t{created}\n")
        easy = rng.uniform(5, 10)
        long_run = easy * rng.uniform(1.5, 2.0)
        for day in range(days):
            when = start + timedelta(days=day, hours=rng.uniform(6, 19))
            weekday = when.weekday()
            if weekday == 6:
                km = long_run * rng.uniform(0.9, 1.1)
            elif rng.random() < 0.5:
                km = easy * rng.uniform(0.8, 1.2)
            else:
                continue
            if day == days - 2 and a % 10 == 0:
                km = long_run * 1.5  # a spike for one runner in ten
            minutes = km * rng.uniform(5.0, 6.5)
            end = when + timedelta(minutes=minutes)
            uid = uuidlib.UUID(int=rng.getrandbits(128), version=4)
            run_rows.write(
                f"{uid}\t{athlete}\twatch\t{when.isoformat()}\t{end.isoformat()}\t{km * 1000:.1f}"
                f"\t{minutes * 60:.0f}\t{rng.randint(2, 8)}\t{rng.uniform(160, 182):.1f}"
                f"\t{end.isoformat()}\t{end.isoformat()}\n"
            )
            runs += 1
            if rng.random() < 0.8:
                pain = min(10, max(0, int(rng.gauss(1, 1.2))))
                at = end + timedelta(minutes=20)
                cid = uuidlib.UUID(int=rng.getrandbits(128), version=4)
                checkin_rows.write(
                    f"{cid}\t{athlete}\twatch\t{at.isoformat()}\tpost_run\t{uid}\t{pain}\t[]"
                    f"\tf\tf\tf\tf\tf\tf\tf\t{at.isoformat()}\t{at.isoformat()}\n"
                )
                checkins += 1
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        copies = [
            ("coaches (id, name, email, timezone, digest, digest_hour, created_at)", coach_rows),
            ("athletes (id, name, email, timezone, coach_id, created_at)", athlete_rows),
            ("devices (athlete_id, id, created_at)", device_rows),
            (
                "runs (uuid, athlete_id, device_id, start_time, end_time, distance_m, "
                "duration_s, rpe, cadence_spm, source_created_at, received_at)",
                run_rows,
            ),
            (
                "checkins (uuid, athlete_id, device_id, recorded_at, context, related_run_uuid, "
                "pain_score, pain_sites, swelling, locking, giving_way, cannot_bear_weight, "
                "night_pain, fever, trauma, source_created_at, received_at)",
                checkin_rows,
            ),
        ]
        for target, buffer in copies:
            with cursor.copy(f"COPY {target} FROM STDIN") as copy:
                copy.write(buffer.getvalue())
        raw.commit()
        cursor.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return runs, checkins


def bare_scan(engine: Engine, since: datetime) -> tuple[float, int]:
    """Stream the columns and rows the sweep reads, touch every row, do nothing else."""
    started = time.perf_counter()
    rows = 0
    touched = 0.0
    with engine.connect() as conn:
        stream = conn.execution_options(yield_per=5000)
        for columns, stamp in (
            (RUN_COLUMNS, Run.start_time),
            (CHECKIN_COLUMNS, Checkin.recorded_at),
        ):
            query = select(*columns).where(stamp >= since, stamp <= NOW)
            for row in stream.execute(query):
                rows += 1
                touched += len(row)
    return time.perf_counter() - started, rows


def one_size(athletes: int) -> dict[str, float]:
    with fresh_postgres() as url:
        engine = make_engine(url)
        say(f"loading {athletes} athletes x {DAYS} days")
        runs, checkins = load_club(engine, athletes)
        say(f"{runs} runs, {checkins} check-ins loaded")
        config = RulesConfig()
        since = NOW - timedelta(days=history_days_needed(config))
        scan_seconds, scanned = bare_scan(engine, since)
        started = time.perf_counter()
        result = RuleEngine(engine, config).sweep(NOW)
        sweep_seconds = time.perf_counter() - started
        say(f"scan {scan_seconds:.2f} s over {scanned} rows; {result.summary()}")
        engine.dispose()
    return {"sweep": sweep_seconds, "scan": scan_seconds, "rows": scanned}


def figures(scale: str) -> list[Figure]:
    out: list[Figure] = []
    previous: tuple[int, float] | None = None
    for athletes in SIZES[scale]:
        measured = one_size(athletes)
        out += [
            Figure(f"sweep_seconds_{athletes}", measured["sweep"], "s"),
            Figure(f"sweep_scan_seconds_{athletes}", measured["scan"], "s"),
            Figure(f"sweep_scan_ratio_{athletes}", measured["sweep"] / measured["scan"], "x"),
        ]
        if previous is not None:
            size, seconds = previous
            per_athlete_growth = (measured["sweep"] / athletes) / (seconds / size)
            out.append(Figure(f"sweep_growth_{size}_to_{athletes}", per_athlete_growth, "x"))
        previous = (athletes, measured["sweep"])
    return out
