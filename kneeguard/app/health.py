"""Is the running service ready? The answer behind `/readyz` and `kneeguard health`.

Ready means every part this process runs is working now: the database answers; the broker
sessions (runs, and check-ins when they have their own) are up and subscribed (when it
ingests); each ingest writer's thread is alive and not stuck on one batch; the outbox worker's
thread is alive and not stuck on one run (when it delivers). Each failure is given as a short
reason, safe to show (no credentials).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from kneeguard.app.service import Service

# A batch held this long (a database away, a hang) or an outbox run this long means stuck.
WRITER_STALL_SECONDS = 30.0
OUTBOX_STALL_SECONDS = 300.0
DATABASE_TIMEOUT_SECONDS = 5.0


@dataclass
class Readiness:
    service: Service
    writer_stall: float = WRITER_STALL_SECONDS
    outbox_stall: float = OUTBOX_STALL_SECONDS
    database_timeout: float = DATABASE_TIMEOUT_SECONDS

    def reasons(self) -> list[str]:
        """Why the service is not ready; empty when it is."""
        found = []
        database = self._database()
        if database is not None:
            found.append(database)
        service = self.service
        now = time.monotonic()
        if service.ingests:
            for connection in service.connections:
                if not connection.ready.is_set():
                    found.append(
                        f"broker {service.session_name(connection)} not connected and subscribed"
                    )
            for writer in service.writers:
                if not writer.is_alive():
                    found.append(f"{writer.name} thread is not running")
                else:
                    busy = writer.busy_since
                    if busy is not None and now - busy > self.writer_stall:
                        found.append(f"{writer.name} stuck on one batch for {now - busy:.0f} s")
        if service.scheduler is not None:
            worker = service.worker
            if not worker.is_alive():
                found.append("outbox worker thread is not running")
            else:
                busy = worker.busy_since
                if busy is not None and now - busy > self.outbox_stall:
                    found.append(f"outbox worker stuck on one run for {now - busy:.0f} s")
        return found

    def _database(self) -> str | None:
        """None when `SELECT 1` answers within the timeout, else why not (one line)."""
        outcome: list[str | None] = []

        def probe() -> None:
            try:
                with self.service.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                outcome.append(None)
            except Exception as exc:
                outcome.append(f"database unreachable ({type(exc).__name__})")

        thread = threading.Thread(target=probe, name="readiness-db", daemon=True)
        thread.start()
        thread.join(self.database_timeout)
        if not outcome:
            return f"database did not answer within {self.database_timeout:.0f} s"
        return outcome[0]
