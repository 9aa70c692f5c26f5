"""Bounds of a plausible message (DESIGN.md, version 2), with no dependencies: ingest enforces
them, and the commands that take a time (`rules run --now`) keep to the same range."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Final

EARLIEST: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""No time in a message may be earlier."""

MAX_AHEAD: Final = timedelta(hours=1)
"""Nor later than this after the service received the message."""

MAX_RUN_DISTANCE_M: Final = 500_000
MAX_MOVING_TIME_S: Final = 72 * 3600
FASTEST_PACE_S_PER_KM: Final = 120
"""Runs of `PACE_CHECK_FROM_M` or more may be no faster on average."""
PACE_CHECK_FROM_M: Final = 400
