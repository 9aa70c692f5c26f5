"""Builds the delivery channels from the settings (the composition root's part of notifier)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from kneeguard.settings import Settings
from notifier.base import Transport
from notifier.email import EmailTransport, SmtpSettings
from notifier.inapp import MqttAlertTransport
from notifier.ntfy import NtfyTransport
from notifier.routing import enqueue_alerts
from notifier.webhook import WebhookTransport

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from rules.store import Change


class DeliveryConfigError(ValueError):
    """A delivery setting cannot be used; the message names the variable and is safe to show."""


def build_transports(
    settings: Settings, publish: Callable[[str, bytes], None] | None = None
) -> dict[str, Transport]:
    """Every channel this server can use: push only with KNEEGUARD_NTFY_URL, in-app only with
    a broker connection to publish on. Raises `DeliveryConfigError` for a bad setting."""
    try:
        smtp = SmtpSettings.from_url(settings.smtp_url)
    except ValueError as exc:
        raise DeliveryConfigError(f"invalid KNEEGUARD_SMTP_URL: {exc}") from None
    try:
        email = EmailTransport(smtp, settings.mail_from)
    except ValueError as exc:
        raise DeliveryConfigError(f"invalid KNEEGUARD_MAIL_FROM: {exc}") from None
    transports: dict[str, Transport] = {"email": email, "webhook": WebhookTransport()}
    if settings.ntfy_url:
        try:
            transports["push"] = NtfyTransport(settings.ntfy_url)
        except ValueError as exc:
            raise DeliveryConfigError(f"invalid KNEEGUARD_NTFY_URL: {exc}") from None
    if publish is not None:
        transports["inapp"] = MqttAlertTransport(publish, settings.topic_prefix)
    return transports


WriteDeliveries = Callable[["Connection", Sequence["Change"], datetime], None]


def alert_deliveries(channels: Collection[str]) -> WriteDeliveries:
    """What the rule engine calls in an alert change's transaction: the outbox rows of each
    notice (one per alert event), on the given channels."""

    def write(conn: Connection, changes: Sequence[Change], now: datetime) -> None:
        enqueue_alerts(conn, [(c.alert_id, c.kind, c.event_id) for c in changes], now, channels)

    return write


def _no_broker(topic: str, payload: bytes) -> None:
    raise RuntimeError("this process has no broker connection")  # pragma: no cover


def service_channels(settings: Settings) -> tuple[str, ...]:
    """The channels the running service delivers on, for a process (a command) that only writes
    outbox rows for that service's outbox worker to send. Raises `DeliveryConfigError`."""
    return tuple(build_transports(settings, _no_broker))
