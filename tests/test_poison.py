"""No message can stop the pipeline: poison messages through the real broker and service.

A message that fails in any step is rejected on its own (dead letter, `rejected` ack naming the
field when there is one, acked to the broker) and the messages received with it go on. The
liveness property: after any generated sequence of hostile messages, a valid message published
next is acknowledged `accepted` and stored.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from db.models import Checkin, DeadLetter, Run
from testsupport import (
    CHECKIN_TOPIC,
    RUN_TOPIC,
    Running,
    checkin_payload,
    run_payload,
    wait_until,
)

EXTREME_TIMES = [
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-14:00",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59.999999+14:00",
    "1999-12-31T23:59:59Z",
    "2099-06-01T12:00:00Z",
    "2026-02-30T00:00:00Z",
    "2026-11-02T24:00:00Z",
    "2026-11-02T23:59:60Z",
    "2026-11-02T08:00:00+24:00",
    "2026-11-02T08:00:00-23:59",
    "2026-11-02T08:00:00.1234567891234+01:00",
    "+002026-11-02T08:00:00Z",
    "2026-11-02",
    "",
]


def _poison_checkin(field: str, value: str) -> dict[str, Any]:
    payload = checkin_payload(symptoms={"locking": True})
    if field == "date_time":
        payload["body"]["effective_time_frame"]["date_time"] = value
    else:
        payload["header"]["source_creation_date_time"] = value
    return payload


def test_poison_dates_are_rejected_by_field_and_the_rest_of_the_batch_is_stored(
    running: Running,
) -> None:
    """The reproduced jam: check-ins dated year 1 or 9999 with an offset passed validation,
    then failed converting to UTC, twice, and their batch was never acknowledged."""
    fields = {
        "date_time": "body.effective_time_frame.date_time",
        "source_creation_date_time": "header.source_creation_date_time",
    }
    locs: dict[str, str] = {}
    poison = []
    for _ in range(25):
        for field, loc in fields.items():
            for value in ("0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"):
                payload = _poison_checkin(field, value)
                locs[payload["header"]["uuid"]] = loc
                poison.append(payload)
    valid = [run_payload() for _ in range(20)]
    items = [(CHECKIN_TOPIC, json.dumps(p).encode()) for p in poison]
    items += [(RUN_TOPIC, json.dumps(p).encode()) for p in valid]
    running.device.publish_many(items)

    for payload in poison:
        ack = running.device.ack_for(payload["header"]["uuid"], timeout=30)
        assert ack["status"] == "rejected"
        [error] = ack["errors"]
        assert error["loc"] == locs[payload["header"]["uuid"]], ack
        assert "no UTC equivalent" in error["msg"]
    for payload in valid:
        assert running.device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    assert wait_until(lambda: running.count(DeadLetter) == len(poison), 10)
    assert running.count(Run) == len(valid)
    assert running.count(Checkin) == 0


def test_a_failure_no_check_foresaw_rejects_that_message_alone(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The class, not the case: whatever raises for one message in decoding, or again while its
    dead letter is made, that message is rejected and acked, and its neighbours are stored."""
    import ingest.messages as messages

    original = messages.checkin_row

    def fragile(device: Any, msg: Any, message: Any) -> dict[str, Any]:
        if msg.body.note == "poison":
            raise ArithmeticError("a bug that only this payload reaches")
        return original(device, msg, message)

    monkeypatch.setattr(messages, "checkin_row", fragile)
    before, after = checkin_payload(), checkin_payload()
    poison = checkin_payload(note="poison")
    running.device.publish_many(
        [(CHECKIN_TOPIC, json.dumps(p).encode()) for p in (before, poison, after)]
    )
    ack = running.device.ack_for(poison["header"]["uuid"])
    assert ack["status"] == "rejected"
    assert ack["errors"] == [
        {"loc": "", "msg": "the message could not be processed (ArithmeticError)"}
    ]
    assert running.device.ack_for(before["header"]["uuid"])["status"] == "accepted"
    assert running.device.ack_for(after["header"]["uuid"])["status"] == "accepted"
    assert wait_until(lambda: running.count(DeadLetter) == 1, 10)
    assert running.count(Checkin) == 2


