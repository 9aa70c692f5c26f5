"""Activity files in, runs stored: the same validation and storage as a run sent over MQTT.

Each run read from a file is written as the run payload of the public contract and goes through
`ingest.messages.decode`, the function every MQTT run goes through (wire model, bounds, unit
conversion), then into the `runs` table with `db.bulk.insert_new`. Its uuid is fixed by the
file: uuid5 of the SHA-256 of the file's (uncompressed) content and the run's index in the file,
so importing a file again is "already imported". A run the athlete already has from another door
(a device over MQTT, another file of the same run) — start within `SAME_START`, distance within
`SAME_DISTANCE` — is "already imported" too.

A run that started more than `RECENT` before it is imported is stored as history (`runs.history`):
it counts as load and as the reference of later runs, but the rules never judge it on its own,
so importing months of history notifies nobody about old spikes.

This module stores; it never evaluates rules (ingest does not import `rules`). The caller gets the
stored runs in each `FileOutcome` and the composition root (`kneeguard.importing`) evaluates them.
"""

from __future__ import annotations

import hashlib
import json
import uuid as uuidlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any, Final, Literal

from sqlalchemy import Connection, Engine, Table, and_, select, update

from contract.topics import Kind, Topics
from db.bulk import insert_new
from db.models import Athlete, Run
from ingest.files.fit import read_fit
from ingest.files.gpx import read_gpx
from ingest.files.model import ActivityRun, FileRefusedError, NotARunError
from ingest.files.source import Format, content_of, is_activity_name, read_file
from ingest.files.tcx import read_tcx
from ingest.messages import Inbound, Invalid, decode
from ingest.writer import Stored

RUNS: Table = Run.__table__  # type: ignore[assignment]

# The device id of imported runs: not a registered device, the file is the source.
IMPORT_DEVICE_ID: Final = "file-import"
UUID_NAMESPACE: Final = uuidlib.UUID("9e7f89ce-93cb-440e-8ff9-0c4d5e169ca2")
RECENT: Final = timedelta(hours=48)
SAME_START: Final = timedelta(seconds=60)
SAME_DISTANCE: Final = 0.01
# Only to build the topic `decode` reads the athlete from; imported runs never touch a broker.
_TOPICS: Final = Topics("kneeguard/v1")

READERS = {Format.FIT: read_fit, Format.GPX: read_gpx, Format.TCX: read_tcx}

RunStatus = Literal["imported", "already imported", "refused"]
FileStatus = Literal["imported", "already imported", "skipped", "refused"]


class UnknownAthleteError(LookupError):
    def __init__(self, athlete_id: str) -> None:
        super().__init__(f"no athlete with id {athlete_id!r}")
        self.athlete_id = athlete_id


