"""ntfy push delivery against a real local HTTP server that records requests and answers as
told: the JSON document (title, message, priority, tags), non-ASCII, auth, error classes.

`HttpSink` is shared with tests/test_notifier_webhook.py."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from notifier.base import DeliveryError, Message, Recipient
from notifier.ntfy import NtfyTransport
from notifier.render import render_alert
from rules.catalog import spec
from rules.text import render
from testsupport import HttpSink, free_port

ANN = Recipient(
    kind="athlete",
    id="ann",
    name="Ann Runner",
    email="ann@example.org",
    timezone="Europe/Berlin",
    athlete_id="ann",
    ntfy_topic="kneeguard-ann-7f3a",
)


@pytest.fixture
def server() -> Iterator[HttpSink]:
    recording = HttpSink().start()
    yield recording
    recording.stop()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=httpx.Timeout(5.0)) as http:
        yield http


def alert(severity: str = "warning", recommendation: str = "rest") -> Message:
    return render_alert(
        alert_id=3,
        athlete_id="ann",
        athlete_name="Ann Runner",
        rule_id="pain.high",
        severity=severity,
        recommendation=recommendation,
        text=render(
            spec("pain.high"), "pain 7/10 after your run.", "pain 7/10 after your run."
        ).athlete,
        evidence={"pain_score": 7},
        opened_at=datetime(2026, 11, 2, 7, 5, tzinfo=UTC),
    )


def test_publishes_title_message_priority_and_tags_as_json(
    server: HttpSink, client: httpx.Client
) -> None:
    message = alert()
    NtfyTransport(server.url, client).send(ANN, message)

    [request] = server.requests
    assert request.path == "/"
    assert request.headers["content-type"].startswith("application/json")
    assert request.json() == {
        "topic": "kneeguard-ann-7f3a",
        "title": "[Warning] KneeGuard: rest from running — high pain during or after a run",
        "message": message.text,
        "priority": 4,
        "tags": ["warning", "knee", "pain.high"],
    }


@pytest.mark.parametrize(("severity", "priority"), [("info", 3), ("warning", 4), ("urgent", 5)])
def test_priority_follows_severity(
    severity: str, priority: int, server: HttpSink, client: httpx.Client
) -> None:
    NtfyTransport(server.url, client).send(ANN, Message("t", "m", severity=severity))
    assert server.requests[0].json()["priority"] == priority


def test_non_ascii_title_and_message_arrive_intact(server: HttpSink, client: httpx.Client) -> None:
    title = "[URGENT] KneeGuard: knee locking — Zoë Ødegård 🦵"
    NtfyTransport(server.url, client).send(ANN, Message(title, "Schmerz 7/10 — Knie", "urgent"))
    document = server.requests[0].json()
    assert document["title"] == title
    assert document["message"] == "Schmerz 7/10 — Knie"


def test_a_path_in_the_base_url_is_kept(server: HttpSink, client: httpx.Client) -> None:
    NtfyTransport(f"{server.url}/ntfy/", client).send(ANN, Message("t", "m"))
    assert server.requests[0].path == "/ntfy"


def test_credentials_in_the_url_become_basic_auth_and_are_never_shown(
    server: HttpSink, client: httpx.Client
) -> None:
    transport = NtfyTransport(f"http://kg:hunter2%40x@127.0.0.1:{server.port}", client)
    server.status = 401
    with pytest.raises(DeliveryError) as caught:
        transport.send(ANN, Message("t", "m"))
    expected = "Basic " + base64.b64encode(b"kg:hunter2@x").decode()
    assert server.requests[0].headers["authorization"] == expected
    assert caught.value.permanent
    assert "hunter2" not in str(caught.value) and "hunter2" not in repr(transport)


@pytest.mark.parametrize("topic", [None, "", "a/b", "x" * 65])
def test_recipient_without_a_usable_topic_is_permanent_and_nothing_is_sent(
    topic: str | None, server: HttpSink, client: httpx.Client
) -> None:
    coach = Recipient("coach", "kim", "Kim", "kim@example.org", "UTC", ntfy_topic=topic)
    with pytest.raises(DeliveryError) as caught:
        NtfyTransport(server.url, client).send(coach, Message("t", "m"))
    assert caught.value.permanent
    assert server.requests == []


@pytest.mark.parametrize(
    ("status", "permanent"),
    [
        (400, True),
        (403, True),
        (404, True),
        (413, True),
        (302, True),
        (429, False),
        (500, False),
        (502, False),
        (503, False),
    ],
)
def test_http_4xx_and_redirects_are_permanent_429_and_5xx_transient(
    status: int, permanent: bool, server: HttpSink, client: httpx.Client
) -> None:
    server.status = status
    server.reply = b'{"code":40001,"error":"told to fail"}'
    with pytest.raises(DeliveryError) as caught:
        NtfyTransport(server.url, client).send(ANN, alert())
    assert caught.value.permanent is permanent
    assert f"HTTP {status}" in str(caught.value)
    assert len(server.requests) == 1  # not retried or redirected inside the transport


def test_a_server_that_never_answers_times_out_as_transient(server: HttpSink) -> None:
    server.hang = True
    with (
        httpx.Client(timeout=httpx.Timeout(0.3)) as impatient,
        pytest.raises(DeliveryError) as caught,
    ):
        NtfyTransport(server.url, impatient).send(ANN, alert())
    assert not caught.value.permanent
    assert "timed out" in str(caught.value)


def test_nothing_listening_is_transient(client: httpx.Client) -> None:
    with pytest.raises(DeliveryError) as caught:
        NtfyTransport(f"http://127.0.0.1:{free_port()}", client).send(ANN, alert())
    assert not caught.value.permanent


@pytest.mark.parametrize("url", ["ftp://ntfy.example", "ntfy.example", "http://h:99999"])
def test_an_unusable_server_url_is_refused_at_construction(url: str) -> None:
    with pytest.raises(ValueError, match="ntfy URL"):
        NtfyTransport(url)
