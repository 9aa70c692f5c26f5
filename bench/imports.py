"""Activity-file import: FIT files of one-hour runs with 1 s records, beside a bare decode.

The files are written with fit-tool (independent of the Garmin SDK the importer reads them
with): one one-hour run (3,600 records) is encoded once, then each file is that run with its
own start time and serial number (fit-tool re-encodes only the edited file-id and session
messages and recomputes the CRC), so every file is distinct and a full decode. Their starts are
a day apart, months before now, so the runs are stored as history and no rule runs.

Two child processes then read the same files, each timed on its own (wall clock, and CPU time,
which a machine shared with other work disturbs less) and reporting its own peak RSS (VmHWM):
the import (`ingest.files.import_files` into a migrated SQLite database: read, decode, validate,
de-duplicate, store, one transaction per file) and the bare reference (the Garmin SDK's
`Decoder.read` of every file with the importer's options, nothing else imported). Scales: tiny
5 files of 10 minutes, small 20 files of one hour, full 1,000 files of one hour.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench import BenchError, Figure

FILES = {"tiny": (5, 600), "small": (20, 3600), "full": (1000, 3600)}
FIRST_START = datetime(2026, 6, 1, 6, 30, tzinfo=UTC)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
# ingest.files.fit.DECODE_OPTIONS, written out so that the bare child imports nothing of ours.
BARE_OPTIONS: dict[str, Any] = {"merge_heart_rates": False, "enable_crc_check": True}


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def write_files(directory: Path, count: int, seconds: int) -> int:
    """`count` distinct FIT runs of `seconds` with 1 s records; returns their total size."""
    from fit_tool.fit_file import FitFile
    from fit_tool.profile.messages.file_id_message import FileIdMessage
    from fit_tool.profile.messages.session_message import SessionMessage

    from testsupport.fitfiles import Leg, fit_bytes

    distance = 3.0 * seconds  # 5:33 min/km
    template = FitFile.from_bytes(
        fit_bytes([Leg(FIRST_START, seconds=seconds, distance_m=distance)])
    )
    session = next(r.message for r in template.records if isinstance(r.message, SessionMessage))
    file_id = next(r.message for r in template.records if isinstance(r.message, FileIdMessage))
    total = 0
    for index in range(count):
        start = FIRST_START - timedelta(days=index)
        millis = round(start.timestamp() * 1000)
        session.start_time = millis
        session.timestamp = millis + seconds * 1000
        file_id.time_created = millis
        file_id.serial_number = 100_000 + index
        data: bytes = template.to_bytes()
        (directory / f"run-{index:04d}.fit").write_bytes(data)
        total += len(data)
    return total


def child_import(directory: Path, database: Path) -> dict[str, float]:
    from sqlalchemy import insert

    from db.engine import make_engine
    from db.migrate import upgrade
    from db.models import Athlete
    from ingest.files.importer import import_files

    engine = make_engine(f"sqlite:///{database}", create_dirs=True)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            insert(Athlete).values(
                id="bench", name="Bench", email="b@example.com", timezone="UTC", created_at=NOW
            )
        )
    started, cpu = time.perf_counter(), time.process_time()
    outcomes = import_files(engine, "bench", [directory], NOW)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "imported": sum(o.status == "imported" for o in outcomes),
        "peak_rss_mb": peak_rss_mb(),
    }


def child_bare(directory: Path) -> dict[str, float]:
    from garmin_fit_sdk import Decoder, Stream

    started, cpu = time.perf_counter(), time.process_time()
    decoded = 0
    for path in sorted(directory.iterdir()):
        stream = Stream.from_byte_array(bytearray(path.read_bytes()))
        messages, errors = Decoder(stream).read(**BARE_OPTIONS)
        if not errors and messages.get("session_mesgs"):
            decoded += 1
    return {
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu,
        "imported": decoded,
        "peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's VmHWM in MiB: the peak since its exec (getrusage's maxrss would include
    the parent's pages the child was forked with)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError("no VmHWM in /proc/self/status")


def run_child(*args: str) -> tuple[dict[str, float], float]:
    """Run this module as a child; its JSON result and its peak RSS in MiB."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.imports", *args],
        stdout=subprocess.PIPE,
        text=True,
        check=False,
        timeout=3600,
    )
    if result.returncode != 0:
        raise BenchError(f"bench.imports {args[0]} exited {result.returncode}")
    values: dict[str, float] = json.loads(result.stdout)
    return values, values["peak_rss_mb"]


def figures(scale: str) -> list[Figure]:
    count, seconds = FILES[scale]
    with tempfile.TemporaryDirectory(prefix="kneeguard-bench-import-") as tmp:
        directory = Path(tmp) / "files"
        directory.mkdir()
        say(f"writing {count} FIT files of {seconds} s with 1 s records")
        size = write_files(directory, count, seconds)
        say(f"{size / 1024 / 1024:.1f} MiB written; importing")
        imported, import_rss = run_child("import", str(directory), str(Path(tmp) / "k.db"))
        bare, bare_rss = run_child("bare", str(directory))
    if imported["imported"] != count or bare["imported"] != count:
        raise BenchError(
            f"imported {imported['imported']} and decoded {bare['imported']} of {count}"
        )
    rate = count / imported["seconds"]
    bare_rate = count / bare["seconds"]
    cpu_ms = 1000 * imported["cpu_seconds"] / count
    bare_cpu_ms = 1000 * bare["cpu_seconds"] / count
    return [
        Figure("import_fit_files_per_s", rate, "files/s"),
        Figure("import_bare_decode_files_per_s", bare_rate, "files/s"),
        Figure("import_cpu_ms_per_file", cpu_ms, "ms"),
        Figure("import_bare_cpu_ms_per_file", bare_cpu_ms, "ms"),
        Figure("import_cpu_ratio_to_bare", cpu_ms / bare_cpu_ms, "x"),
        Figure("import_peak_rss_mb", import_rss, "MB"),
        Figure("import_bare_peak_rss_mb", bare_rss, "MB"),
    ]


def main(argv: list[str]) -> int:
    if argv[:1] == ["import"] and len(argv) == 3:
        print(json.dumps(child_import(Path(argv[1]), Path(argv[2]))))
        return 0
    if argv[:1] == ["bare"] and len(argv) == 2:
        print(json.dumps(child_bare(Path(argv[1]))))
        return 0
    print("usage: python -m bench.imports import DIR DATABASE | bare DIR", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
