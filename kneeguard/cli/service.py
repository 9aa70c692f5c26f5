"""`kneeguard run`: the service itself."""

from __future__ import annotations

import sys

import click

from kneeguard.cli.common import fail, load_rules, load_settings, open_database


@click.command("run")
@click.option(
    "--only",
    type=click.Choice(["ingest", "web"]),
    default=None,
    help="Run only one part of the service: ingest (scaled-out replicas) or web (the web app).",
)
def run(only: str | None) -> None:
    """Run the service until SIGTERM: ingest from MQTT into the database, rules, delivery and
    the web app on KNEEGUARD_WEB_BIND."""
    from ingest.mqtt import BrokerConfigError
    from kneeguard.app.delivery import DeliveryConfigError
    from kneeguard.app.heap import settle_after_start_up
    from kneeguard.app.logs import configure_logging
    from kneeguard.app.service import Service, ServiceError
    from kneeguard.web.security import SecretKeyError

    settings = load_settings()
    config = load_rules(settings)
    try:
        configure_logging(settings.log_level)
    except ValueError:
        fail(f"invalid configuration KNEEGUARD_LOG_LEVEL: unknown level {settings.log_level!r}", 2)
    engine = open_database(settings)
    try:
        service = Service(settings, engine, rules_config=config, only=only, serve_web=True)
    except BrokerConfigError as exc:
        fail(f"invalid {exc}", 2)
    except DeliveryConfigError as exc:
        fail(str(exc), 2)
    except SecretKeyError as exc:
        fail(str(exc), 2)
    settle_after_start_up()
    try:
        code = service.run_forever()
    except ServiceError as exc:
        fail(str(exc))
    sys.exit(code)