def test_a_failing_insert_rejects_only_its_message(
    running: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while storing (not a database outage) dead-letters the one message that
    causes it and keeps the others of the batch."""
    from ingest import writer

    original = writer.Writer._insert_new

    def fragile(conn: Any, table: Any, rows: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
        if any(row.get("note") == "poison" for row in rows):
            raise OverflowError("date value out of range")
        return original(conn, table, rows)

    monkeypatch.setattr(writer.Writer, "_insert_new", staticmethod(fragile))
    payloads = [checkin_payload() for _ in range(5)]
    poison = checkin_payload(note="poison")
    payloads.insert(2, poison)
    running.device.publish_many([(CHECKIN_TOPIC, json.dumps(p).encode()) for p in payloads])
    assert running.device.ack_for(poison["header"]["uuid"])["status"] == "rejected"
    for payload in payloads:
        if payload is not poison:
            assert running.device.ack_for(payload["header"]["uuid"])["status"] == "accepted"
    assert running.count(Checkin) == 5


# --- the liveness property ------------------------------------------------------------------

TIME_PATHS = [
    ("header", "source_creation_date_time"),
    ("body", "effective_time_frame", "date_time"),
    ("body", "effective_time_frame", "time_interval", "start_date_time"),
    ("body", "effective_time_frame", "time_interval", "end_date_time"),
]
NUMBER_PATHS = [
    ("body", "pain_score"),
    ("body", "distance", "value"),
    ("body", "duration", "value"),
    ("body", "average_cadence"),
    ("body", "heart_rate", "average"),
    ("body", "ostrc", "q1"),
    ("body", "perceived_exertion"),
]
NUMBER_LITERALS = [
    "1e308",
    "-1e308",
    "1e400",
    "-0",
    "NaN",
    "Infinity",
    "9" * 400,
    "1" * 5000,
    "5e-324",
    str(2**64),
    "0." + "0" * 300 + "1",
]


def _set(document: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = document
    for key in path[:-1]:
        child = node.get(key)
        if not isinstance(child, dict):
            child = {}
            node[key] = child
        node = child
    node[path[-1]] = value


@st.composite
def hostile(draw: st.DrawFn) -> tuple[str, bytes]:
    topic = draw(st.sampled_from([RUN_TOPIC, CHECKIN_TOPIC]))
    document = run_payload() if topic == RUN_TOPIC else checkin_payload()
    kind = draw(st.sampled_from(["time", "number", "nesting", "size", "bytes", "mixed"]))
    marker = "__NUMBER__"
    literal = None
    if kind in ("time", "mixed"):
        for path in draw(st.lists(st.sampled_from(TIME_PATHS), min_size=1, max_size=4)):
            _set(document, path, draw(st.sampled_from(EXTREME_TIMES)))
    if kind in ("number", "mixed"):
        literal = draw(st.sampled_from(NUMBER_LITERALS))
        _set(document, draw(st.sampled_from(NUMBER_PATHS)), marker)
    text = json.dumps(document).replace(f'"{marker}"', literal or "0")
    if kind == "nesting":
        # Far past any parser's recursion limit, and within the broker's max_packet_size.
        depth = draw(st.integers(min_value=10, max_value=60_000))
        text = text[:-1] + ', "deep": ' + "[" * depth + "]" * depth + "}"
    if kind == "size":
        # Up to the broker's max_packet_size (128 KiB), beyond which it refuses the packet and
        # disconnects the sender (tests/test_floods.py); over 64 KiB the service rejects it.
        size = draw(st.integers(min_value=60 * 1024, max_value=120 * 1024))
        text = text[:-1] + ', "padding": "' + "x" * size + '"}'
    if kind == "bytes":
        return topic, draw(st.binary(max_size=2048))
    return topic, text.encode()


def test_after_any_hostile_sequence_a_valid_message_is_still_stored(running: Running) -> None:
    stored = 0

    @settings(
        max_examples=15,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(st.lists(hostile(), min_size=1, max_size=12))
    def liveness(messages: list[tuple[str, bytes]]) -> None:
        nonlocal stored
        valid = checkin_payload(pain_score=2)
        running.device.publish_many([*messages, (CHECKIN_TOPIC, json.dumps(valid).encode())])
        ack = running.device.ack_for(valid["header"]["uuid"], timeout=30)
        assert ack["status"] == "accepted", ack
        stored += 1
        assert wait_until(lambda: running.count(Checkin) >= stored, 10)
        with running.engine.connect() as conn:
            found = conn.execute(
                select(Checkin.id).where(Checkin.uuid == valid["header"]["uuid"])
            ).all()
        assert len(found) == 1

    liveness()
    assert running.service.writer.is_alive()
