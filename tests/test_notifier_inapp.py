"""In-app alerts through a real mosquitto (the deploy config): the service's paho client
publishes, an app subscribed to the athlete's alerts topic receives the alert's JSON."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from functools import partial

import pytest

from ingest.mqtt import BrokerAddress, MqttConnection
from notifier.base import DeliveryError, Message, Recipient
from notifier.inapp import MqttAlertTransport
from notifier.render import render_alert
from rules.catalog import spec
from rules.text import render
from testsupport import SERVICE_PASSWORD, SERVICE_USER, DeviceClient, Mosquitto, wait_until

pytestmark = pytest.mark.broker

ANN = Recipient(
    kind="athlete",
    id="ann",
    name="Ann Runner",
    email="ann@example.org",
    timezone="Europe/Berlin",
    athlete_id="ann",
)
COACH = Recipient(kind="coach", id="kim", name="Kim", email="kim@example.org", timezone="UTC")


def alert() -> Message:
    return render_alert(
        alert_id=5,
        athlete_id="ann",
        athlete_name="Ann Runner",
        rule_id="redflag.locked_knee",
        severity="urgent",
        recommendation="urgent_care",
        text=render(
            spec("redflag.locked_knee"),
            "knee locking reported after your run.",
            "knee locking reported after your run.",
        ).athlete,
        evidence={"locking": True},
        opened_at=datetime(2026, 11, 2, 7, 5, tzinfo=UTC),
    )


@pytest.fixture
def service(broker: Mosquitto) -> Iterator[MqttConnection]:
    """The service's own broker connection, with the service credentials; the service hands
    its `publish_confirmed` to the in-app transport."""
    url = f"mqtt://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{broker.port}"
    # It subscribes at connect, as the service does; nothing is published on this topic.
    quiet = ["kneeguard/v1/nobody/none/ack"]
    connection = MqttConnection(
        BrokerAddress.from_url(url), f"svc-{uuid.uuid4().hex[:8]}", quiet, lambda inbound: None
    )
    connection.start()
    assert wait_until(connection.ready.is_set, 10), connection.fatal_error
    yield connection
    connection.stop()


def test_alert_json_arrives_on_the_athletes_alerts_topic(
    broker: Mosquitto, service: MqttConnection
) -> None:
    app = DeviceClient(broker.port, subscribe=("kneeguard/v1/+/alerts",))
    try:
        message = alert()
        MqttAlertTransport(partial(service.publish_confirmed, timeout=5), "kneeguard/v1/").send(
            ANN, message
        )
        assert wait_until(lambda: bool(app.received), 5), "no alert arrived"
    finally:
        app.close()
    [(topic, payload)] = app.received
    assert topic == "kneeguard/v1/ann/alerts"
    received = json.loads(payload)
    assert received == dict(message.data)
    assert received["alert_id"] == 5
    assert received["rule_id"] == "redflag.locked_knee"
    assert received["severity"] == "urgent"
    assert received["recommendation"] == "urgent_care"
    assert received["text"].endswith("This is not a diagnosis.")


def test_a_stopped_broker_is_a_transient_failure(
    broker: Mosquitto, service: MqttConnection
) -> None:
    broker.stop()
    transport = MqttAlertTransport(partial(service.publish_confirmed, timeout=0.5), "kneeguard/v1")
    with pytest.raises(DeliveryError) as caught:
        transport.send(ANN, alert())
    assert not caught.value.permanent


def test_any_publish_exception_is_transient() -> None:
    def failing(topic: str, payload: bytes) -> None:
        raise RuntimeError("The client is not currently connected.")

    with pytest.raises(DeliveryError) as caught:
        MqttAlertTransport(failing, "kneeguard/v1").send(ANN, alert())
    assert not caught.value.permanent
    assert isinstance(caught.value.__cause__, RuntimeError)


@pytest.mark.parametrize(
    "recipient",
    [COACH, Recipient("athlete", "x", "X", "x@example.org", "UTC", athlete_id="ann/+")],
    ids=["coach", "id-with-wildcard"],
)
def test_no_athlete_alerts_topic_is_permanent_and_nothing_is_published(
    recipient: Recipient,
) -> None:
    published: list[tuple[str, bytes]] = []
    with pytest.raises(DeliveryError) as caught:
        MqttAlertTransport(lambda t, p: published.append((t, p)), "kneeguard/v1").send(
            recipient, alert()
        )
    assert caught.value.permanent
    assert published == []


@pytest.mark.parametrize("prefix", ["", "/", "kneeguard/#", "kneeguard/+/v1"])
def test_a_prefix_with_wildcards_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        MqttAlertTransport(lambda t, p: None, prefix)
