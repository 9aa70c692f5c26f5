"""The ceiling of bench/ingest.py: a bare paho subscriber, run as `python -m bench._ceiling`.

A process of its own started from nothing but this module: `ingest.mqtt` changes parts of paho
for the service (docs/BENCHMARKS.md), and the reference must be paho as installed (a spawned
multiprocessing child would import the parent's main module, and with it the service's code).
The process checks it. Arguments: port, messages expected, timeout, the subscription and, for
the ceiling with acks, the ack topic. It prints READY once subscribed, then its result as one
JSON line; the broker credentials come from BENCH_CEILING_USER and BENCH_CEILING_PASSWORD.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

PLACEHOLDER = "00000000-0000-4000-8000-000000000000"
ACK_PAYLOAD = b'{"uuid":"%s","status":"accepted","errors":[]}' % PLACEHOLDER.encode()


@dataclass(frozen=True, slots=True)
class CeilingResult:
    received: int
    last: float
    error: str | None = None
    cpu_seconds: float = 0.0


def ceiling_main(
    port: int, expected: int, timeout: float, subscription: str, ack_topic: str | None
) -> CeilingResult:
    """A subscriber process that only counts messages and notes the time of the last one.

    With an `ack_topic`, it also publishes one QoS 1 message per message received to it, as the
    contract asks of KneeGuard (docs/PROTOCOL.md), without looking at the payload.
    """
    if "ingest.mqtt" in sys.modules:
        return CeilingResult(0, 0.0, "the ceiling process imported ingest.mqtt")
    received = 0
    last = 0.0
    done = threading.Event()
    subscribed = threading.Event()

    def on_message(client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        nonlocal received, last
        received += 1
        last = time.time()
        if ack_topic is not None:
            client.publish(ack_topic, ACK_PAYLOAD, qos=1)
        if received >= expected:
            done.set()

    def on_connect(
        client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if not reason.is_failure:
            client.subscribe(subscription, qos=1)

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id="bench-ceiling",
        clean_session=False,
    )
    client.max_inflight_messages_set(0)
    client.username_pw_set(os.environ["BENCH_CEILING_USER"], os.environ["BENCH_CEILING_PASSWORD"])
    client.on_connect = on_connect
    client.on_subscribe = lambda *args: subscribed.set()
    client.on_message = on_message
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not subscribed.wait(10):
        return CeilingResult(0, 0.0, "the ceiling subscriber could not subscribe")
    print("READY", flush=True)
    cpu_before = time.process_time()
    error = None
    if not done.wait(timeout):
        error = f"the ceiling subscriber got {received} of {expected} messages in {timeout:.0f}s"
    result = CeilingResult(received, last, error, time.process_time() - cpu_before)
    # Leave no persistent subscription behind to queue the next phases' messages.
    client.unsubscribe(subscription)
    time.sleep(0.2)
    client.disconnect()
    client.loop_stop()
    return result


if __name__ == "__main__":
    port, expected, timeout, subscription, *ack_topic = sys.argv[1:]
    outcome = ceiling_main(
        int(port), int(expected), float(timeout), subscription, ack_topic[0] if ack_topic else None
    )
    print(json.dumps(asdict(outcome)), flush=True)
