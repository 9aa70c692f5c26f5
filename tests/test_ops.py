"""What operators see: `/readyz`, `/metrics`, `kneeguard health`, the retained service status
(birth and last will) and `kneeguard deadletters list`, against a real service, broker and
databases.

`/readyz` must turn unready when the database is cut (TCP proxy), the broker goes away or the
writer or outbox thread dies, and ready again when the first two come back.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import make_url

from db.engine import make_engine
from db.models import DeadLetter
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    DeviceClient,
    Mosquitto,
    SmtpSink,
    TcpProxy,
    assert_user_error,
    checkin_payload,
    device_client,
    free_port,
    kneeguard,
    register,
    service,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(120)]

STATUS_TOPIC = f"{PREFIX}/service/status"


@dataclass
class Running:
    service: Service
    base: str
    web_bind: str

    def readyz(self) -> tuple[int, list[str]]:
        response = httpx.get(f"{self.base}/readyz", timeout=15)
        return response.status_code, response.json()["reasons"]

    def ready(self) -> bool:
        return self.readyz()[0] == 200

    def unready_because(self, word: str) -> bool:
        code, reasons = self.readyz()
        return code == 503 and any(word in reason for reason in reasons)

    def metrics(self) -> str:
        response = httpx.get(f"{self.base}/metrics", timeout=15)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
        return response.text


@contextmanager
def running(
    db_url: str, broker_url: str, smtp: SmtpSink, only: str | None = None
) -> Iterator[Running]:
    bind = f"127.0.0.1:{free_port()}"
    settings = Settings(
        database_url=db_url,
        mqtt_url=broker_url,
        smtp_url=smtp.url,
        web_bind=bind,
        public_url=f"http://{bind}",
        _env_file=None,
    )
    engine = make_engine(db_url)
    svc = Service(settings, engine, only=only, serve_web=True, first_run_delay=timedelta(hours=1))
    svc.start()
    try:
        assert wait_until(lambda: svc.web is not None and svc.web.started, 15)
        run = Running(svc, f"http://{bind}", bind)
        assert wait_until(run.ready, 20), run.readyz()
        yield run
    finally:
        svc.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_readyz_follows_the_database_the_broker_and_the_threads(
    db_url: str, broker: Mosquitto, smtp: SmtpSink
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    target = make_url(db_url)
    with TcpProxy(target.host or "127.0.0.1", target.port or 5432) as proxy:
        proxied = target.set(port=proxy.port).render_as_string(hide_password=False)
        with running(proxied, broker.url, smtp) as run:
            health = kneeguard(proxied, "health", KNEEGUARD_WEB_BIND=run.web_bind)
            assert health.returncode == 0 and health.stdout.strip() == "ready", health

            proxy.cut()
            assert wait_until(lambda: run.unready_because("database"), 20), run.readyz()
            health = kneeguard(proxied, "health", KNEEGUARD_WEB_BIND=run.web_bind)
            assert_user_error(health, 1, "not ready: database")
            proxy.restore()
            assert wait_until(run.ready, 30), run.readyz()

            broker.stop()
            assert wait_until(lambda: run.unready_because("broker"), 20), run.readyz()
            broker.start()
            assert wait_until(run.ready, 30), run.readyz()

            # Still ingesting after all that.
            with device_client(broker.port) as device:
                payload = checkin_payload()
                device.publish(CHECKIN_TOPIC, payload)
                assert device.ack_for(payload["header"]["uuid"], 20)["status"] == "accepted"

            run.service.worker.stop()
            assert wait_until(lambda: run.unready_because("outbox"), 10), run.readyz()
            # The writer's own end-of-work mark ends its thread, as a crash in it would.
            run.service.writer._queue.put(None)
            assert wait_until(lambda: run.unready_because("writer"), 10), run.readyz()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_ingest_replica_serves_the_operators_endpoints_and_nothing_else(
    db_url: str, broker: Mosquitto, smtp: SmtpSink
) -> None:
    """`kneeguard run --only ingest` has no web app, but its readiness and metrics are served,
    so `kneeguard health` and the monitoring work for every replica."""
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    with running(db_url, broker.url, smtp, only="ingest") as run:
        health = kneeguard(db_url, "health", KNEEGUARD_WEB_BIND=run.web_bind)
        assert health.returncode == 0 and health.stdout.strip() == "ready", health
        assert "kneeguard_" in run.metrics()
        for path in ("/coach", "/api/v1/athletes", "/openapi.json"):
            assert httpx.get(f"{run.base}{path}", timeout=15).status_code == 404, path
        run.service.writer._queue.put(None)
        assert wait_until(lambda: run.unready_because("writer"), 10), run.readyz()
        health = kneeguard(db_url, "health", KNEEGUARD_WEB_BIND=run.web_bind)
        assert_user_error(health, 1, "not ready")


def test_health_without_a_running_service_says_so(sqlite_url: str) -> None:
    bind = f"127.0.0.1:{free_port()}"
    result = kneeguard(sqlite_url, "health", "--timeout", "2", KNEEGUARD_WEB_BIND=bind)
    assert_user_error(result, 1, "not ready: no answer from http://127.0.0.1:")


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text (0 when absent)."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        sample, _, value = line.rpartition(" ")
        sample_name, _, sample_labels = sample.partition("{")
        got = ",".join(sorted(sample_labels.rstrip("}").split(","))) if sample_labels else ""
        if sample_name == name and got == wanted:
            return float(value)
    return 0.0


def test_metrics_count_messages_batches_alerts_and_deliveries(
    db_url: str, broker: Mosquitto, smtp: SmtpSink
) -> None:
    engine = make_engine(db_url)
    register(engine)
    engine.dispose()
    with running(db_url, broker.url, smtp) as run, device_client(broker.port) as device:
        locked = checkin_payload(pain_score=3, symptoms={"locking": True})
        fine = checkin_payload()
        bad = checkin_payload(pain_score=42)
        for payload in (locked, fine, fine, bad):
            device.publish(CHECKIN_TOPIC, payload)
        for payload in (locked, fine, bad):
            device.ack_for(payload["header"]["uuid"], 20)
        assert wait_until(lambda: len(device.acks()) == 4, 20)
        assert wait_until(lambda: len(smtp.messages) >= 1, 20)
        text = run.metrics()
        assert metric(text, "kneeguard_messages_received_total", kind="checkin") == 4
        stored = metric(text, "kneeguard_messages_total", kind="checkin", outcome="stored")
        assert stored == 2
        assert metric(text, "kneeguard_messages_total", kind="checkin", outcome="duplicate") == 1
        assert metric(text, "kneeguard_messages_total", kind="checkin", outcome="rejected") == 1
        assert metric(text, "kneeguard_writer_batch_seconds_count") >= 1
        assert "kneeguard_writer_queue_depth 0.0" in text
        assert "kneeguard_rule_sweep_seconds_count 0.0" in text
        assert "kneeguard_qos0_dropped_total 0.0" in text
        assert "kneeguard_rejections_not_stored_total 0.0" in text
        assert "kneeguard_answers_not_sent_total 0.0" in text
        opened = [
            line for line in text.splitlines() if line.startswith("kneeguard_alerts_opened_total{")
        ]
        assert any('severity="urgent"' in line for line in opened), text
        assert wait_until(
            lambda: (
                metric(run.metrics(), "kneeguard_deliveries", channel="email", status="sent") >= 1
            ),
            20,
        )
        run.service.sweep()
        assert metric(run.metrics(), "kneeguard_rule_sweep_seconds_count") == 1


def test_service_status_is_retained_online_then_offline_on_stop_and_on_a_crash(
    sqlite_url: str, broker: Mosquitto
) -> None:
    def status_now() -> list[bytes]:
        """What a client subscribing now receives (the retained status)."""
        watcher = DeviceClient(broker.port, subscribe=(STATUS_TOPIC,))
        try:
            wait_until(lambda: bool(watcher.received), 3)
            return [payload for _, payload in watcher.received]
        finally:
            watcher.close()

    with service(sqlite_url, broker.url) as proc:
        proc.wait_subscribed()
        assert wait_until(lambda: status_now() == [b"online"], 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    assert status_now() == [b"offline"]

    with service(sqlite_url, broker.url) as proc:
        proc.wait_subscribed()
        assert wait_until(lambda: status_now() == [b"online"], 10)
        proc.signal(signal.SIGKILL)
        proc.wait()
    # The last will: the broker publishes it when the connection drops without a DISCONNECT.
    assert wait_until(lambda: status_now() == [b"offline"], 10)


def test_deadletters_list(db_url: str) -> None:
    engine = make_engine(db_url)
    register(engine)
    now = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {
            "received_at": now + timedelta(minutes=i),
            "topic": f"{PREFIX}/{athlete}/watch/checkin",
            "athlete_id": athlete,
            "device_id": "watch",
            "uuid": f"00000000-0000-4000-8000-00000000000{i}",
            "reason": reason,
            "payload": b"{}",
            "payload_size": 2,
        }
        for i, (athlete, reason) in enumerate(
            [
                ("ann", "body.pain_score: must be 0 to 10"),
                ("bob", "not JSON"),
                ("ann", "header.schema_id.namespace: x\n2026-12-01 forged\x1b[2K\u202e"),
            ]
        )
    ]
    with engine.begin() as conn:
        conn.execute(insert(DeadLetter), rows)
    engine.dispose()

    listed = kneeguard(db_url, "deadletters", "list", "--athlete", "ann", "--json")
    assert listed.returncode == 0, listed
    document = json.loads(listed.stdout)
    assert [row["uuid"][-1] for row in document] == ["2", "0"]  # newest first, only ann's
    assert document[1]["reason"] == "body.pain_score: must be 0 to 10"
    assert set(document[0]) == {
        "id",
        "received_at",
        "topic",
        "athlete_id",
        "device_id",
        "uuid",
        "size",
        "reason",
    }

    table = kneeguard(db_url, "deadletters", "list")
    assert table.returncode == 0, table
    lines = table.stdout.splitlines()
    assert len(lines) == 4  # header and three rows: the forged newline stayed escaped
    assert "\x1b" not in table.stdout and "\u202e" not in table.stdout
    assert "x\\x0a2026-12-01 forged" in table.stdout
    assert "bob" in table.stdout

    none = kneeguard(db_url, "deadletters", "list", "--athlete", "nobody", "--json")
    assert json.loads(none.stdout) == []
