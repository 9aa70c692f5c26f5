"""`kneeguard simulate`: publish a simulated club's runs and knee check-ins over MQTT.

The data comes from `kneeguard.simulation.simulator` (pure and seeded) and is published by
`kneeguard.simulation.publish`; this module parses the options and reports.
"""

from __future__ import annotations

import sys
from datetime import date, datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import click

from kneeguard.cli.common import fail, load_settings, open_database
from kneeguard.simulation.simulator import SCENARIOS

if TYPE_CHECKING:
    from kneeguard.simulation.publish import Published, Publisher
    from kneeguard.simulation.simulator import Plan


def _parse_start(value: str | None, days: int, timezone: str) -> date:
    from kneeguard.simulation.publish import default_first_day

    if value is None:
        try:
            return default_first_day(days, timezone)
        except (KeyError, ValueError):
            fail(f"unknown timezone {timezone!r}: use an IANA name such as Europe/London", 2)
    try:
        return date.fromisoformat(value)
    except ValueError:
        pass
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--start must be a date such as 2026-09-01, not {value!r}", 2)
    if instant.tzinfo is not None:
        try:
            instant = instant.astimezone(ZoneInfo(timezone))
        except (KeyError, ValueError):
            fail(f"unknown timezone {timezone!r}: use an IANA name such as Europe/London", 2)
    return instant.date()


@click.command("simulate")
@click.option("--athletes", default=10, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--days", default=56, show_default=True, type=click.IntRange(1, 3650))
@click.option(
    "--rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Messages per second; 0 publishes as fast as the broker takes them.",
)
@click.option("--seed", default=1, show_default=True, type=int, help="Same seed, same data.")
@click.option("--scenario", default="mixed", show_default=True, type=click.Choice(SCENARIOS))
@click.option(
    "--start",
    default=None,
    help="First simulated day (YYYY-MM-DD); by default the period ends at today's midnight.",
)
@click.option("--timezone", default="UTC", show_default=True, help="The athletes' time zone.")
@click.option("--prefix", default=None, help="Topic prefix [default: KNEEGUARD_TOPIC_PREFIX].")
@click.option(
    "--id-prefix", default="sim", show_default=True, help="Athlete ids are ID-PREFIX-01, …"
)
@click.option("--mqtt-url", default=None, help="Broker URL [default: KNEEGUARD_MQTT_URL].")
@click.option(
    "--register",
    is_flag=True,
    help="First add the coach ID-PREFIX-coach, the athletes and their devices to the database "
    "(KNEEGUARD_DATABASE_URL); ones that exist are kept.",
)
@click.option("--dry-run", is_flag=True, help="Print 'TOPIC PAYLOAD' lines; publish nothing.")
def simulate(
    athletes: int,
    days: int,
    rate: float,
    seed: int,
    scenario: str,
    start: str | None,
    timezone: str,
    prefix: str | None,
    id_prefix: str,
    mqtt_url: str | None,
    register: bool,
    dry_run: bool,
) -> None:
    """Publish realistic runs and knee check-ins of simulated athletes over MQTT.

    Scenarios: healthy (no rule fires), long_run_spike, rising_pain, locked_knee, lateral_pain,
    and mixed (one of each story, the rest healthy). See docs/SIMULATOR.md.
    """
    from ingest.mqtt import BrokerConfigError
    from kneeguard.admin.registry import RegistryError
    from kneeguard.simulation.publish import Publisher, PublishError, register_club
    from kneeguard.simulation.simulator import Plan, PlanError, generate

    settings = load_settings()
    try:
        plan = Plan(
            athletes=athletes,
            days=days,
            seed=seed,
            scenario=scenario,
            first_day=_parse_start(start, days, timezone),
            timezone=timezone,
            prefix=prefix if prefix is not None else settings.topic_prefix,
            id_prefix=id_prefix,
        )
    except PlanError as exc:
        fail(str(exc), 2)
    if dry_run:
        for message in generate(plan):
            sys.stdout.write(f"{message.topic} {message.payload.decode()}\n")
        return
    if register:
        from db.engine import session_factory

        sessions = session_factory(open_database(settings))
        try:
            added, kept = register_club(
                sessions, plan, coach_id=f"{id_prefix}-coach", coach_name="Simulated Coach"
            )
        except RegistryError as exc:
            fail(str(exc), 2)
        click.echo(f"registered {added} athletes ({kept} already there) with their devices")
    try:
        publisher = Publisher(mqtt_url or settings.mqtt_url)
    except BrokerConfigError as exc:
        fail(f"invalid broker URL: {exc}", 2)
    try:
        publisher.connect()
    except PublishError as exc:
        fail(str(exc))
    try:
        done = _publish_with_progress(publisher, plan, rate)
    except PublishError as exc:
        fail(str(exc))
    finally:
        publisher.close()
    click.echo(
        f"published {done.messages} messages ({done.runs} runs, {done.checkins} check-ins) "
        f"for {plan.athletes} athletes over {plan.days} days from {plan.first_day} "
        f"({plan.timezone}), scenario {plan.scenario}, seed {plan.seed}, "
        f"in {done.seconds:.1f} s ({done.rate:.0f} msg/s)"
    )


def _publish_with_progress(publisher: Publisher, plan: Plan, rate: float) -> Published:
    """Publish the plan, with a progress bar on stderr when it is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from kneeguard.simulation.publish import publish_all
    from kneeguard.simulation.simulator import Message, generate

    console = Console(stderr=True)
    if not console.is_terminal:
        return publish_all(publisher, generate(plan), rate)
    total = sum(1 for _ in generate(plan))
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task("publishing", total=total)

        def advance(message: Message) -> None:
            day = message.at.astimezone(plan.zone).date()
            progress.update(task, advance=1, description=f"publishing {day}")

        return publish_all(publisher, generate(plan), rate, advance)
