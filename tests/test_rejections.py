"""Every kind of bad input: a `rejected` ack naming the problem, a dead letter, and the message
published right after it is still stored."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import Engine, select

from db.models import Checkin, DeadLetter, Run
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    RUN_TOPIC,
    Running,
    checkin_payload,
    run_payload,
    wait_until,
)

Build = Callable[[], tuple[str, bytes, str | None]]


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload).encode()


def _run(**body: Any) -> tuple[str, bytes, str | None]:
    payload = run_payload(**body)
    return RUN_TOPIC, _json(payload), payload["header"]["uuid"]


def _checkin(**body: Any) -> tuple[str, bytes, str | None]:
    payload = checkin_payload(**body)
    return CHECKIN_TOPIC, _json(payload), payload["header"]["uuid"]


def _interval(start: Any, end: Any) -> dict[str, Any]:
    return {"time_interval": {"start_date_time": start, "end_date_time": end}}


def _header(**header: Any) -> tuple[str, bytes, str | None]:
    payload = run_payload()
    payload["header"].update(header)
    for key, value in header.items():
        if value is None:
            del payload["header"][key]
    uuid = payload["header"].get("uuid")
    return RUN_TOPIC, _json(payload), uuid if uuid and len(uuid) == 36 else None


def _raw(topic: str, raw: bytes) -> tuple[str, bytes, str | None]:
    return topic, raw, None


def _nonfinite() -> tuple[str, bytes, str | None]:
    topic, payload, uuid = _run()
    return topic, payload.replace(b'"value": 10.0', b'"value": NaN'), uuid


def _huge_number() -> tuple[str, bytes, str | None]:
    topic, payload, uuid = _run()
    return topic, payload.replace(b'"value": 10.0', b'"value": 1e999'), uuid


def _checkin_on_run_topic() -> tuple[str, bytes, str | None]:
    payload = checkin_payload()
    return RUN_TOPIC, _json(payload), payload["header"]["uuid"]


def _unknown_device() -> tuple[str, bytes, str | None]:
    payload = run_payload()
    return f"{PREFIX}/ann/stranger/run", _json(payload), payload["header"]["uuid"]


def _other_athlete() -> tuple[str, bytes, str | None]:
    payload = run_payload()
    return f"{PREFIX}/bob/watch/run", _json(payload), payload["header"]["uuid"]


def _oversized() -> tuple[str, bytes, str | None]:
    # The uuid is echoed when it can be read, so the device knows which message was refused.
    payload = run_payload()
    payload["body"]["padding"] = "x" * (65 * 1024)
    return RUN_TOPIC, _json(payload), payload["header"]["uuid"]


def _oversized_garbage() -> tuple[str, bytes, str | None]:
    return RUN_TOPIC, b"{" + b"x" * (65 * 1024), None


def _duplicate_key() -> tuple[str, bytes, str | None]:
    payload = checkin_payload(pain_score=2)
    raw = _json(payload).replace(b'"pain_score": 2', b'"pain_score": 2, "pain_score": 9')
    return CHECKIN_TOPIC, raw, payload["header"]["uuid"]


@dataclass(frozen=True)
class Case:
    build: Build
    loc: str
    msg: str


CASES: dict[str, Case] = {
    "invalid JSON": Case(lambda: _raw(RUN_TOPIC, b'{"header": {'), "", "not valid JSON"),
    "invalid UTF-8": Case(lambda: _raw(RUN_TOPIC, b'{"a": "\xff\xfe"}'), "", "not valid UTF-8"),
    "non-object JSON": Case(lambda: _raw(RUN_TOPIC, b"[1, 2, 3]"), "", "must be a JSON object"),
    "deep nesting": Case(
        lambda: _raw(RUN_TOPIC, b"[" * 20000 + b"]" * 20000), "", "recursion limit"
    ),
    "empty payload": Case(lambda: _raw(CHECKIN_TOPIC, b""), "", "empty payload"),
    "over 64 KiB": Case(_oversized, "", "the limit is 65536"),
    "over 64 KiB, no uuid readable": Case(_oversized_garbage, "", "the limit is 65536"),
    "duplicate key": Case(_duplicate_key, "", "the key 'pain_score' twice in one object"),
    "missing uuid": Case(lambda: _header(uuid=None), "header.uuid", "Field required"),
    "malformed uuid": Case(lambda: _header(uuid="not-a-uuid"), "header.uuid", "pattern"),
    "naive time": Case(
        lambda: _run(effective_time_frame=_interval("2026-11-02T07:00:00", "2026-11-02T08:00:00")),
        "body.effective_time_frame.time_interval.start_date_time",
        "timezone",
    ),
    "unparsable time": Case(
        lambda: _run(effective_time_frame=_interval("yesterday", "2026-11-02T08:00:00Z")),
        "body.effective_time_frame.time_interval.start_date_time",
        "valid datetime",
    ),
    "naive creation time": Case(
        lambda: _header(source_creation_date_time="2026-11-02T08:00:00"),
        "header.source_creation_date_time",
        "timezone",
    ),
    "end before start": Case(
        lambda: _run(
            effective_time_frame=_interval("2026-11-02T08:00:00Z", "2026-11-02T07:00:00Z")
        ),
        "body.effective_time_frame.time_interval",
        "end_date_time must be after start_date_time",
    ),
    "negative distance": Case(
        lambda: _run(distance={"value": -5, "unit": "km"}),
        "body.distance.value",
        "greater than or equal to 0",
    ),
    "negative heart rate": Case(
        lambda: _run(heart_rate={"average": -120}),
        "body.heart_rate.average.value",
        "greater than 0",
    ),
    "NaN": Case(_nonfinite, "body.distance.value", "finite number"),
    "infinite number": Case(_huge_number, "body.distance.value", "finite number"),
    "unknown distance unit": Case(
        lambda: _run(distance={"value": 5, "unit": "furlong"}), "body.distance.unit", "'km'"
    ),
    "unknown duration unit": Case(
        lambda: _run(duration={"value": 5, "unit": "fortnight"}), "body.duration.unit", "'min'"
    ),
    "pain above 10": Case(
        lambda: _checkin(pain_score=11), "body.pain_score", "less than or equal to 10"
    ),
    "pain below 0": Case(
        lambda: _checkin(pain_score=-1), "body.pain_score", "greater than or equal to 0"
    ),
    "pain not an integer": Case(
        lambda: _checkin(pain_score=4.5), "body.pain_score", "valid integer"
    ),
    "pain as a string": Case(lambda: _checkin(pain_score="4"), "body.pain_score", "valid integer"),
    "unknown context": Case(lambda: _checkin(context="mid_run"), "body.context", "'post_run'"),
    "check-in on a run topic": Case(_checkin_on_run_topic, "header.schema_id", "run topic"),
    "unknown device": Case(_unknown_device, "topic", "not registered"),
    "another athlete's topic": Case(_other_athlete, "topic", "not registered"),
    "note over 1000 characters": Case(
        lambda: _checkin(note="n" * 1001), "body.note", "at most 1000 characters"
    ),
    "NUL in a note": Case(lambda: _checkin(note="sore\u0000knee"), "body.note", "NUL"),
    "unknown pain site": Case(
        lambda: _checkin(pain_sites=[{"side": "left", "aspect": "inside"}]),
        "body.pain_sites.0.aspect",
        "'lateral'",
    ),
    "symptom not a boolean": Case(
        lambda: _checkin(symptoms={"locking": "yes"}), "body.symptoms.locking", "valid boolean"
    ),
    "OSTRC option out of range": Case(
        lambda: _checkin(ostrc={"q1": 4, "q2": 0, "q3": 0, "q4": 0}),
        "body.ostrc.q1",
        "less than or equal to 3",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_rejected_dead_lettered_and_harms_nothing(name: str, running: Running) -> None:
    case = CASES[name]
    topic, payload, uuid = case.build()
    before = run_payload()
    after = checkin_payload()
    running.device.publish(RUN_TOPIC, before)
    running.device.publish(topic, payload)
    running.device.publish(CHECKIN_TOPIC, after)

    ack = running.device.ack_for(uuid)
    assert ack["status"] == "rejected"
    assert ack["errors"], ack
    assert any(e["loc"] == case.loc and case.msg in e["msg"] for e in ack["errors"]), ack
    assert running.device.ack_for(after["header"]["uuid"])["status"] == "accepted"
    assert running.device.ack_for(before["header"]["uuid"])["status"] == "accepted"

    with running.engine.connect() as conn:
        dead = conn.execute(select(DeadLetter)).one()
        runs = conn.execute(select(Run.uuid)).scalars().all()
        checkins = conn.execute(select(Checkin.uuid)).scalars().all()
    assert dead.topic == topic
    assert case.msg in dead.reason
    assert dead.payload == payload[:4096]
    assert dead.payload_size == len(payload)
    assert dead.uuid == uuid
    assert runs == [before["header"]["uuid"]]
    assert checkins == [after["header"]["uuid"]]


def test_malformed_topic_is_dead_lettered_without_an_ack(running: Running) -> None:
    payload = run_payload()
    running.device.publish(f"{PREFIX}/ann/bad.id/run", payload)
    running.device.publish(RUN_TOPIC, after := run_payload())
    assert running.device.ack_for(after["header"]["uuid"])["status"] == "accepted"
    assert wait_until(lambda: _dead_letters(running.engine) == 1, 5)
    with running.engine.connect() as conn:
        dead = conn.execute(select(DeadLetter)).one()
    assert dead.athlete_id is None
    assert "device id in topic" in dead.reason
    assert all(a["uuid"] != payload["header"]["uuid"] for a in running.device.acks())


def _dead_letters(engine: Engine) -> int:
    with engine.connect() as conn:
        return len(conn.execute(select(DeadLetter.id)).all())
