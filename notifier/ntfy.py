"""Push delivery through an ntfy server (`KNEEGUARD_NTFY_URL`) to the athlete's phone.

Uses ntfy's JSON publishing (POST `{"topic","title","message","priority","tags"}` to the server
URL) rather than one POST per topic with `Title`/`Priority`/`Tags` headers. Reason: alert titles
carry non-ASCII (the em dash of every subject, athlete names), HTTP header values are ASCII
(httpx refuses anything else), and ntfy's RFC 2047 decoding of headers is a per-header
server-side feature; in JSON every field is plain UTF-8, the tags stay a list (a tag containing
a comma cannot break the header syntax) and nothing user-supplied ends up in a header.

Credentials may be given in the URL (`https://user:password@ntfy.example`); they are sent as
HTTP basic auth and never shown. HTTP errors are classified by `notifier.webhook.post`.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any, Final
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from db.urls import check_password_encoded
from notifier.base import Action, Channel, DeliveryError, Message, Recipient
from notifier.webhook import DEFAULT_TIMEOUT, origin, post

__all__ = ["PRIORITY", "TOPIC_PATTERN", "NtfyTransport"]

log = logging.getLogger(__name__)

PRIORITY: Final = {"info": 3, "warning": 4, "urgent": 5}
"""ntfy priorities: 3 default, 4 high, 5 max (urgent alerts may break through do-not-disturb)."""

TOPIC_PATTERN: Final = re.compile(r"[-_A-Za-z0-9]{1,64}")
"""What ntfy accepts as a topic name."""


def _action(action: Action) -> dict[str, Any]:
    """One ntfy action button (at most three per message)."""
    if action.kind == "view":
        return {"action": "view", "label": action.label, "url": action.url, "clear": True}
    return {
        "action": "http",
        "label": action.label,
        "url": action.url,
        "method": action.method,
        "clear": True,
    }


class NtfyTransport:
    """Publishes a `Message` to the recipient's ntfy topic."""

    channel: Channel = "push"

    def __init__(self, base_url: str, client: httpx.Client | None = None) -> None:
        """`base_url` is the ntfy server, possibly below a path; a user and password in it
        become basic auth. `client` is the caller's to close when given."""
        check_password_encoded(base_url, "the ntfy URL")
        try:
            parts = urlsplit(base_url)
            parts.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            raise ValueError(f"invalid ntfy URL {origin(base_url)!r}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"ntfy URL must be http(s)://host[/path], got {origin(base_url)!r}")
        self._auth: httpx.Auth | None = None
        if parts.username is not None:
            self._auth = httpx.BasicAuth(unquote(parts.username), unquote(parts.password or ""))
        netloc = parts.netloc.rpartition("@")[2]
        self.url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") or "/", "", ""))
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)

    def __repr__(self) -> str:
        return f"NtfyTransport({origin(self.url)!r})"

    def close(self) -> None:
        """Close the HTTP client if this transport created it."""
        if self._own_client:
            self.client.close()

    def send(self, recipient: Recipient, message: Message) -> None:
        """Publish to `recipient.ntfy_topic`; a recipient without a (valid) topic is a
        permanent error, since retrying cannot give them one."""
        topic = recipient.ntfy_topic
        if not topic:
            raise DeliveryError(f"recipient {recipient.id} has no ntfy topic", permanent=True)
        if not TOPIC_PATTERN.fullmatch(topic):
            raise DeliveryError(
                f"ntfy topic of recipient {recipient.id} is not a valid topic name", permanent=True
            )
        document: dict[str, Any] = {
            "topic": topic,
            "title": message.subject,
            "message": message.text,
            "priority": PRIORITY.get(message.severity, PRIORITY["info"]),
            "tags": list(message.tags),
        }
        if message.actions:
            document["actions"] = [_action(a) for a in message.actions[:3]]
            document["click"] = message.actions[0].url if message.actions[0].kind == "view" else ""
            if not document["click"]:
                del document["click"]
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        log.debug("push to recipient %s via %s", recipient.id, origin(self.url))
        post(
            self.client,
            self.url,
            content=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            auth=self._auth,
        )
