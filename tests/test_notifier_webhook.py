"""Signed webhook delivery against a real local HTTP server: the canonical body, the
timestamp and signature headers, signature verification, and error classification."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from notifier.base import DeliveryError, Message, Recipient
from notifier.webhook import WebhookTransport, canonical_body, sign, verify_signature
from testsupport import HttpSink, free_port

SECRET = "whsec-coach-kim-91f0"
NOW = 1_793_000_000
DATA: dict[str, Any] = {
    "alert_id": 9,
    "athlete_id": "ann",
    "rule_id": "redflag.locked_knee",
    "severity": "urgent",
    "recommendation": "urgent_care",
    "reason": "escalation",
    "title": "Locked knee",
    "text": "Seen: knee locking reported by Zoë.\nThis is not a diagnosis.",
    "opened_at": "2026-11-02T07:05:00+00:00",
}
MESSAGE = Message("[URGENT] KneeGuard", "text", severity="urgent", data=DATA)


def coach(url: str | None, secret: str | None = SECRET) -> Recipient:
    return Recipient(
        kind="coach",
        id="kim",
        name="Kim Coach",
        email="kim@example.org",
        timezone="UTC",
        webhook_url=url,
        webhook_secret=secret,
    )


@pytest.fixture
def server() -> Iterator[HttpSink]:
    recording = HttpSink().start()
    yield recording
    recording.stop()


@pytest.fixture
def transport() -> Iterator[WebhookTransport]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as client:
        yield WebhookTransport(client, clock=lambda: NOW + 0.9)


def test_posts_canonical_json_signed_with_the_coachs_secret(
    server: HttpSink, transport: WebhookTransport
) -> None:
    transport.send(coach(f"{server.url}/hooks/kneeguard?token=abc"), MESSAGE)

    [request] = server.requests
    assert request.path == "/hooks/kneeguard?token=abc"
    assert request.headers["content-type"] == "application/json"
    assert request.body == canonical_body(DATA).encode()
    assert request.json() == DATA
    assert request.headers["x-kneeguard-timestamp"] == str(NOW)
    signature = request.headers["x-kneeguard-signature"]
    assert signature.startswith("sha256=") and len(signature) == len("sha256=") + 64
    assert verify_signature(SECRET, str(NOW), request.body, signature, now=NOW + 2)


def test_canonical_body_is_sorted_compact_ascii() -> None:
    assert canonical_body({"b": "ë", "a": [1, 2]}) == '{"a":[1,2],"b":"\\u00eb"}'


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "now"),
    [
        ("another-secret", str(NOW), None, NOW),  # wrong secret
        (SECRET, str(NOW), b'{"alert_id":10}', NOW),  # tampered body
        (SECRET, str(NOW + 60), None, NOW),  # tampered timestamp
        (SECRET, str(NOW), None, NOW + 301),  # replayed after the tolerance
        (SECRET, str(NOW), None, NOW - 301),  # from the future
        (SECRET, "not-a-time", None, NOW),
    ],
)
def test_signature_fails_for_another_secret_tampering_or_replay(
    server: HttpSink,
    transport: WebhookTransport,
    secret: str,
    timestamp: str,
    body: bytes | None,
    now: int,
) -> None:
    transport.send(coach(server.url), MESSAGE)
    request = server.requests[0]
    header = request.headers["x-kneeguard-signature"]
    assert verify_signature(SECRET, str(NOW), request.body, header, now=NOW)  # the control
    assert not verify_signature(secret, timestamp, body or request.body, header, now=now)


@pytest.mark.parametrize("header", ["", "sha256=", "sha1=abc", "sha256=zz", "sha256=ë"])
def test_malformed_signature_header_never_verifies(header: str) -> None:
    body = canonical_body(DATA)
    assert verify_signature(SECRET, str(NOW), body, sign(SECRET, NOW, body), now=NOW)
    assert not verify_signature(SECRET, str(NOW), body, header, now=NOW)


@pytest.mark.parametrize(
    ("url", "secret"),
    [(None, SECRET), ("", SECRET), ("http://127.0.0.1:9/h", None), ("ftp://example.org/h", SECRET)],
)
def test_missing_url_or_secret_or_non_http_url_is_permanent(
    url: str | None, secret: str | None, transport: WebhookTransport
) -> None:
    with pytest.raises(DeliveryError) as caught:
        transport.send(coach(url, secret), MESSAGE)
    assert caught.value.permanent


@pytest.mark.parametrize(
    ("status", "permanent"),
    [(400, True), (401, True), (410, True), (301, True), (429, False), (500, False), (503, False)],
)
def test_http_4xx_and_redirects_are_permanent_429_and_5xx_transient(
    status: int, permanent: bool, server: HttpSink, transport: WebhookTransport
) -> None:
    server.status = status
    with pytest.raises(DeliveryError) as caught:
        transport.send(coach(f"{server.url}/hooks/kim-token-5521?key=abc"), MESSAGE)
    assert caught.value.permanent is permanent
    # Only the origin is shown: webhook paths and queries often hold tokens.
    assert server.url in str(caught.value)
    assert "kim-token-5521" not in str(caught.value) and "abc" not in str(caught.value)


def test_a_receiver_that_never_answers_times_out_as_transient(server: HttpSink) -> None:
    server.hang = True
    with (
        httpx.Client(timeout=httpx.Timeout(0.3)) as impatient,
        pytest.raises(DeliveryError) as caught,
    ):
        WebhookTransport(impatient).send(coach(server.url), MESSAGE)
    assert not caught.value.permanent


def test_nothing_listening_is_transient(transport: WebhookTransport) -> None:
    with pytest.raises(DeliveryError) as caught:
        transport.send(coach(f"http://127.0.0.1:{free_port()}/h"), MESSAGE)
    assert not caught.value.permanent


def test_data_that_is_not_json_is_permanent(transport: WebhookTransport) -> None:
    with pytest.raises(DeliveryError) as caught:
        transport.send(coach("http://127.0.0.1:9/h"), Message("s", "t", data={"x": object()}))
    assert caught.value.permanent
