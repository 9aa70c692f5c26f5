"""KneeGuard benchmarks (not tests): `python -m bench` runs every module here.

A benchmark module exposes `figures(scale: str) -> list[Figure]`; `scale` is one of `SCALES` and
picks the sizes. Each figure is printed as one line, `BENCH <name> <value> <unit>`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

SCALES = ("full", "small", "tiny")
DEFAULT_SCALE = "full"


class BenchError(RuntimeError):
    """A benchmark could not run or produced a result that cannot be trusted."""


@dataclass(frozen=True, slots=True)
class Figure:
    """One measured number."""

    name: str
    value: float
    unit: str

    def line(self) -> str:
        return f"BENCH {self.name} {format_value(self.value)} {self.unit}"


def format_value(value: float) -> str:
    if float(value).is_integer() and abs(value) >= 10:
        return str(int(value))
    if abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def scale_from_env() -> str:
    """BENCH_SCALE (default `full`), checked against `SCALES`."""
    scale = os.environ.get("BENCH_SCALE", DEFAULT_SCALE).strip().lower() or DEFAULT_SCALE
    if scale not in SCALES:
        raise BenchError(f"BENCH_SCALE must be one of {', '.join(SCALES)}, not {scale!r}")
    return scale
