"""Activity-file import wired to the rules (the composition root's part of `ingest.files`).

`ingest.files` stores the runs of a file; here the runs it stored are handed to the rules at
once, as the next sweep would judge them, so a spike in a file just uploaded opens the same alert
an MQTT run opens, with its deliveries. Runs imported as history (started more than 48 hours
before the import) are stored with `runs.history` set, and the rules never judge them on their
own: bulk imports of old runs notify nobody.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine

from ingest.files.importer import FileOutcome, check_athlete, import_bytes, iter_import
from ingest.writer import StoredListener
from kneeguard.app.delivery import alert_deliveries, service_channels
from kneeguard.clock import Clock, utcnow
from kneeguard.settings import Settings
from rules.config import RulesConfig
from rules.engine import RuleEngine
from rules.store import Change

log = logging.getLogger(__name__)


@dataclass
class ActivityImport:
    """Imports files for an athlete, then evaluates the rules for the recent runs stored.

    `on_stored` hears of every run stored, as the ingest writer's listener hears of MQTT runs
    (the service passes `Events.dispatch`, so both doors fire the same "run stored" event).
    """

    engine: Engine
    rules: RuleEngine
    clock: Clock = field(default=utcnow)
    on_stored: StoredListener = field(default=lambda stored: None)

    def upload(self, athlete_id: str, name: str, data: bytes) -> FileOutcome:
        """One uploaded file (the web app's form): its bytes and the name it was sent with."""
        now = self.clock()
        outcome = import_bytes(self.engine, athlete_id, name, data, now)
        self.evaluate([outcome], now)
        return outcome

    def files(self, athlete_id: str, paths: Iterable[Path]) -> Iterator[FileOutcome]:
        """Files and folders, one outcome per file as it is imported; the rules run once all
        are stored. Raises `UnknownAthleteError` before reading any file."""
        now = self.clock()
        check_athlete(self.engine, athlete_id)
        outcomes: list[FileOutcome] = []
        for outcome in iter_import(self.engine, athlete_id, paths, now):
            outcomes.append(outcome)
            yield outcome
        self.evaluate(outcomes, now)

    def evaluate(self, outcomes: Sequence[FileOutcome], now: datetime) -> list[Change]:
        """Tell `on_stored`, then run the rules for the athletes with recent runs stored."""
        stored = [item for outcome in outcomes for item in outcome.stored]
        if stored:
            try:
                self.on_stored(stored)
            except Exception:
                log.exception("a listener failed on %d imported runs", len(stored))
        athletes = {item.athlete_id for o in outcomes for item in o.stored_recent}
        return self.rules.evaluate_athletes(athletes, now)


def standalone(
    engine: Engine, settings: Settings, config: RulesConfig, clock: Clock = utcnow
) -> ActivityImport:
    """For a process without the service (the command line): alerts it opens get the outbox
    rows the running service would write, and that service's outbox worker delivers them."""
    write = alert_deliveries(service_channels(settings))
    return ActivityImport(engine, RuleEngine(engine, config, write_changes=write), clock)
