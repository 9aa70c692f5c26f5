"""Ingest end to end: a real mosquitto with the deploy config, real SQLite and PostgreSQL."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from db.engine import make_engine
from db.models import Checkin, Run
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport import (
    CHECKIN_TOPIC,
    RUN_TOPIC,
    Mosquitto,
    Running,
    checkin_payload,
    device_client,
    register,
    run_payload,
    wait_until,
)


def test_run_in_miles_is_stored_in_metres_and_seconds_and_acked(running: Running) -> None:
    payload = run_payload(
        distance={"value": 6.2, "unit": "mi"},
        duration={"value": 0.9, "unit": "h"},
        cumulative_elevation_gain={"value": 300, "unit": "ft"},
    )
    running.device.publish(RUN_TOPIC, payload)
    ack = running.device.ack_for(payload["header"]["uuid"])
    assert ack == {"uuid": payload["header"]["uuid"], "status": "accepted", "errors": []}
    with running.engine.connect() as conn:
        run = conn.execute(select(Run)).one()
    assert run.distance_m == pytest.approx(6.2 * 1609.344)
    assert run.duration_s == pytest.approx(3240)
    assert run.elevation_gain_m == pytest.approx(91.44)
    assert run.start_time == datetime(2026, 11, 2, 6, 0, tzinfo=UTC)
    assert run.end_time == datetime(2026, 11, 2, 6, 50, tzinfo=UTC)
    assert run.cadence_spm == 172
    assert (run.hr_avg_bpm, run.hr_max_bpm, run.rpe) == (148, 171, 4)
    assert run.power_w == 260
    assert (run.athlete_id, run.device_id) == ("ann", "watch")
    assert run.source_name == "TestWatch 3"


def test_run_without_duration_uses_the_interval(running: Running) -> None:
    payload = run_payload()
    del payload["body"]["duration"]
    running.device.publish(RUN_TOPIC, payload)
    assert running.device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    with running.engine.connect() as conn:
        assert conn.execute(select(Run.duration_s)).scalar_one() == pytest.approx(3000)


def test_checkin_is_stored_with_symptoms_and_sites(running: Running) -> None:
    payload = checkin_payload(
        pain_score=6,
        pain_sites=[{"side": "right", "aspect": "lateral"}],
        symptoms={"swelling": True, "night_pain": True},
        ostrc={"q1": 1, "q2": 2, "q3": 0, "q4": 3},
    )
    running.device.publish(CHECKIN_TOPIC, payload)
    assert running.device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    with running.engine.connect() as conn:
        row = conn.execute(select(Checkin)).one()
    assert row.pain_score == 6
    assert row.pain_sites == [{"side": "right", "aspect": "lateral"}]
    assert (row.swelling, row.night_pain, row.locking) == (True, True, False)
    assert (row.ostrc_q1, row.ostrc_q2, row.ostrc_q3, row.ostrc_q4) == (1, 2, 0, 3)
    assert row.recorded_at == datetime(2026, 11, 2, 7, 0, tzinfo=UTC)
    assert row.context == "post_run"


def test_a_burst_over_plain_tcp_is_read_through_the_read_buffer(running: Running) -> None:
    """Fails if a paho release stops creating its socket where `ReadBufferedSocket` hooks in,
    rather than letting ingest silently fall back to paho's reads."""
    assert running.service.connection.buffered_reads
    payloads = [run_payload() for _ in range(300)]
    for payload in payloads:
        running.device.publish(RUN_TOPIC, payload)
    for payload in payloads:
        assert running.device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    assert running.count(Run) == 300


def test_same_uuid_twice_is_one_row_and_a_duplicate_ack(running: Running) -> None:
    payload = run_payload()
    uuid = payload["header"]["uuid"]
    running.device.publish(RUN_TOPIC, payload)
    assert running.device.ack_for(uuid)["status"] == "accepted"
    running.device.publish(RUN_TOPIC, payload)
    assert wait_until(lambda: len([a for a in running.device.acks() if a["uuid"] == uuid]) == 2, 10)
    statuses = [a["status"] for a in running.device.acks() if a["uuid"] == uuid]
    assert statuses == ["accepted", "duplicate"]
    assert running.count(Run) == 1


def test_duplicates_within_one_batch_store_one_row(running: Running) -> None:
    payload = json.dumps(run_payload()).encode()
    uuid = json.loads(payload)["header"]["uuid"]
    running.device.publish_many([(RUN_TOPIC, payload)] * 20)
    assert wait_until(
        lambda: len([a for a in running.device.acks() if a["uuid"] == uuid]) == 20, 10
    )
    statuses = sorted(a["status"] for a in running.device.acks() if a["uuid"] == uuid)
    assert statuses == ["accepted"] + ["duplicate"] * 19
    assert running.count(Run) == 1


def test_a_burst_is_stored_completely(running: Running) -> None:
    payloads = [run_payload() for _ in range(2000)]
    running.device.publish_many([(RUN_TOPIC, json.dumps(p).encode()) for p in payloads])
    assert wait_until(lambda: running.count(Run) == 2000, 60)
    assert wait_until(lambda: len(running.device.acks()) == 2000, 30)
    assert {a["status"] for a in running.device.acks()} == {"accepted"}


def test_stored_events_fire_after_commit(db_url: str, broker: Mosquitto) -> None:
    engine = make_engine(db_url)
    register(engine)
    settings = Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None)
    service = Service(settings, engine)
    seen: dict[str, list[tuple[str, int]]] = {"run": [], "checkin": []}

    def on_run(items: Any) -> None:
        with engine.connect() as conn:  # the row is visible to another connection
            for item in items:
                assert conn.execute(select(Run.uuid).where(Run.id == item.id)).scalar_one()
                seen["run"].append((item.uuid, item.id))

    service.events.run_stored.connect(on_run)
    service.events.checkin_stored.connect(
        lambda items: seen["checkin"].extend((i.uuid, i.id) for i in items)
    )
    service.start()
    assert service.connection.ready.wait(10)
    try:
        with device_client(broker.port) as device:
            run, checkin = run_payload(), checkin_payload()
            device.publish(RUN_TOPIC, run)
            device.publish(CHECKIN_TOPIC, checkin)
            device.publish(RUN_TOPIC, run)  # a duplicate fires nothing
            assert wait_until(lambda: len(device.acks()) == 3, 10)
    finally:
        service.stop()
    assert [u for u, _ in seen["run"]] == [run["header"]["uuid"]]
    assert [u for u, _ in seen["checkin"]] == [checkin["header"]["uuid"]]
