"""Unit conversion to the units KneeGuard stores: metres and seconds."""

from __future__ import annotations

from typing import Final

METRES_PER: Final = {"m": 1.0, "km": 1000.0, "mi": 1609.344, "ft": 0.3048}
SECONDS_PER: Final = {"sec": 1.0, "min": 60.0, "h": 3600.0}


def to_metres(value: float, unit: str) -> float:
    """Convert a length in `m`, `km`, `mi` or `ft` to metres (international mile and foot)."""
    return value * METRES_PER[unit]


def to_seconds(value: float, unit: str) -> float:
    """Convert a duration in `sec`, `min` or `h` to seconds."""
    return value * SECONDS_PER[unit]
