"""Limits on what one device can make the service write: dead letters and log lines.

A device sending thousands of bad messages a second (a broken app, an attacker with stolen
credentials) would otherwise write one dead letter (up to 4 KiB of payload) and one WARNING
line each. Beyond `limit` rejections in `window` seconds from one device, the rest of that
window is acknowledged and answered as usual but neither stored nor logged: it is counted, said
once when the limit is reached, and the count given when the window ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

UNLIMITED = 2**62


@dataclass
class _Window:
    start: float
    count: int = 0
    suppressed: int = 0


@dataclass
class RejectionLimit:
    """At most `limit` rejections per key (a device) per `window` seconds are stored and logged."""

    limit: int = 100
    window: float = 60.0
    clock: Callable[[], float] = time.monotonic
    suppressed_total: int = 0
    _windows: dict[str, _Window] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self, key: str) -> bool:
        """Count one rejection from `key`; True when it is to be stored and logged."""
        now = self.clock()
        with self._lock:
            current = self._windows.get(key)
            if current is None or now - current.start >= self.window:
                if current is not None:
                    self._report(key, current)
                current = _Window(now)
                self._windows[key] = current
                if len(self._windows) > 10_000:
                    self._prune(now)
            current.count += 1
            if current.count <= self.limit:
                return True
            if current.suppressed == 0:
                log.warning(
                    "%s: over %d rejected messages within %.0f s; further ones are acknowledged "
                    "and counted, not stored as dead letters or logged, for the rest of the window",
                    key,
                    self.limit,
                    self.window,
                )
            current.suppressed += 1
            self.suppressed_total += 1
            return False

    def _report(self, key: str, window: _Window) -> None:
        if window.suppressed:
            log.warning(
                "%s: %d more rejected messages were acknowledged but not stored or logged",
                key,
                window.suppressed,
            )

    def _prune(self, now: float) -> None:
        for key, window in list(self._windows.items()):
            if now - window.start >= self.window:
                self._report(key, window)
                del self._windows[key]
