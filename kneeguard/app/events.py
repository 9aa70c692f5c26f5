"""In-process events that connect the stages: ingest stores, rules evaluate, the notifier sends."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from contract.topics import Kind
from ingest.writer import Stored

log = logging.getLogger(__name__)

Listener = Callable[[Sequence[Stored]], None]


@dataclass
class Signal:
    """A list of listeners; one failing listener does not stop the others."""

    name: str
    listeners: list[Listener] = field(default_factory=list)

    def connect(self, listener: Listener) -> None:
        self.listeners.append(listener)

    def send(self, items: Sequence[Stored]) -> None:
        for listener in self.listeners:
            try:
                listener(items)
            except Exception:
                log.exception("%s listener %r failed", self.name, listener)


@dataclass
class Events:
    """ "run stored" and "check-in stored", fired after the rows are committed."""

    run_stored: Signal = field(default_factory=lambda: Signal("run stored"))
    checkin_stored: Signal = field(default_factory=lambda: Signal("check-in stored"))

    def dispatch(self, stored: Sequence[Stored]) -> None:
        """The ingest writer's listener: split a committed batch by kind."""
        runs = [item for item in stored if item.kind is Kind.RUN]
        checkins = [item for item in stored if item.kind is Kind.CHECKIN]
        if runs:
            self.run_stored.send(runs)
        if checkins:
            self.checkin_stored.send(checkins)
