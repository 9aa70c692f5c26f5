"""`kneeguard run`: the service itself."""

from __future__ import annotations

import logging
import sys

import click

from kneeguard.cli.common import fail, load_rules, load_settings, open_database


@click.command("run")
@click.option(
    "--only",
    type=click.Choice(["ingest"]),
    default=None,
    help="Run only one part of the service (for scaled-out ingest replicas).",
)
def run(only: str | None) -> None:
    """Run the service until SIGTERM: ingest from MQTT into the database."""
    from ingest.mqtt import BrokerConfigError
    from kneeguard.service import Service, ServiceError

    settings = load_settings()
    config = load_rules(settings)
    configure_logging(settings.log_level)
    engine = open_database(settings)
    try:
        service = Service(settings, engine, rules_config=config, only=only)
    except BrokerConfigError as exc:
        fail(f"invalid KNEEGUARD_MQTT_URL: {exc}", 2)
    try:
        code = service.run_forever()
    except ServiceError as exc:
        fail(str(exc))
    sys.exit(code)


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
