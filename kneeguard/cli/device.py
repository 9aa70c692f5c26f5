"""`kneeguard device`: devices allowed to publish for an athlete, and their broker credentials."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from kneeguard.cli.common import (
    database_errors,
    fail,
    load_settings,
    print_rows,
    registry,
    registry_call,
)

if TYPE_CHECKING:
    from kneeguard.admin.credentials import BrokerCredentials
    from kneeguard.admin.registry import Registry
    from kneeguard.settings import Settings


@click.group()
def device() -> None:
    """Devices (watches, phone apps) allowed to publish for an athlete."""


@device.command("add")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Device id: 1-64 of A-Z a-z 0-9 _ -.")
@database_errors
def device_add(athlete_id: str, device_id: str) -> None:
    """Register a device to an athlete and, with KNEEGUARD_MQTT_PASSWORD_FILE set, give it broker
    credentials (printed once)."""
    from kneeguard.admin.credentials import CredentialsError

    settings = load_settings()
    reg = registry()
    added = registry_call(lambda: reg.add_device(athlete_id=athlete_id, device_id=device_id))
    click.echo(f"device {added.id} added for athlete {added.athlete_id}")
    click.echo(f"  publishes to {settings.topic_prefix}/{added.athlete_id}/{added.id}/run|checkin")
    broker = broker_credentials(settings)
    if broker is None:
        click.echo("broker credentials were not generated: KNEEGUARD_MQTT_PASSWORD_FILE is not set")
        return
    try:
        issued = broker.issue(added.athlete_id, added.id, device_keys(reg))
    except CredentialsError as exc:
        # No half-made device: without credentials it could never connect.
        reg.remove_device(athlete_id=added.athlete_id, device_id=added.id)
        with contextlib.suppress(CredentialsError):
            broker.revoke(added.athlete_id, added.id, device_keys(reg))
        fail(f"device not added: {exc}")
    click.echo(f"  MQTT username: {issued.username}")
    click.echo(f"  MQTT password: {issued.password}")
    click.echo("  the password is stored only as a hash and will not be shown again")
    reload_broker(broker)


@device.command("revoke")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Id of the device.")
@database_errors
def device_revoke(athlete_id: str, device_id: str) -> None:
    """Unregister a device and remove its broker credentials (its runs and check-ins stay)."""
    from kneeguard.admin.credentials import CredentialsError

    settings = load_settings()
    reg = registry()
    removed = registry_call(lambda: reg.remove_device(athlete_id=athlete_id, device_id=device_id))
    broker = broker_credentials(settings)
    had_entry = False
    if broker is not None:
        try:
            had_entry = broker.revoke(athlete_id, device_id, device_keys(reg))
        except CredentialsError as exc:
            fail(f"device {device_id} unregistered but its credentials remain: {exc}")
    if not removed and not had_entry:
        fail(f"device {device_id!r} is not registered to athlete {athlete_id!r}", 2)
    click.echo(f"device {device_id} revoked for athlete {athlete_id}")
    if broker is None:
        click.echo("broker credentials were not changed: KNEEGUARD_MQTT_PASSWORD_FILE is not set")
        return
    reload_broker(broker)


@device.command("rotate")
@click.option("--athlete", "athlete_id", required=True, help="Id of the device's athlete.")
@click.option("--id", "device_id", required=True, help="Id of the device.")
@database_errors
def device_rotate(athlete_id: str, device_id: str) -> None:
    """Give a registered device a new broker password (printed once); the old one stops working
    and a connection made with it is closed when the broker reloads."""
    from kneeguard.admin.credentials import CredentialsError

    settings = load_settings()
    reg = registry()
    if not any(d.id == device_id for d in reg.devices(athlete_id)):
        fail(f"device {device_id!r} is not registered to athlete {athlete_id!r}", 2)
    broker = broker_credentials(settings)
    if broker is None:
        fail("KNEEGUARD_MQTT_PASSWORD_FILE is not set: there are no credentials to rotate", 2)
    try:
        issued = broker.issue(athlete_id, device_id, device_keys(reg))
    except CredentialsError as exc:
        fail(f"password not rotated: {exc}")
    click.echo(f"new password for device {device_id} of athlete {athlete_id}")
    click.echo(f"  MQTT username: {issued.username}")
    click.echo(f"  MQTT password: {issued.password}")
    click.echo("  the password is stored only as a hash and will not be shown again")
    reload_broker(broker)


@device.command("list")
@click.option("--athlete", "athlete_id", default=None, help="Only this athlete's devices.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@database_errors
def device_list(athlete_id: str | None, as_json: bool) -> None:
    """List devices with their broker user names."""
    rows = [
        {
            "athlete": d.athlete_id,
            "id": d.id,
            "username": f"{d.athlete_id}.{d.id}",
            "created_at": d.created_at.isoformat(timespec="seconds"),
        }
        for d in registry().devices(athlete_id)
    ]
    print_rows(rows, as_json, ["athlete", "id", "username", "created_at"])


def broker_credentials(settings: Settings) -> BrokerCredentials | None:
    """The broker files to manage, or None when no password file is configured."""
    from contract.topics import Topics
    from kneeguard.admin.credentials import BrokerCredentials

    if settings.mqtt_password_file is None:
        return None
    if settings.mqtt_acl_file is None:
        click.echo(
            "warning: KNEEGUARD_MQTT_ACL_FILE is not set; the broker ACL is not updated", err=True
        )
    return BrokerCredentials(
        password_file=settings.mqtt_password_file,
        acl_file=settings.mqtt_acl_file,
        pid_file=settings.mqtt_broker_pid_file,
        topics=Topics(settings.topic_prefix),
    )


def device_keys(reg: Registry) -> Callable[[], list[tuple[str, str]]]:
    """The registered devices, read from the database when the ACL is rewritten."""
    return lambda: [(d.athlete_id, d.id) for d in reg.devices()]


def reload_broker(broker: BrokerCredentials) -> None:
    """SIGHUP the broker; the files are written either way, so a failure is only a warning."""
    from kneeguard.admin.credentials import CredentialsError

    try:
        reloaded = broker.reload()
    except CredentialsError as exc:
        click.echo(f"warning: broker not reloaded ({exc}); send mosquitto SIGHUP", err=True)
        return
    if reloaded:
        click.echo("broker reloaded")
    else:
        click.echo("send mosquitto SIGHUP (or restart it) for the change to take effect")
