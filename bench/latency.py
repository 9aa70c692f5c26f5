"""Red-flag latency: publishing a locked-knee check-in → the athlete's email at the SMTP server.

The whole service runs as `kneeguard run` on PostgreSQL with the deploy broker config, while a
separate process publishes run messages in the background at a steady rate (2,000/s at full and
small scale). Each red flag is for a different athlete, so each opens a new urgent alert. The
clock is one process's monotonic clock: the publisher of the red flags and the SMTP server
(aiosmtpd, in this process) read the same one.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench.ingest import ServiceProcess
from db.engine import make_engine, session_factory
from kneeguard.admin.registry import Registry
from testsupport import (
    TEST_PASSWORD,
    TEST_USER,
    Mosquitto,
    SmtpSink,
    checkin_payload,
    run_payload,
    wait_until,
)

SIZES = {"tiny": (20, 200), "small": (200, 2000), "full": (200, 2000)}
PREFIX = "kneeguard/v1"


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def background(port: int, rate: int, stop: MPEvent) -> None:
    """Publish valid runs for athlete bg at `rate` per second until told to stop."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.username_pw_set(TEST_USER, TEST_PASSWORD)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    template = run_payload()
    raw = json.dumps(template)
    placeholder = template["header"]["uuid"]
    topic = f"{PREFIX}/bg/watch/run"
    tick = 0.01
    per_tick = max(1, int(rate * tick))
    next_at = time.monotonic()
    while not stop.is_set():
        for _ in range(per_tick):
            client.publish(topic, raw.replace(placeholder, str(uuidlib.uuid4())), qos=1)
        next_at += tick
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    client.disconnect()
    client.loop_stop()


def figures(scale: str) -> list[Figure]:
    flags, rate = SIZES[scale]
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres() as url:
        engine = make_engine(url)
        registry = Registry(session_factory(engine))
        registry.add_coach(coach_id="cora", name="Cora", email="cora@example.com")
        for athlete in ["bg"] + [f"a{i:04d}" for i in range(flags)]:
            registry.add_athlete(
                athlete_id=athlete,
                name=athlete,
                email=f"{athlete}@example.com",
                coach_id="cora",
                quiet_hours="off",
            )
            registry.add_device(athlete_id=athlete, device_id="watch")
        engine.dispose()
        broker = Mosquitto(Path(tmp) / "broker")
        broker.start()
        smtp = SmtpSink().start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
        env.update(
            KNEEGUARD_DATABASE_URL=url,
            KNEEGUARD_MQTT_URL=broker.url,
            KNEEGUARD_SMTP_URL=smtp.url,
            KNEEGUARD_LOG_LEVEL="INFO",
        )
        service = ServiceProcess(env, Path(tmp), args=("run",))  # the whole service
        stop = multiprocessing.get_context("spawn").Event()
        bg = multiprocessing.get_context("spawn").Process(
            target=background, args=(broker.port, rate, stop)
        )
        try:
            service.wait_subscribed()
            bg.start()
            time.sleep(2)
            client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
            client.username_pw_set(TEST_USER, TEST_PASSWORD)
            client.connect("127.0.0.1", broker.port)
            client.loop_start()
            sent: dict[str, float] = {}
            for i in range(flags):
                athlete = f"a{i:04d}"
                payload = checkin_payload(pain_score=2, symptoms={"locking": True})
                payload["body"]["effective_time_frame"]["date_time"] = datetime.now(UTC).isoformat()
                sent[f"{athlete}@example.com"] = time.monotonic()
                client.publish(f"{PREFIX}/{athlete}/watch/checkin", json.dumps(payload), qos=1)
                time.sleep(0.05)
            addresses = set(sent)

            def arrived() -> set[str]:
                # Envelope recipients, not parsed headers: this process also runs the SMTP
                # server, and re-parsing every message's To header on each poll competes with it.
                return {to for _, recipients in smtp.received for to in recipients}

            done = wait_until(lambda: addresses <= arrived(), 60, interval=0.1)
            stop.set()
            bg.join(30)
            client.disconnect()
            client.loop_stop()
            if not done:
                raise BenchError(f"only {len(smtp.messages)} emails arrived:\n{service.tail()}")
            latencies = []
            for received_at, recipients in smtp.received:
                for address in recipients:
                    if address in sent:
                        latencies.append((received_at - sent.pop(address)) * 1000)
            service.terminate()
        finally:
            stop.set()
            if bg.is_alive():
                bg.terminate()
            service.kill()
            smtp.stop()
            broker.stop()
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * len(latencies)) - 1)]
    say(f"{len(latencies)} red flags, background {rate} runs/s")
    return [
        Figure("redflag_latency_p50", statistics.median(latencies), "ms"),
        Figure("redflag_latency_p99", p99, "ms"),
        Figure("redflag_latency_max", latencies[-1], "ms"),
    ]