@dataclass(frozen=True, slots=True)
class RunOutcome:
    """What happened to one run of a file."""

    run: ActivityRun
    uuid: str
    status: RunStatus
    reason: str = ""
    stored: Stored | None = None
    history: bool = False


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What happened to one file: its status, and per run what happened to it."""

    name: str
    status: FileStatus
    reason: str = ""
    runs: tuple[RunOutcome, ...] = ()

    @property
    def refused(self) -> bool:
        """The file, or one of its runs, was refused."""
        return self.status == "refused" or any(r.status == "refused" for r in self.runs)

    @property
    def stored(self) -> list[Stored]:
        return [r.stored for r in self.runs if r.stored is not None]

    @property
    def stored_recent(self) -> list[Stored]:
        """Newly stored runs young enough for the rules to judge."""
        return [r.stored for r in self.runs if r.stored is not None and not r.history]

    def line(self, tz: tzinfo = UTC) -> str:
        """The summary line for a person: `NAME: imported 2026-11-20 08:00, 5.00 km, 0:29:50`."""
        if self.status in ("skipped", "refused") and not self.runs:
            reason = f" ({self.reason})" if self.status == "skipped" else f": {self.reason}"
            return f"{self.name}: {self.status}{reason}"
        parts = [_describe_run(outcome, tz) for outcome in self.runs]
        return f"{self.name}: " + "; ".join(parts)


def _describe_run(outcome: RunOutcome, tz: tzinfo) -> str:
    run = outcome.run
    when = run.start.astimezone(tz).strftime("%Y-%m-%d %H:%M")
    seconds = round(run.moving_s)
    duration = f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    facts = f"{when}, {run.distance_m / 1000:.2f} km, {duration}"
    if outcome.status == "refused":
        return f"refused ({facts}): {outcome.reason}"
    if outcome.status == "already imported":
        return f"already imported ({facts})"
    return f"imported {facts}" + (" (history: no alerts)" if outcome.history else "")


def safe_name(name: str) -> str:
    """A file name as it can be shown and stored: valid UTF-8, one line, at most 120 chars."""
    text = name.encode("utf-8", "replace").decode("utf-8")
    return "".join(c if c.isprintable() else "?" for c in text)[:120] or "upload"


def run_uuid(digest: str, index: int) -> str:
    return str(uuidlib.uuid5(UUID_NAMESPACE, f"{digest}:{index}"))


def run_payload(run: ActivityRun, run_id: str, name: str, received: datetime) -> dict[str, Any]:
    """The run as the public contract's run payload (IEEE 1752.1 physical activity)."""
    body: dict[str, Any] = {
        "activity_name": "running",
        "effective_time_frame": {
            "time_interval": {
                "start_date_time": run.start.isoformat(),
                "end_date_time": run.end.isoformat(),
            }
        },
        "distance": {"value": run.distance_m, "unit": "m"},
        "duration": {"value": run.moving_s, "unit": "sec"},
    }
    if run.elevation_gain_m is not None:
        body["cumulative_elevation_gain"] = {"value": run.elevation_gain_m, "unit": "m"}
    if run.cadence_spm is not None:
        body["average_cadence"] = {"value": run.cadence_spm, "unit": "steps/min"}
    heart_rate = {
        key: {"value": value, "unit": "beats/min"}
        for key, value in (("average", run.hr_avg_bpm), ("maximum", run.hr_max_bpm))
        if value is not None
    }
    if heart_rate:
        body["heart_rate"] = heart_rate
    created = run.created if run.created is not None and run.created >= run.start else run.end
    return {
        "header": {
            "uuid": run_id,
            "schema_id": {"namespace": "ieee", "name": "physical-activity", "version": "1.0"},
            "source_creation_date_time": min(created, received).isoformat(),
            "modality": "sensed",
            "acquisition_provenance": {
                "source_name": run.source_name,
                "source_data_point_id": f"{name}#{run.index}"[:200],
            },
        },
        "body": body,
    }


def read_runs(name: str, data: bytes) -> tuple[str, list[ActivityRun]]:
    """The SHA-256 of the file's content and its runs.

    Raises `FileRefusedError` or `NotARunError`.
    """
    fmt, content = content_of(data, name)
    return hashlib.sha256(content).hexdigest(), READERS[fmt](content)


def _same_run(conn: Connection, athlete_id: str, run: ActivityRun) -> bool:
    """Whether the athlete has a run with the same start (±60 s) and distance (±1 %)."""
    start = run.start.astimezone(UTC)
    distances = conn.execute(
        select(Run.distance_m).where(
            Run.athlete_id == athlete_id,
            Run.start_time >= start - SAME_START,
            Run.start_time <= start + SAME_START,
        )
    ).scalars()
    return any(
        abs(known - run.distance_m) <= SAME_DISTANCE * max(known, run.distance_m)
        for known in distances
    )


def _known_uuids(conn: Connection, athlete_id: str, uuids: Sequence[str]) -> set[str]:
    rows = conn.execute(
        select(Run.uuid).where(and_(Run.athlete_id == athlete_id, Run.uuid.in_(list(uuids))))
    )
    return set(rows.scalars())


def check_athlete(engine: Engine, athlete_id: str) -> str:
    """The athlete's time zone; raises `UnknownAthleteError` unless the athlete exists."""
    with engine.connect() as conn:
        found = conn.execute(select(Athlete.timezone).where(Athlete.id == athlete_id)).first()
    if found is None:
        raise UnknownAthleteError(athlete_id)
    return str(found[0])


def import_bytes(
    engine: Engine, athlete_id: str, name: str, data: bytes, now: datetime
) -> FileOutcome:
    """Import one file's bytes (an upload, or a file read from disk) for an existing athlete.

    Never raises for a bad file: the outcome says "refused" with the reason. The file's runs are
    stored in one transaction, so a file is imported whole or not at all. Raises
    `UnknownAthleteError` for an unknown athlete.
    """
    check_athlete(engine, athlete_id)
    return _import_bytes(engine, athlete_id, name, data, now)


