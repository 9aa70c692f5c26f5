"""The ingest writer's storage paths, against real SQLite and PostgreSQL.

Each backend has its own bulk insert (COPY into a staging table on PostgreSQL, the driver's
`executemany` on SQLite); these tests hold both to the same results: what is stored, which ids
come back for which uuid, and what counts as a duplicate.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine, event, func, select
from sqlalchemy.dialects import sqlite

from contract.topics import Topics
from db.engine import make_engine
from db.migrate import upgrade
from db.models import Checkin, DeadLetter, Run
from db.types import UTCDateTime, sqlite_datetime_text
from ingest.messages import Inbound
from ingest.mqtt import ReadBufferedSocket
from ingest.writer import Writer
from testsupport import CHECKIN_TOPIC, RUN_TOPIC, checkin_payload, register, run_payload, wait_until
from testsupport.recorder import Recorder

TOPICS = Topics("kneeguard/v1")
RECEIVED = datetime(2026, 11, 2, 9, 30, 0, 250_000, tzinfo=UTC)


def inbound(topic: str, payload: dict[str, Any], mid: int) -> Inbound:
    return Inbound(topic, json.dumps(payload).encode(), mid, 1, RECEIVED)


@pytest.fixture
def writer(engine: Engine) -> Writer:
    register(engine)
    return Writer(engine, TOPICS, Recorder())


def stored_ids(engine: Engine, model: type[Run] | type[Checkin]) -> dict[str, int]:
    with engine.connect() as conn:
        return {uuid: row_id for uuid, row_id in conn.execute(select(model.uuid, model.id))}


def test_a_mixed_batch_returns_the_id_of_each_stored_row(writer: Writer, engine: Engine) -> None:
    runs = [run_payload() for _ in range(5)]
    checkins = [checkin_payload(pain_sites=[{"side": "left", "aspect": "lateral"}])]
    batch = [inbound(RUN_TOPIC, p, i) for i, p in enumerate(runs, 1)]
    batch.insert(2, inbound(CHECKIN_TOPIC, checkins[0], 99))
    outcomes = writer.store_batch(batch)
    assert [o.message.mid for o in outcomes] == [m.mid for m in batch]
    assert {o.status for o in outcomes} == {"accepted"}
    run_ids = stored_ids(engine, Run)
    checkin_ids = stored_ids(engine, Checkin)
    for outcome in outcomes:
        assert outcome.stored is not None
        ids = run_ids if outcome.stored.kind.value == "run" else checkin_ids
        assert ids[outcome.stored.uuid] == outcome.stored.id
    with engine.connect() as conn:
        checkin = conn.execute(select(Checkin)).one()
    assert checkin.pain_sites == [{"side": "left", "aspect": "lateral"}]
    assert checkin.received_at == RECEIVED


def test_rows_already_stored_are_duplicates_and_new_ones_get_their_own_ids(
    writer: Writer, engine: Engine
) -> None:
    old = [run_payload() for _ in range(3)]
    writer.store_batch([inbound(RUN_TOPIC, p, i) for i, p in enumerate(old, 1)])
    before = stored_ids(engine, Run)
    new = [run_payload() for _ in range(4)]
    mixed = [old[1], new[0], old[0], new[1], new[2], old[2], new[3]]
    outcomes = writer.store_batch([inbound(RUN_TOPIC, p, i) for i, p in enumerate(mixed, 10)])
    statuses = [o.status for o in outcomes]
    dup, new_ = "duplicate", "accepted"
    assert statuses == [dup, new_, dup, new_, new_, dup, new_]
    after = stored_ids(engine, Run)
    assert len(after) == 7
    assert {u: after[u] for u in before} == before
    for outcome in outcomes:
        if outcome.stored is not None:
            assert after[outcome.stored.uuid] == outcome.stored.id
            assert outcome.stored.id > max(before.values())


def test_a_batch_of_only_duplicates_stores_nothing(writer: Writer, engine: Engine) -> None:
    payload = run_payload()
    writer.store_batch([inbound(RUN_TOPIC, payload, 1)])
    outcomes = writer.store_batch([inbound(RUN_TOPIC, payload, 2)])
    assert [o.status for o in outcomes] == ["duplicate"]
    assert len(stored_ids(engine, Run)) == 1


def test_stored_times_compare_with_times_bound_by_sqlalchemy(
    writer: Writer, engine: Engine
) -> None:
    """Rows written by the bulk path and bounds bound by SQLAlchemy meet exactly: an instant
    equal to the stored start is found by >=, <= and ==, whatever offset it was sent with."""
    start = datetime(2026, 11, 2, 7, 0, tzinfo=timezone(timedelta(hours=1)))
    payload = run_payload(
        effective_time_frame={
            "time_interval": {
                "start_date_time": start.isoformat(),
                "end_date_time": (start + timedelta(minutes=40)).isoformat(),
            }
        }
    )
    writer.store_batch([inbound(RUN_TOPIC, payload, 1)])
    instant = start.astimezone(UTC)
    with engine.connect() as conn:
        for condition in (
            Run.start_time == instant,
            Run.start_time >= instant,
            Run.start_time <= instant,
        ):
            assert conn.execute(select(Run.id).where(condition)).all(), condition
        assert not conn.execute(select(Run.id).where(Run.start_time > instant)).all()
        assert conn.execute(select(Run.start_time)).scalar_one() == instant


@given(
    st.datetimes(
        min_value=datetime(1000, 1, 2),
        max_value=datetime(9999, 12, 30),
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone.min]),
    )
)
def test_sqlite_datetime_text_is_what_sqlalchemy_stores(value: datetime) -> None:
    dialect = sqlite.dialect()
    column = UTCDateTime()
    bound = column.process_bind_param(value, dialect)
    process = sqlite.DATETIME().bind_processor(dialect)  # type: ignore[no-untyped-call]
    assert process is not None
    assert sqlite_datetime_text(value) == process(bound)


def test_sqlite_datetime_text_refuses_naive_times() -> None:
    with pytest.raises(ValueError, match="naive"):
        sqlite_datetime_text(datetime(2026, 11, 2, 7, 0))


def test_read_buffered_socket_serves_packets_from_one_read() -> None:
    left, right = socket.socketpair()
    try:
        right.setblocking(False)
        reader = ReadBufferedSocket(right)
        publish = b"\x32\x05" + b"topic"
        puback = b"\x40\x02\x00\x07"
        left.sendall(publish + puback)
        # paho's pattern: one command byte, the length bytes, then the rest.
        assert reader.recv(1) == b"\x32"
        assert reader.pending() == len(publish + puback) - 1
        assert reader.recv(1) == b"\x05"
        assert reader.recv(5) == b"topic"
        assert reader.recv(1) == b"\x40"
        assert reader.recv(1) == b"\x02"
        assert reader.recv(10) == b"\x00\x07"  # a short read, as a socket may give
        assert reader.pending() == 0
        with pytest.raises(BlockingIOError):
            reader.recv(1)
        assert reader.fileno() == right.fileno()
        left.close()
        assert reader.recv(1) == b""  # end of stream reaches paho as from a socket
    finally:
        left.close()
        right.close()


# --- when the database is away ----------------------------------------------------------------


def test_a_locked_database_is_waited_for_not_dead_lettered(sqlite_url: str) -> None:
    """SQLite locked by another writer: the bulk insert's driver error means "try again", so
    the writer holds the batch unacknowledged and stores all of it once the lock is gone, in
    order, with nothing kept as a dead letter."""
    engine = make_engine(sqlite_url)

    @event.listens_for(engine, "connect")
    def short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        # After the engine's own pragmas: give up on a locked database after 50 ms, not 30 s.
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    upgrade(engine)
    register(engine)
    broker = Recorder()
    writer = Writer(engine, TOPICS, broker, batch_size=5, retry_initial=0.05)
    writer.start()
    blocker = sqlite3.connect(engine.url.database or "", isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        for mid in range(1, 8):
            writer.submit(inbound(RUN_TOPIC, run_payload(), mid))
        time.sleep(0.5)
        assert broker.acked == [], "acknowledged while the database was locked"
        blocker.execute("ROLLBACK")
        assert wait_until(lambda: len(broker.acked) == 7, 10)
        assert broker.acked == list(range(1, 8))
        assert [p["status"] for _, p in broker.published] == ["accepted"] * 7
        assert len(stored_ids(engine, Run)) == 7
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
    finally:
        blocker.close()
        assert writer.stop()
        engine.dispose()


def test_runs_give_way_while_a_red_flag_is_sent_and_never_for_long(engine: Engine) -> None:
    """While `give_way_to` says a red flag's deliveries are under way, a batch waits
    unacknowledged, then is stored as usual; if the urgent work outlasts `max_give_way`, the
    batch is stored anyway, so runs are delayed, never starved or lost."""
    register(engine)
    broker = Recorder()
    urgent = threading.Event()
    urgent.set()
    writer = Writer(engine, TOPICS, broker, give_way_to=urgent.is_set, max_give_way=5.0)
    writer.start()
    try:
        writer.submit(inbound(RUN_TOPIC, run_payload(), 1))
        time.sleep(0.5)
        assert broker.acked == [], "a run was stored while a red flag was being sent"
        urgent.clear()
        assert wait_until(lambda: broker.acked == [1], 5)

        writer.max_give_way = 0.2
        urgent.set()
        started = time.monotonic()
        writer.submit(inbound(RUN_TOPIC, run_payload(), 2))
        assert wait_until(lambda: broker.acked == [1, 2], 5)
        assert time.monotonic() - started >= 0.2
        assert len(stored_ids(engine, Run)) == 2
        assert writer.gave_way_seconds >= 0.2 + 0.5
    finally:
        urgent.clear()
        assert writer.stop()
