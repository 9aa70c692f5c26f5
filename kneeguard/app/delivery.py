"""Builds the delivery channels from the settings (the composition root's part of notifier)."""

from __future__ import annotations

from collections.abc import Callable

from kneeguard.settings import Settings
from notifier.base import Transport
from notifier.email import EmailTransport, SmtpSettings
from notifier.inapp import MqttAlertTransport
from notifier.ntfy import NtfyTransport
from notifier.webhook import WebhookTransport


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
