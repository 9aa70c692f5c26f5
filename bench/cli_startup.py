"""CLI start-up: `kneeguard --help` against `python -c "import click, rich"` in the same run.

Every operator command pays the CLI's start-up before it does anything; the reference is the
least a click + rich program can cost on this machine at this moment, so the ratio is what the
CLI adds (target: at most 3x). Each figure is the median of interleaved runs, in fresh processes.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import BenchError, Figure, scale_from_env

RUNS = {"tiny": 3, "small": 11, "full": 21}
REFERENCE = [sys.executable, "-c", "import click, rich"]


def help_command() -> list[str]:
    """The installed `kneeguard` script beside this interpreter, as operators run it."""
    script = Path(sys.executable).with_name("kneeguard")
    if script.exists():
        return [str(script), "--help"]
    return [sys.executable, "-m", "kneeguard", "--help"]


def seconds(command: list[str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False, timeout=60)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise BenchError(f"{' '.join(command)} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def figures(scale: str) -> list[Figure]:
    command = help_command()
    helps: list[float] = []
    references: list[float] = []
    for _ in range(RUNS[scale]):
        helps.append(seconds(command))
        references.append(seconds(REFERENCE))
    help_seconds = statistics.median(helps)
    reference = statistics.median(references)
    return [
        Figure("cli_help_seconds", help_seconds, "s"),
        Figure("import_click_rich_seconds", reference, "s"),
        Figure("cli_help_ratio", help_seconds / reference, "x"),
    ]


if __name__ == "__main__":
    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
