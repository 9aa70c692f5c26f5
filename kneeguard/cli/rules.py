"""`kneeguard rules`: the rule catalog."""

from __future__ import annotations

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
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
    from kneeguard.app.delivery import DeliveryConfigError, alert_deliveries, service_channels
    from rules.engine import RuleEngine

    settings = load_settings()
    config = load_rules(settings)
    instant = parse_instant(now)
    try:
        # The alerts this sweep opens get the outbox rows the service would write; the running
        # service's outbox worker sends them.
        write = alert_deliveries(service_channels(settings))
    except DeliveryConfigError as exc:
        fail(str(exc), 2)
    engine = open_database(settings)
    result = RuleEngine(engine, config, write_changes=write).sweep(instant)
    click.echo(result.summary())
