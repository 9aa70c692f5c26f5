"""Builds the delivery channels from the settings (the composition root's part of notifier)."""

from __future__ import annotations

from collections.abc import Callable

from kneeguard.settings import Settings
from notifier.base import Transport
from notifier.email import EmailTransport, SmtpSettings
from notifier.inapp import MqttAlertTransport
from notifier.ntfy import NtfyTransport
from notifier.webhook import WebhookTransport


def build_transports(
    settings: Settings, publish: Callable[[str, bytes], None] | None = None
) -> dict[str, Transport]:
    """Every channel this server can use: push only with KNEEGUARD_NTFY_URL, in-app only with
    a broker connection to publish on."""
    transports: dict[str, Transport] = {
        "email": EmailTransport(SmtpSettings.from_url(settings.smtp_url), settings.mail_from),
        "webhook": WebhookTransport(),
    }
    if settings.ntfy_url:
        transports["push"] = NtfyTransport(settings.ntfy_url)
    if publish is not None:
        transports["inapp"] = MqttAlertTransport(publish, settings.topic_prefix)
    return transports
