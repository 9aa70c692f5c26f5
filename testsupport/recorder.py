"""The ingest writer's broker side, recorded: for tests whose boundary under test is the
database, not the broker."""

from __future__ import annotations

import json
from contextlib import AbstractContextManager, nullcontext
from typing import Any


class Recorder:
    """What the writer published (topic and decoded answer) and acknowledged (message ids)."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.acked: list[int] = []

    def publish(self, topic: str, payload: bytes) -> None:
        self.published.append((topic, json.loads(payload)))

    def ack(self, mid: int, qos: int, connection: int = 0) -> None:
        self.acked.append(mid)

    def answering(self) -> AbstractContextManager[None]:
        return nullcontext()
