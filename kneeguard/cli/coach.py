"""`kneeguard coach`: coaches, who read digests and act on alerts."""

from __future__ import annotations

from typing import Any

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
    load_settings,
    open_database,
    print_rows,
    registry,
    registry_call,
)


@click.group()
def coach() -> None:
    """Coaches, who read digests and act on alerts."""


@coach.command("add")
@click.option("--id", "coach_id", required=True, help="Coach id: 1-64 of A-Z a-z 0-9 _ -.")
@click.option("--name", required=True)
@click.option("--email", required=True)
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone name.")
@click.option("--digest", default="daily", show_default=True, help="daily, weekly or off.")
@click.option("--digest-hour", default=7, show_default=True, type=int, help="Local hour 0-23.")
@click.option("--channels", default="email", show_default=True, help="email and/or webhook.")
@click.option("--quiet-hours", default="22:00-07:00", show_default=True, help="Or 'off'.")
@click.option("--webhook-url", default=None, help="URL receiving signed JSON alerts.")
@click.option("--webhook-secret", default=None, help="HMAC-SHA256 key for the webhook.")
@click.option(
    "--webhook-secret-file",
    default=None,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read the webhook key from this file, or from stdin with '-' (keeps it out of ps).",
)
@database_errors
def coach_add(
    coach_id: str,
    name: str,
    email: str,
    timezone: str,
    digest: str,
    digest_hour: int,
    channels: str,
    quiet_hours: str,
    webhook_url: str | None,
    webhook_secret: str | None,
    webhook_secret_file: str | None,
) -> None:
    """Register a coach."""
    webhook_secret = secret_option(webhook_secret, webhook_secret_file)
    reg = registry()
    added = registry_call(
        lambda: reg.add_coach(
            coach_id=coach_id,
            name=name,
            email=email,
            timezone=timezone,
            digest=digest,
            digest_hour=digest_hour,
            channels=channels,
            quiet_hours=quiet_hours,
            webhook_url=webhook_url,
            webhook_secret=webhook_secret,
        )
    )
    click.echo(f"coach {added.id} added")


@coach.command("update")
@click.option("--id", "coach_id", required=True)
@click.option("--name", default=None)
@click.option("--email", default=None)
@click.option("--timezone", default=None)
@click.option("--digest", default=None, help="daily, weekly or off.")
@click.option("--digest-hour", default=None, type=int)
@click.option("--channels", default=None, help="email and/or webhook.")
@click.option("--quiet-hours", default=None, help="22:00-07:00 or 'off'.")
@click.option("--webhook-url", default=None)
@click.option("--webhook-secret", default=None)
@click.option(
    "--webhook-secret-file",
    default=None,
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Read the webhook key from this file, or from stdin with '-'.",
)
@database_errors
def coach_update(coach_id: str, **changes: Any) -> None:
    """Change a coach's details and notification preferences."""
    changes["webhook_secret"] = secret_option(
        changes.pop("webhook_secret"), changes.pop("webhook_secret_file")
    )
    reg = registry()
    registry_call(lambda: reg.update_coach(coach_id, **changes))
    click.echo(f"coach {coach_id} updated")


@coach.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def coach_list(as_json: bool) -> None:
    """List coaches."""
    rows = [
        {
            "id": c.id,
            "name": c.name,
            "email": c.email,
            "timezone": c.timezone,
            "digest": c.digest,
            "digest_hour": c.digest_hour,
        }
        for c in registry().coaches()
    ]
    print_rows(rows, as_json, ["id", "name", "email", "timezone", "digest", "digest_hour"])


@coach.command("link")
@click.option("--id", "coach_id", required=True, help="Id of the coach.")
@database_errors
def coach_link(coach_id: str) -> None:
    """Print a one-time sign-in link for a coach (valid 15 minutes; first set-up, no SMTP)."""
    from kneeguard.clock import utcnow
    from kneeguard.web.admin import UnknownError
    from kneeguard.web.admin import coach_link as make_link
    from kneeguard.web.security import SecretKeyError

    settings = load_settings()
    try:
        click.echo(make_link(settings, open_database(settings), coach_id, utcnow()))
    except UnknownError as exc:
        fail(str(exc), 2)
    except SecretKeyError as exc:
        fail(str(exc), 2)


@coach.command("token")
@click.option("--id", "coach_id", required=True, help="Id of the coach.")
@database_errors
def coach_token(coach_id: str) -> None:
    """Create an API bearer token for a coach (printed once; only its hash is kept)."""
    from kneeguard.clock import utcnow
    from kneeguard.web.admin import UnknownError
    from kneeguard.web.admin import coach_token as make_token

    settings = load_settings()
    try:
        token = make_token(open_database(settings), coach_id, utcnow())
    except UnknownError as exc:
        fail(str(exc), 2)
    click.echo(token)
    click.echo("the token is stored only as a hash and will not be shown again", err=True)


def secret_option(value: str | None, path: str | None) -> str | None:
    """The webhook key from `--webhook-secret` or `--webhook-secret-file` (`-` is stdin): a
    secret on the command line is visible to every user of the machine in the process list."""
    if path is None:
        return value
    if value is not None:
        fail("give --webhook-secret or --webhook-secret-file, not both", 2)
    import sys
    from pathlib import Path

    text: str
    try:
        if path == "-":
            text = sys.stdin.read(65_537)
        else:
            with Path(path).open(encoding="utf-8") as handle:
                text = handle.read(65_537)
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"cannot read the webhook secret: {getattr(exc, 'strerror', None) or exc}", 2)
    secret = text.rstrip("\r\n")
    if not secret or len(secret) > 65_536 or "\n" in secret:
        fail("the webhook secret must be one non-empty line", 2)
    return secret
