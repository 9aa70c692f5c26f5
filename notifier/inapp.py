"""In-app alerts: the alert's JSON document on `{prefix}/{athlete_id}/alerts` (DESIGN.md, Topics).

The transport only knows a `publish(topic, payload)` callable, so it needs no broker connection
of its own and is tested without one; the composition root passes the `publish_confirmed` of
the service's own broker connection. The callable must publish at QoS 1 and return only once the
broker has acknowledged (PUBACK), raising otherwise; every such failure is transient.

A retried delivery may reach an app twice (the first PUBACK can be lost after the broker got the
message); apps de-duplicate on `alert_id`. A publish the broker's ACL denies is not detected
here: only the PUBACK's arrival is awaited, not its reason code.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Final

from contract.topics import ID_PATTERN, Topics, clean_prefix
from notifier.base import Channel, DeliveryError, Message, Recipient

__all__ = ["QOS", "MqttAlertTransport", "Publish"]

log = logging.getLogger(__name__)

QOS: Final = 1
Publish = Callable[[str, bytes], None]
"""Publishes `payload` on `topic` at QoS 1, returning once acknowledged; raises on failure."""


class MqttAlertTransport:
    """Publishes `message.data` as JSON to the athlete's alerts topic."""

    channel: Channel = "inapp"

    def __init__(self, publish: Publish, prefix: str) -> None:
        try:
            self.topics = Topics(clean_prefix(prefix))
        except ValueError as exc:
            raise ValueError(f"topic prefix {exc}, got {prefix!r}") from None
        self._publish = publish
        self.prefix = self.topics.prefix

    def topic(self, athlete_id: str) -> str:
        """The in-app alerts topic of one athlete."""
        return self.topics.alerts(athlete_id)

    def send(self, recipient: Recipient, message: Message) -> None:
        """Publish one alert; permanent for a recipient that is not an athlete (coaches have
        no alerts topic) or an unusable payload, transient for any publish failure."""
        athlete_id = recipient.athlete_id
        if recipient.kind != "athlete" or not athlete_id:
            raise DeliveryError(
                f"recipient {recipient.id} is not an athlete; in-app alerts go to athletes",
                permanent=True,
            )
        if not ID_PATTERN.fullmatch(athlete_id):
            raise DeliveryError(f"athlete id {athlete_id!r} is not a valid id", permanent=True)
        try:
            payload = json.dumps(message.data).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise DeliveryError(f"in-app payload is not JSON: {exc}", permanent=True) from exc
        topic = self.topic(athlete_id)
        log.debug("in-app alert to %s", topic)
        try:
            self._publish(topic, payload)
        except Exception as exc:
            # Whatever the client raised (not connected, queue full, no PUBACK in time), the
            # broker may be back on the next attempt.
            raise DeliveryError(
                f"publish to {topic} failed: {type(exc).__name__}: {exc}", permanent=False
            ) from exc
