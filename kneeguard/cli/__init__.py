"""The `kneeguard` command line: one module per command group, sharing `common`.

`kneeguard --help` loads click and these modules only: each command imports the parts of the
service it needs when it runs.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import NoReturn

import click

from kneeguard.cli import (
    activities,
    alerts,
    athlete,
    coach,
    database,
    deadletters,
    deliveries,
    demo,
    device,
    digest,
    health,
    rules,
    service,
    simulate,
)
from kneeguard.cli.common import UserError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kneeguard")
def cli() -> None:
    """KneeGuard: runs and knee check-ins in, evidence-based alerts out."""


for command in (
    database.db,
    coach.coach,
    athlete.athlete,
    device.device,
    rules.rules,
    alerts.alerts,
    deliveries.deliveries,
    deadletters.deadletters,
    digest.digest,
    service.run,
    health.health,
    activities.import_files,
    simulate.simulate,
    demo.demo,
):
    cli.add_command(command)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """Entry point: click without its multi-line usage errors or tracebacks."""
    try:
        result = cli.main(args=argv, prog_name="kneeguard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("kneeguard: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        message = " ".join(exc.format_message().split())
        click.echo(f"kneeguard: error: {message}", err=True)
        sys.exit(exc.code if isinstance(exc, UserError) else exc.exit_code)
    sys.exit(result if isinstance(result, int) else 0)


__all__ = ["UserError", "cli", "main"]
