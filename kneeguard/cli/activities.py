"""`kneeguard import`: FIT, GPX and TCX activity files as runs.

One line per file on stdout: imported (date, distance, moving time), already imported, skipped
(not a run) or refused with the reason; a last line counts them. Exit status 0 when nothing was
refused, 1 when a file (or a run in it) was refused, 2 for bad arguments such as an unknown
athlete.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
    load_rules,
    load_settings,
    open_database,
)


@click.command("import")
@click.option("--athlete", "athlete_id", required=True, help="Id of the athlete who ran them.")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@database_errors
def import_files(athlete_id: str, files: tuple[Path, ...]) -> int:
    """Import runs from FIT, GPX or TCX files (also .gz); a folder imports the activity files
    directly in it. Importing a file again changes nothing."""
    from zoneinfo import ZoneInfo

    from ingest.files.importer import UnknownAthleteError, check_athlete
    from kneeguard.app.delivery import DeliveryConfigError
    from kneeguard.importing import standalone

    settings = load_settings()
    config = load_rules(settings)
    engine = open_database(settings)
    try:
        timezone = ZoneInfo(check_athlete(engine, athlete_id))
    except UnknownAthleteError as exc:
        fail(str(exc), 2)
    counts: Counter[str] = Counter()
    refused = False
    try:
        importer = standalone(engine, settings, config)
    except DeliveryConfigError as exc:
        fail(str(exc), 2)
    for outcome in importer.files(athlete_id, files):
        click.echo(outcome.line(timezone))
        counts[outcome.status] += 1
        refused = refused or outcome.refused
    total = sum(counts.values())
    parts = [
        f"{counts[status]} {status}"
        for status in ("imported", "already imported", "skipped", "refused")
        if counts[status]
    ]
    click.echo(f"{total} file{'s' if total != 1 else ''}: {', '.join(parts) or 'none found'}")
    return 1 if refused else 0
