"""A writer's backlog past `max_queued_bytes` goes to a file on disk and comes back in order:
the file alone (any sequence of puts and takes is a FIFO), the writer against real SQLite and
PostgreSQL (bounded memory, every message stored and acknowledged in the order it came), and the
service on a real broker."""

from __future__ import annotations

import json
import os
import stat
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select

from contract.topics import Topics
from db.models import Checkin, Run
from ingest.messages import Inbound
from ingest.spill import SpillFile
from ingest.writer import Writer
from testsupport import (
    CHECKIN_TOPIC,
    RUN_TOPIC,
    Mosquitto,
    checkin_payload,
    register,
    run_payload,
    running_service,
    wait_until,
)
from testsupport.recorder import Recorder

TOPICS = Topics("kneeguard/v1")
RECEIVED = datetime(2026, 11, 2, 9, 30, 0, 250_001, tzinfo=UTC)


messages = st.builds(
    Inbound,
    topic=st.text(min_size=1, max_size=40),
    payload=st.binary(max_size=3000),
    mid=st.integers(1, 65535),
    qos=st.integers(0, 2),
    received_at=st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
    ),
    retain=st.booleans(),
    connection=st.integers(0, 2**32 - 1),
)


@pytest.mark.parametrize("chunk", [1, 4096, 256 * 1024], ids=lambda c: f"written per {c} B")
@given(steps=st.lists(st.one_of(messages, st.integers(1, 50)), max_size=80))
def test_any_puts_and_takes_are_first_in_first_out(chunk: int, steps: list[Inbound | int]) -> None:
    """Messages (put) and take sizes, in any order: what comes back is what a deque gives,
    whether the records were written to the file or still gathered in memory."""
    spill = SpillFile()
    model: deque[Inbound] = deque()
    try:
        with patch("ingest.spill._WRITE_CHUNK", chunk):
            for step in steps:
                if isinstance(step, Inbound):
                    spill.put(step)
                    model.append(step)
                else:
                    expected = [model.popleft() for _ in range(min(step, len(model)))]
                    assert spill.take(step) == expected
                assert len(spill) == len(model)
            assert spill.take(len(model) + 1) == list(model)
            assert spill.size == 0 and len(spill) == 0
    finally:
        spill.close()


def test_a_record_larger_than_a_read_comes_back_whole() -> None:
    spill = SpillFile()
    try:
        big = Inbound("t", os.urandom(3 * 1024 * 1024), 7, 1, RECEIVED)
        small = Inbound("t", b"x", 8, 1, RECEIVED)
        spill.put(small)
        spill.put(big)
        spill.put(small)
        assert spill.take(10) == [small, big, small]
    finally:
        spill.close()


def test_the_file_has_no_name_is_the_owners_only_and_is_emptied_when_drained() -> None:
    spill = SpillFile()
    try:
        for mid in range(300):  # over one write chunk
            spill.put(Inbound("t", b"x" * 1000, mid, 1, RECEIVED))
        assert spill._fd is not None
        info = os.fstat(spill._fd)
        assert info.st_nlink == 0  # nothing on disk outlives the process
        assert stat.S_IMODE(info.st_mode) & 0o077 == 0
        assert info.st_size >= 256 * 1024
        assert [m.mid for m in spill.take(500)] == list(range(300))
        assert os.fstat(spill._fd).st_size == 0
    finally:
        spill.close()


def inbound(topic: str, payload: dict[str, Any], mid: int, qos: int = 1) -> Inbound:
    return Inbound(topic, json.dumps(payload).encode(), mid, qos, RECEIVED)


def test_past_the_bound_messages_wait_on_disk_and_are_stored_in_order(engine: Engine) -> None:
    register(engine)
    broker = Recorder()
    writer = Writer(engine, TOPICS, broker, max_queued_bytes=20_000, batch_size=50)
    sent = [
        inbound(CHECKIN_TOPIC if n % 10 == 0 else RUN_TOPIC, payload, n)
        for n, payload in (
            (n, checkin_payload() if n % 10 == 0 else run_payload()) for n in range(1, 301)
        )
    ]
    for message in sent:  # the writer is not started yet: all of it waits
        writer.submit(message)
        assert writer.queued_bytes <= 20_000
    assert writer.spilled > 250 and writer.queue_depth() >= 300
    # A QoS 0 message while the backlog is on disk is dropped, not queued behind it.
    writer.submit(inbound(RUN_TOPIC, run_payload(), 999, qos=0))
    assert writer.dropped_qos0 == 1

    writer.start()
    try:
        assert wait_until(lambda: len(broker.acked) == 300, 30), len(broker.acked)
        assert broker.acked == list(range(1, 301))  # in the order they came
        assert [answer["status"] for _, answer in broker.published] == ["accepted"] * 300
        assert writer.spill.size == 0 and writer.queue_depth() == 0
        # Caught up: the next message is queued in memory again.
        spilled = writer.spilled
        writer.submit(inbound(RUN_TOPIC, run_payload(), 301))
        assert wait_until(lambda: broker.acked[-1:] == [301], 10)
        assert writer.spilled == spilled
    finally:
        assert writer.stop()
    with engine.connect() as conn:
        runs = conn.execute(select(func.count()).select_from(Run)).scalar_one()
        checkins = conn.execute(select(func.count()).select_from(Checkin)).scalar_one()
    assert (runs, checkins) == (271, 30)


def test_without_room_on_disk_the_backlog_stays_in_memory_and_is_stored(
    engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    register(engine)
    broker = Recorder()
    spill = SpillFile(str(tmp_path / "missing"))
    writer = Writer(engine, TOPICS, broker, max_queued_bytes=2_000, spill=spill)
    with caplog.at_level("ERROR", logger="ingest.writer"), patch("ingest.spill._WRITE_CHUNK", 1):
        for mid in range(1, 21):  # each written at once, so each write fails
            writer.submit(inbound(RUN_TOPIC, run_payload(), mid))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and "cannot hold the backlog on disk" in said[0]
    assert writer.spilled == 0 and writer.queue_depth() == 20
    writer.start()
    try:
        assert wait_until(lambda: len(broker.acked) == 20, 20)
        assert broker.acked == list(range(1, 21))
    finally:
        assert writer.stop()


def test_the_service_holds_a_backlog_on_disk_and_loses_nothing(
    sqlite_url: str, broker: Mosquitto
) -> None:
    """On a real broker: with the writer held (as by a slow database) and a small bound, a burst
    of runs goes to disk; once the writer runs again every run is stored and answered."""
    with running_service(sqlite_url, broker) as running:
        writer = running.service.writer
        writer.max_queued_bytes = 16 * 1024
        held = threading.Event()
        held.set()
        writer.give_way_to, writer.max_give_way = held.is_set, 3600.0
        payloads = [run_payload() for _ in range(200)]
        running.device.publish_many([(RUN_TOPIC, json.dumps(p).encode()) for p in payloads])
        # The first batch waits in the writer; the rest is queued, most of it on disk.
        assert wait_until(lambda: writer.spilled >= 150, 20), writer.spilled
        assert writer.queued_bytes <= 16 * 1024
        time.sleep(0.2)
        held.clear()
        deadline = datetime.now(UTC) + timedelta(seconds=30)
        for payload in payloads:
            left = (deadline - datetime.now(UTC)).total_seconds()
            assert (
                running.device.ack_for(payload["header"]["uuid"], max(left, 0.1))["status"]
                == "accepted"
            )
        assert running.count(Run) == 200
        assert writer.spill.size == 0
