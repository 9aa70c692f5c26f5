"""Signed webhook delivery: the alert's JSON document POSTed to a coach's (or club's) URL.

The body is canonical JSON (sorted keys, no spaces), so a receiver can re-serialise and compare.
`X-KneeGuard-Signature: sha256=HEX` is the HMAC-SHA256 of `"{timestamp}.{body}"` under the
recipient's secret, `X-KneeGuard-Timestamp` the unix seconds it was made at: signing the time
as well lets a receiver refuse a captured request replayed later (`verify_signature`, 5 minutes
of tolerance by default), the same scheme as Stripe's and Slack's webhooks.

`post` is the HTTP part shared with the ntfy transport: one place decides that 4xx (except 429)
and redirects are permanent, 429, 5xx, timeouts and connection errors transient.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import httpx

from notifier.base import Channel, DeliveryError, Message, Recipient

__all__ = [
    "DEFAULT_TIMEOUT",
    "WebhookTransport",
    "canonical_body",
    "origin",
    "post",
    "sign",
    "verify_signature",
]

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = httpx.Timeout(10.0)
"""Every request is bounded: a receiver that hangs must not stall the outbox worker."""

TIMESTAMP_HEADER = "X-KneeGuard-Timestamp"
SIGNATURE_HEADER = "X-KneeGuard-Signature"
_USER_AGENT = "KneeGuard-notifier"


def canonical_body(data: Mapping[str, object]) -> str:
    """The JSON document as signed and sent: sorted keys, no whitespace, ASCII only."""
    return json.dumps(data, separators=(",", ":"), sort_keys=True)


def sign(secret: str, timestamp: str | int, body: str | bytes) -> str:
    """The signature header value, `sha256=` and the hex HMAC of `"{timestamp}.{body}"`."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    signed = str(timestamp).encode("ascii") + b"." + raw
    digest = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: str,
    timestamp: str,
    body: str | bytes,
    header: str,
    now: float,
    tolerance: float = 300,
) -> bool:
    """Whether a received webhook is authentic and fresh, for receivers and tests.

    `timestamp` and `header` are the raw header values, `body` the raw request body, `now` the
    receiver's unix time. False for a malformed timestamp or header, a timestamp more than
    `tolerance` seconds away from `now`, or a signature that does not match (compared in
    constant time).
    """
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    if not header.isascii():
        return False
    expected = sign(secret, timestamp, body)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("ascii"))


def origin(url: str) -> str:
    """`scheme://host[:port]` of `url`: safe to show, since webhook paths and queries often
    carry tokens and a URL's user part a password."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<unparsable url>"
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{port}"


def post(
    client: httpx.Client,
    url: str,
    *,
    content: bytes,
    headers: Mapping[str, str],
    auth: httpx.Auth | None = None,
) -> None:
    """POST once and classify the outcome; returns on 2xx, else raises `DeliveryError`.

    Redirects are not followed (a signed POST must not be re-sent elsewhere) and count as
    permanent, like any 4xx but 429: the same request would get the same answer. 429, 5xx,
    timeouts and connection failures are transient. Error messages show only the URL's origin.
    """
    where = origin(url)
    try:
        response = client.post(
            url,
            content=content,
            headers=headers,
            auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth,
            follow_redirects=False,
        )
    except httpx.TimeoutException as exc:
        raise DeliveryError(f"{where} timed out ({type(exc).__name__})", permanent=False) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise DeliveryError(f"{where}: unusable URL", permanent=True) from exc
    except httpx.TransportError as exc:
        raise DeliveryError(f"{where}: {type(exc).__name__}: {exc}", permanent=False) from exc
    status = response.status_code
    if 200 <= status < 300:
        return
    detail = " ".join(response.text[:200].split())
    message = f"{where} answered HTTP {status}" + (f": {detail}" if detail else "")
    permanent = status < 500 and status != 429
    raise DeliveryError(message, permanent=permanent)


class WebhookTransport:
    """POSTs `message.data` as signed JSON to `recipient.webhook_url`."""

    channel: Channel = "webhook"

    def __init__(
        self,
        client: httpx.Client | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`client` is shared with the caller when given (and then closed by it); `clock`
        gives the unix time that is signed, injectable for tests."""
        self._own_client = client is None
        self.client = client or httpx.Client(timeout=DEFAULT_TIMEOUT, follow_redirects=False)
        self._clock = clock

    def close(self) -> None:
        """Close the HTTP client if this transport created it."""
        if self._own_client:
            self.client.close()

    def send(self, recipient: Recipient, message: Message) -> None:
        """Deliver one webhook; raises `DeliveryError` (permanent for a missing URL or
        secret, an unusable URL, or a body that is not JSON)."""
        url, secret = recipient.webhook_url, recipient.webhook_secret
        if not url or not secret:
            missing = "webhook_url" if not url else "webhook_secret"
            raise DeliveryError(f"recipient {recipient.id} has no {missing}", permanent=True)
        if urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"webhook URL of {recipient.id} is not http(s)", permanent=True)
        try:
            body = canonical_body(message.data)
        except (TypeError, ValueError) as exc:
            raise DeliveryError(f"webhook body is not JSON: {exc}", permanent=True) from exc
        timestamp = str(int(self._clock()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(secret, timestamp, body),
        }
        log.debug("webhook to recipient %s at %s", recipient.id, origin(url))
        post(self.client, url, content=body.encode("utf-8"), headers=headers)
