"""`kneeguard rules`: the rule catalog."""

from __future__ import annotations

import click

from kneeguard.cli.common import (
    database_errors,
    load_rules,
    load_settings,
    open_database,
    parse_instant,
)


@click.group()
def rules() -> None:
    """The rule catalog."""


@rules.command("run")
@click.option("--now", "now", default=None, help="Evaluate as of this ISO 8601 instant.")
@database_errors
def rules_run(now: str | None) -> None:
    """Run one rule sweep, as of now or the given instant."""
    from rules.engine import RuleEngine

    settings = load_settings()
    config = load_rules(settings)
    instant = parse_instant(now)
    engine = open_database(settings)
    result = RuleEngine(engine, config).sweep(instant)
    click.echo(result.summary())