def _import_bytes(
    engine: Engine, athlete_id: str, name: str, data: bytes, now: datetime
) -> FileOutcome:
    name = safe_name(name)
    try:
        digest, runs = read_runs(name, data)
    except FileRefusedError as exc:
        return FileOutcome(name, "refused", str(exc))
    except NotARunError as exc:
        return FileOutcome(name, "skipped", f"not a run: {exc}" if str(exc) else "not a run")
    return _store(engine, athlete_id, name, digest, runs, now)


def _store(
    engine: Engine,
    athlete_id: str,
    name: str,
    digest: str,
    runs: Sequence[ActivityRun],
    now: datetime,
) -> FileOutcome:
    topic = _TOPICS.inbound(athlete_id, IMPORT_DEVICE_ID, Kind.RUN)
    outcomes: dict[int, RunOutcome] = {}
    valid: list[tuple[ActivityRun, str, dict[str, Any]]] = []
    for run in runs:
        run_id = run_uuid(digest, run.index)
        payload = json.dumps(run_payload(run, run_id, name, now)).encode()
        decoded = decode(_TOPICS, Inbound(topic, payload, 0, 0, now))
        if isinstance(decoded, Invalid):
            outcomes[run.index] = RunOutcome(run, run_id, "refused", decoded.reason)
        else:
            valid.append((run, run_id, decoded.row))
    if valid:
        with engine.begin() as conn:
            known = _known_uuids(conn, athlete_id, [run_id for _, run_id, _ in valid])
            new: list[tuple[ActivityRun, str, dict[str, Any]]] = []
            for run, run_id, row in valid:
                if run_id in known or _same_run(conn, athlete_id, run):
                    outcomes[run.index] = RunOutcome(run, run_id, "already imported")
                else:
                    new.append((run, run_id, row))
            ids = insert_new(conn, RUNS, [row for _, _, row in new]) if new else {}
            history_ids: list[int] = []
            for run, run_id, _ in new:
                row_id = ids.get((athlete_id, run_id))
                if row_id is None:  # stored meanwhile by a concurrent import
                    outcomes[run.index] = RunOutcome(run, run_id, "already imported")
                    continue
                history = run.start < now - RECENT
                if history:
                    history_ids.append(row_id)
                stored = Stored(Kind.RUN, row_id, run_id, athlete_id, IMPORT_DEVICE_ID)
                outcomes[run.index] = RunOutcome(run, run_id, "imported", stored=stored,
                                                 history=history)  # fmt: skip
            if history_ids:
                # Set apart from the insert, which is shared with MQTT rows that lack the column.
                conn.execute(update(Run).where(Run.id.in_(history_ids)).values(history=True))
    ordered = tuple(outcomes[run.index] for run in runs)
    return FileOutcome(name, _file_status(ordered), runs=ordered)


def _file_status(runs: Sequence[RunOutcome]) -> FileStatus:
    statuses = {r.status for r in runs}
    if "imported" in statuses:
        return "imported"
    if statuses == {"already imported"}:
        return "already imported"
    if "refused" in statuses and "already imported" not in statuses:
        return "refused"
    return "already imported"


def expand(paths: Iterable[Path]) -> list[Path]:
    """The files to import: each file named, and the activity files directly in each folder
    (.fit, .gpx, .tcx, each optionally .gz; hidden files and sub-folders are left alone)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                sorted(p for p in path.iterdir() if p.is_file() and is_activity_name(p.name))
            )
        else:
            files.append(path)
    return files


def iter_import(
    engine: Engine, athlete_id: str, paths: Iterable[Path], now: datetime
) -> Iterator[FileOutcome]:
    """Import files and folders for an existing athlete, yielding one outcome per file as it is
    done (each file is committed before the next is read); a bad file never stops the others.
    Check the athlete first (`check_athlete`)."""
    for path in expand(paths):
        try:
            data = read_file(path)
        except FileRefusedError as exc:
            yield FileOutcome(safe_name(str(path)), "refused", str(exc))
            continue
        yield _import_bytes(engine, athlete_id, str(path), data, now)


def import_files(
    engine: Engine, athlete_id: str, paths: Iterable[Path], now: datetime
) -> list[FileOutcome]:
    """Import files and folders for an existing athlete, one outcome per file, in order.

    Raises `UnknownAthleteError` before reading anything; a bad file never stops the others.
    """
    check_athlete(engine, athlete_id)
    return list(iter_import(engine, athlete_id, paths, now))
