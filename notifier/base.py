"""What every delivery channel shares: the message, the recipient and the one error type.

A transport is small: `send(recipient, message) -> None`, raising `DeliveryError` whose
`permanent` flag says whether retrying could ever help (SMTP 5xx, HTTP 4xx other than 429) or
not (connection refused, timeouts, SMTP 4xx, HTTP 5xx and 429).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

Channel = Literal["email", "push", "inapp", "webhook"]
CHANNELS: tuple[Channel, ...] = ("email", "push", "inapp", "webhook")
RecipientKind = Literal["athlete", "coach"]


class DeliveryError(Exception):
    """Sending failed. `permanent` means: do not retry this delivery."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a delivery goes to, with the addresses each channel needs."""

    kind: RecipientKind
    id: str
    name: str
    email: str
    timezone: str
    athlete_id: str | None = None  # the athlete's own id, for the in-app alerts topic
    ntfy_topic: str | None = None
    webhook_url: str | None = None
    webhook_secret: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """A button a push notification can carry: `view` opens `url`, `http` sends a request to it
    (ntfy's action buttons)."""

    kind: Literal["view", "http"]
    label: str
    url: str
    method: str = "POST"


@dataclass(frozen=True, slots=True)
class InlineImage:
    """An image the HTML body shows as `<img src="cid:{cid}">` (email only)."""

    cid: str
    data: bytes = field(repr=False)
    subtype: str = "png"


@dataclass(frozen=True, slots=True)
class Message:
    """One rendered notification; each channel uses the parts it can carry.

    `subject` is the email subject and the push title; `text` the plain-text body and the push
    message; `html` the email's HTML alternative; `severity` sets push priority; `data` is the
    JSON document for in-app and webhook deliveries. `reference` names the delivery and is the
    same on every attempt, so a message sent again after a crash can be recognised as the same
    one (the email's Message-ID).
    """

    subject: str
    text: str
    html: str | None = None
    severity: str = "info"  # info | warning | urgent
    tags: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)
    actions: tuple[Action, ...] = ()
    images: tuple[InlineImage, ...] = ()
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class NoticeLink:
    """Where the recipient of an alert notice reads and acknowledges it: `url` opens the page,
    `hook` (athletes' push only) acknowledges with one request."""

    url: str
    hook: str | None = None


class NoticeLinks(Protocol):
    """Signed links for alert notices, made by the web app's composition (notifier does not
    know how links are signed)."""

    def for_alert(
        self,
        recipient_kind: str,
        recipient_id: str,
        athlete_id: str,
        alert_id: int,
        generation: int | None = None,
    ) -> NoticeLink | None:
        """`generation`: the athlete's current link generation, when the caller has read it
        with the alert (else the links read it themselves)."""
        ...

    def dashboard(self, athlete_id: str | None = None) -> str:
        """The coach's team overview, or one athlete's page."""
        ...


class Transport(Protocol):
    """A delivery channel."""

    channel: Channel

    def send(self, recipient: Recipient, message: Message) -> None: ...
