"""`kneeguard demo`: KneeGuard end to end with a simulated club; the work is in
`kneeguard.simulation.demo`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from kneeguard.cli.common import fail, load_settings


@click.command("demo")
@click.option("--weeks", default=8, show_default=True, type=click.IntRange(5, 52))
@click.option("--athletes", default=12, show_default=True, type=click.IntRange(1, 200))
@click.option(
    "--out",
    default=Path("var"),
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Writes OUT/demo/kneeguard.db and OUT/mail/ (both replaced on every run).",
)
@click.option("--seed", default=7, show_default=True, type=int, help="Seed of the simulated club.")
@click.option(
    "--seconds",
    default=10.0,
    show_default=True,
    type=click.FloatRange(min=0, max=55),
    help="Spread the publishing over about this long; 0 publishes as fast as possible.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Keep the web app up over the demo data (on KNEEGUARD_WEB_BIND) until Ctrl-C.",
)
def demo(weeks: int, athletes: int, out: Path, seed: int, seconds: float, serve: bool) -> None:
    """Run KneeGuard end to end with a simulated club; needs no server.

    One coach and a dozen runners: one spikes a long run, one's pain rises week on week, one's
    knee locks, one has pain on the outside of the knee, and the healthy ones get nothing. Ends
    with a coach sign-in link and a runner's check-in link for the web app (--serve keeps it up).
    """
    from rich.console import Console

    from kneeguard.simulation.demo import DemoOptions, run_demo
    from kneeguard.simulation.demo_support import DemoError

    settings = load_settings()
    options = DemoOptions(
        weeks=weeks,
        athletes=athletes,
        out=out,
        seed=seed,
        seconds=seconds,
        mqtt_url=settings.mqtt_url,
        topic_prefix=settings.topic_prefix,
        serve=serve,
        web_bind=settings.web_bind,
        public_url=settings.public_url,
    )
    # paho logs a harmless race while the service disconnects; the demo reports real failures.
    logging.getLogger("ingest.paho").setLevel(logging.CRITICAL)
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a log file or a pipe: do not squeeze the tables to 80
    try:
        result = run_demo(options, console)
    except DemoError as exc:
        fail(str(exc))
    if result.undelivered:
        fail(f"{len(result.undelivered)} deliveries did not go out (listed above)")
    if result.story_problems:
        fail("the demo's story did not come true (listed above); please report it")
