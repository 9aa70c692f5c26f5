"""`python -m bench`: run every benchmark module in bench/ and print its figures.

Progress goes to stderr; stdout carries only the `BENCH <name> <value> <unit>` lines.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import traceback
from collections.abc import Callable
from typing import cast

import bench
from bench import BenchError, Figure, scale_from_env

FigureFunction = Callable[[str], list[Figure]]


def benchmark_modules() -> list[str]:
    """Names of the modules in bench/ that define `figures`, in name order."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(bench.__path__)
        if not info.name.startswith("_") and not info.ispkg
    )
    return [f"bench.{name}" for name in names]


def main() -> int:
    try:
        scale = scale_from_env()
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    failed = 0
    printed: set[str] = set()
    for name in benchmark_modules():
        module = importlib.import_module(name)
        run = getattr(module, "figures", None)
        if not callable(run):
            continue
        print(f"bench: running {name} at scale {scale}", file=sys.stderr, flush=True)
        try:
            figures = cast(FigureFunction, run)(scale)
        except Exception:
            traceback.print_exc()
            print(f"bench: {name} failed", file=sys.stderr, flush=True)
            failed += 1
            continue
        twice = sorted({f.name for f in figures if f.name in printed}) + sorted(
            {f.name for f in figures if [g.name for g in figures].count(f.name) > 1}
        )
        if twice:
            # Each figure is one line: a name printed twice would leave readers to guess.
            print(f"bench: {name} repeats {', '.join(twice)}", file=sys.stderr, flush=True)
            failed += 1
            continue
        printed.update(f.name for f in figures)
        for figure in figures:
            print(figure.line(), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
