"""Turning one raw MQTT message into either a row to store or a rejection, with no I/O."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import jiter
from pydantic import BaseModel, ValidationError

from contract.bounds import (
    FASTEST_PACE_S_PER_KM,
    MAX_AHEAD,
    MAX_MOVING_TIME_S,
    MAX_RUN_DISTANCE_M,
    PACE_CHECK_FROM_M,
)
from contract.topics import DeviceTopic, Kind, TopicError, Topics
from ingest.schemas import (
    CHECKIN_SCHEMA,
    MAX_RUN_SECONDS,
    NIL_UUID,
    RUN_AS_DICTS,
    RUN_SCHEMA,
    UUID_RE,
    CadenceDict,
    CheckinMessage,
    HeartRateValueDict,
    RunMessage,
    wire_time_in_utc,
)
from ingest.units import to_metres, to_seconds

MAX_PAYLOAD: Final = 64 * 1024
DEAD_LETTER_PAYLOAD: Final = 4 * 1024
MAX_ERRORS: Final = 20

Status = Literal["accepted", "duplicate", "rejected"]


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message as received from the broker, free of paho types."""

    topic: str
    payload: bytes
    mid: int
    qos: int
    received_at: datetime
    # The broker's retain flag: a retained copy comes back on every subscribe, even after the
    # athlete was erased, so it is never stored (DESIGN.md, version 2).
    retain: bool = False
    # Which of its client's connections it came on (`MqttConnection`): its packet id means
    # something on that connection only.
    connection: int = 0


@dataclass(frozen=True, slots=True)
class WireError:
    """One problem with a payload: where (`body.pain_score`) and what."""

    loc: str
    msg: str

    def as_dict(self) -> dict[str, str]:
        return {"loc": self.loc, "msg": self.msg}


@dataclass(frozen=True, slots=True)
class Valid:
    """A well-formed message from a well-formed topic; the device is not yet checked."""

    device: DeviceTopic
    uuid: str
    row: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Invalid:
    """A message that will be refused. `device` is set when the topic names one."""

    device: DeviceTopic | None
    uuid: str | None
    errors: tuple[WireError, ...]

    @property
    def reason(self) -> str:
        return describe_errors(self.errors)


def describe_errors(errors: tuple[WireError, ...]) -> str:
    """The errors as one line: `body.pain_score: ...; header.uuid: ...`."""
    return "; ".join(f"{e.loc}: {e.msg}" if e.loc else e.msg for e in errors)


RETAINED = "retained publishes are not stored; publish with the retain flag off"


def decode(topics: Topics, message: Inbound) -> Valid | Invalid:
    """Parse the topic, validate the payload and convert it to the stored units.

    Never raises: whatever a device sends, the answer is a row to store or a rejection. A failure
    no check foresaw becomes a rejection of this message alone, so that it cannot hold up the
    messages received with it.
    """
    try:
        device = topics.parse(message.topic)
    except TopicError as exc:
        return Invalid(None, None, (WireError("topic", str(exc)),))
    except Exception as exc:
        return Invalid(None, None, (unprocessable(exc),))
    if message.retain:
        return Invalid(
            device,
            readable_uuid(message.payload),
            (WireError("retain", RETAINED),),
        )
    try:
        return _decode_payload(device, message)
    except Exception as exc:
        return Invalid(device, readable_uuid(message.payload), (unprocessable(exc),))


def unprocessable(exc: BaseException) -> WireError:
    """The error of a message that failed where no check expected it; only the exception's type
    is named, since its text may quote the payload."""
    return WireError("", f"the message could not be processed ({type(exc).__name__})")


def readable_uuid(payload: bytes) -> str | None:
    """`header.uuid` of a payload that is otherwise refused, when it can be read at all."""
    try:
        raw = _lenient_json(payload.decode("utf-8"))
    except Exception:
        return None
    header = raw.get("header") if isinstance(raw, dict) else None
    uuid = header.get("uuid") if isinstance(header, dict) else None
    if isinstance(uuid, str) and _is_uuid(uuid):
        return uuid.lower()
    return None


def _decode_payload(device: DeviceTopic, message: Inbound) -> Valid | Invalid:
    payload = message.payload
    if not payload:
        return Invalid(device, None, (WireError("", "empty payload"),))
    if len(payload) > MAX_PAYLOAD:
        # The broker's packet limit bounds what is read here; the device learns which of its
        # messages was refused whenever the uuid can be read.
        return Invalid(
            device,
            readable_uuid(payload),
            (WireError("", f"payload is {len(payload)} bytes; the limit is {MAX_PAYLOAD}"),),
        )
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Invalid(
            device, None, (WireError("", f"payload is not valid UTF-8 (byte {exc.start})"),)
        )
    if device.kind is Kind.RUN:
        valid = _run_as_dicts(device, message, text)
        if valid is not None:
            return valid
    return _decode_model(device, message, text)


def _decode_model(device: DeviceTopic, message: Inbound, text: str) -> Valid | Invalid:
    """Validation by the wire models, which say what is wrong with a payload."""
    payload = message.payload
    model: type[RunMessage | CheckinMessage] = (
        RunMessage if device.kind is Kind.RUN else CheckinMessage
    )
    try:
        parsed = model.model_validate_json(text)
    except ValidationError as exc:
        return _invalid(device, text, exc)
    duplicate = _duplicate_key(payload, text)
    if duplicate is not None:
        return Invalid(device, parsed.header.uuid.lower(), (duplicate,))
    # JSON escapes can smuggle in what no database column can hold; the escape is in the text
    # whenever the decoded value is, so only such payloads pay for the walk.
    if "\\u" in text and _SUSPECT_ESCAPE.search(text):
        unstorable = _first_unstorable(parsed)
        if unstorable is not None:
            return Invalid(device, parsed.header.uuid.lower(), (unstorable,))
    uuid = parsed.header.uuid.lower()
    if isinstance(parsed, RunMessage):
        row = run_row(device, parsed, message)
        implausible = _implausible_times(parsed, message.received_at) + _implausible_run(
            row, parsed.body.duration is not None
        )
    else:
        row = checkin_row(device, parsed, message)
        implausible = _implausible_times(parsed, message.received_at)
    if implausible:
        return Invalid(device, uuid, implausible)
    return Valid(device, uuid, row)


def _run_as_dicts(device: DeviceTopic, message: Inbound, text: str) -> Valid | None:
    """A run validated as plain dicts (`RUN_AS_DICTS`) with the models' remaining checks done
    here; None for anything they do not all accept, which the models then decode and name.

    For every run this accepts, the models give the same row (tests/test_wire.py).
    """
    try:
        raw = RUN_AS_DICTS.validate_json(text)
    except ValidationError:
        return None
    header = raw["header"]
    body = raw["body"]
    uuid = header["uuid"]
    schema = header.get("schema_id")
    if uuid == NIL_UUID or (
        schema is not None and (schema["namespace"], schema["name"]) != RUN_SCHEMA
    ):
        return None
    interval = body["effective_time_frame"]["time_interval"]
    try:
        created = wire_time_in_utc(header["source_creation_date_time"])
        start = wire_time_in_utc(interval["start_date_time"])
        end = wire_time_in_utc(interval["end_date_time"])
    except ValueError:
        return None
    if end <= start or (end - start).total_seconds() > MAX_RUN_SECONDS:
        return None
    if max(created, end) > message.received_at + MAX_AHEAD:
        return None
    if _duplicate_key(message.payload, text) is not None or (
        "\\u" in text and _SUSPECT_ESCAPE.search(text)
    ):
        return None
    duration = body.get("duration")
    elevation = body.get("cumulative_elevation_gain")
    cadence = body.get("average_cadence")
    hr = body.get("heart_rate") or {}
    dyn = body.get("running_dynamics") or {}
    provenance = header.get("acquisition_provenance") or {}
    row: dict[str, Any] = {
        "uuid": uuid.lower(),
        "modality": header.get("modality"),
        "source_name": provenance.get("source_name"),
        "source_data_point_id": provenance.get("source_data_point_id"),
        "source_created_at": created,
        "received_at": message.received_at,
        "athlete_id": device.athlete_id,
        "device_id": device.device_id,
        "start_time": start,
        "end_time": end,
        "distance_m": to_metres(body["distance"]["value"], body["distance"]["unit"]),
        "duration_s": (
            to_seconds(duration["value"], duration["unit"])
            if duration is not None
            else (end - start).total_seconds()
        ),
        "elevation_gain_m": (
            to_metres(elevation["value"], elevation["unit"]) if elevation is not None else None
        ),
        "cadence_spm": _unit_value(cadence),
        "hr_avg_bpm": _unit_value(hr.get("average")),
        "hr_max_bpm": _unit_value(hr.get("maximum")),
        "rpe": body.get("perceived_exertion"),
        "ground_contact_time_ms": dyn.get("ground_contact_time_ms"),
        "vertical_oscillation_mm": dyn.get("vertical_oscillation_mm"),
        "step_length_mm": dyn.get("step_length_mm"),
        "power_w": dyn.get("power_w"),
    }
    if _implausible_run(row, duration is not None):
        return None
    return Valid(device, row["uuid"], row)


def _unit_value(value: float | CadenceDict | HeartRateValueDict | None) -> float | None:
    """A quantity given as a bare number or as an Open mHealth unit-value of its one unit."""
    if value is None or isinstance(value, float | int):
        return value
    return value["value"]


# Where each time checked by `_implausible_times` is, in the order it reads them.
_RUN_TIMES = (
    "header.source_creation_date_time",
    "body.effective_time_frame.time_interval.start_date_time",
    "body.effective_time_frame.time_interval.end_date_time",
)
_CHECKIN_TIMES = ("header.source_creation_date_time", "body.effective_time_frame.date_time")


def _implausible_times(
    msg: RunMessage | CheckinMessage, received_at: datetime
) -> tuple[WireError, ...]:
    """Times later than an hour after receipt: a clock gone wrong, which would otherwise keep an
    alert open into the future and mute every real report after it."""
    latest = received_at + MAX_AHEAD
    created = msg.header.source_creation_date_time
    places: tuple[str, ...]
    times: tuple[datetime, ...]
    if isinstance(msg, RunMessage):
        interval = msg.body.effective_time_frame.time_interval
        places, times = _RUN_TIMES, (created, interval.start_date_time, interval.end_date_time)
    else:
        places, times = _CHECKIN_TIMES, (created, msg.body.effective_time_frame.date_time)
    if max(times) <= latest:
        return ()
    return tuple(
        WireError(loc, "time is more than one hour after the message was received")
        for loc, value in zip(places, times, strict=True)
        if value > latest
    )


def _implausible_run(row: dict[str, Any], duration_given: bool) -> tuple[WireError, ...]:
    """Runs no person can run, which would distort every load rule for weeks."""
    distance = row["distance_m"]
    moving = row["duration_s"]
    moving_loc = "body.duration" if duration_given else "body.effective_time_frame"
    errors: list[WireError] = []
    if distance > MAX_RUN_DISTANCE_M:
        errors.append(
            WireError(
                "body.distance", f"a run cannot be longer than {MAX_RUN_DISTANCE_M // 1000} km"
            )
        )
    if moving > MAX_MOVING_TIME_S:
        errors.append(
            WireError(moving_loc, f"moving time cannot exceed {MAX_MOVING_TIME_S // 3600} hours")
        )
    if (
        PACE_CHECK_FROM_M <= distance <= MAX_RUN_DISTANCE_M
        and moving < distance / 1000 * FASTEST_PACE_S_PER_KM
    ):
        errors.append(
            WireError(
                moving_loc,
                f"{distance / 1000:.2f} km in {moving:.0f} s is faster than "
                f"{FASTEST_PACE_S_PER_KM // 60}:{FASTEST_PACE_S_PER_KM % 60:02d} min/km",
            )
        )
    return tuple(errors)


def _invalid(device: DeviceTopic, text: str, exc: ValidationError) -> Invalid:
    errors: list[WireError] = []
    raw = _lenient_json(text)
    header = raw.get("header") if isinstance(raw, dict) else None
    uuid = header.get("uuid") if isinstance(header, dict) else None
    if not (isinstance(uuid, str) and _is_uuid(uuid)):
        uuid = None
    schema = header.get("schema_id") if isinstance(header, dict) else None
    if isinstance(schema, dict):
        expected = RUN_SCHEMA if device.kind is Kind.RUN else CHECKIN_SCHEMA
        if (schema.get("namespace"), schema.get("name")) != expected:
            sent = _printable(f"{schema.get('namespace')}/{schema.get('name')}"[:100])
            errors.append(
                WireError(
                    "header.schema_id",
                    f"a {sent} payload cannot be sent on a {device.kind.value} topic",
                )
            )
    for err in exc.errors(include_url=False, include_input=False):
        if len(errors) >= MAX_ERRORS:
            break
        loc = ".".join(str(part) for part in err["loc"])
        msg = str(err["msg"])
        if err["type"] == "json_invalid":
            msg = msg.replace("Invalid JSON", "payload is not valid JSON")
        elif err["type"] == "model_type" and not loc:
            msg = "payload must be a JSON object"
        msg = msg.removeprefix("Value error, ")
        errors.append(WireError(_printable(loc), _printable(msg)))
    return Invalid(device, uuid.lower() if uuid else None, tuple(errors))


def _printable(text: str) -> str:
    """`text` with anything UTF-8 cannot encode (unpaired surrogates from JSON escapes in keys)
    replaced, so that the error can be stored and sent back."""
    return text.encode("utf-8", "replace").decode("utf-8")


class _DuplicateKeyError(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKeyError(key)
            seen.add(key)
    return document


# What json.loads(text, object_pairs_hook=_unique_keys) builds on every call (3 µs a message).
_UNIQUE_KEYS = json.JSONDecoder(object_pairs_hook=_unique_keys)


def _duplicate_key(payload: bytes, text: str) -> WireError | None:
    """A key given twice in one JSON object. Parsers disagree on which value counts (the first,
    the last, or an error), so an app and the service could read different pain scores.

    jiter (the JSON parser of pydantic, as a package) compares every object's keys, escapes
    decoded, in 4 µs for a run where the standard library with a hook on each object took 9 µs.
    Whenever it raises, for a duplicate or for text it will not read (an unpaired surrogate
    escape), the standard library's parser decides, and names the key.
    """
    try:
        jiter.from_json(payload, catch_duplicate_keys=True)
    except Exception:
        return _duplicate_key_named(text)
    return None


def _duplicate_key_named(text: str) -> WireError | None:
    try:
        _UNIQUE_KEYS.decode(text)
    except _DuplicateKeyError as exc:
        key = _printable(exc.key[:100])
        return WireError("", f"payload has the key {key!r} twice in one object")
    except (ValueError, RecursionError):
        # Valid for the model's parser but not for this one: nothing to say about duplicates.
        return None
    return None


def _lenient_json(text: str) -> Any:
    # Only to find the uuid for the rejected ack; anything that fails here just has none.
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


_UUID = re.compile(UUID_RE)


def _is_uuid(value: str) -> bool:
    return _UUID.fullmatch(value) is not None


_SUSPECT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F][0-9a-fA-F]{2})")


def _first_unstorable(model: BaseModel, prefix: str = "") -> WireError | None:
    """The first text field holding U+0000 (PostgreSQL text cannot) or an unpaired surrogate
    (not encodable as UTF-8 at all); no field has a use for either."""
    for name, value in model:
        loc = f"{prefix}{name}"
        if isinstance(value, str):
            if "\x00" in value:
                return WireError(loc, "must not contain the NUL character")
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return WireError(loc, "must not contain unpaired surrogate characters")
        if isinstance(value, BaseModel):
            found = _first_unstorable(value, loc + ".")
            if found is not None:
                return found
    return None


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


def _header_columns(msg: RunMessage | CheckinMessage, message: Inbound) -> dict[str, Any]:
    header = msg.header
    provenance = header.acquisition_provenance
    return {
        "uuid": header.uuid.lower(),
        "modality": header.modality,
        "source_name": provenance.source_name if provenance else None,
        "source_data_point_id": provenance.source_data_point_id if provenance else None,
        "source_created_at": _utc(header.source_creation_date_time),
        "received_at": message.received_at,
    }


def run_row(device: DeviceTopic, msg: RunMessage, message: Inbound) -> dict[str, Any]:
    """Columns of the `runs` row for a valid run message, in metres and seconds."""
    body = msg.body
    interval = body.effective_time_frame.time_interval
    start, end = _utc(interval.start_date_time), _utc(interval.end_date_time)
    duration = (
        to_seconds(body.duration.value, body.duration.unit)
        if body.duration is not None
        else (end - start).total_seconds()
    )
    hr = body.heart_rate
    dyn = body.running_dynamics
    elevation = body.cumulative_elevation_gain
    return {
        **_header_columns(msg, message),
        "athlete_id": device.athlete_id,
        "device_id": device.device_id,
        "start_time": start,
        "end_time": end,
        "distance_m": to_metres(body.distance.value, body.distance.unit),
        "duration_s": duration,
        "elevation_gain_m": to_metres(elevation.value, elevation.unit) if elevation else None,
        "cadence_spm": body.average_cadence.value if body.average_cadence else None,
        "hr_avg_bpm": hr.average.value if hr and hr.average else None,
        "hr_max_bpm": hr.maximum.value if hr and hr.maximum else None,
        "rpe": body.perceived_exertion,
        "ground_contact_time_ms": dyn.ground_contact_time_ms if dyn else None,
        "vertical_oscillation_mm": dyn.vertical_oscillation_mm if dyn else None,
        "step_length_mm": dyn.step_length_mm if dyn else None,
        "power_w": dyn.power_w if dyn else None,
    }


def checkin_row(device: DeviceTopic, msg: CheckinMessage, message: Inbound) -> dict[str, Any]:
    """Columns of the `checkins` row for a valid check-in message."""
    body = msg.body
    symptoms = body.symptoms
    ostrc = body.ostrc
    return {
        **_header_columns(msg, message),
        "athlete_id": device.athlete_id,
        "device_id": device.device_id,
        "recorded_at": _utc(body.effective_time_frame.date_time),
        "context": body.context,
        "related_run_uuid": body.related_run_uuid.lower() if body.related_run_uuid else None,
        "pain_score": body.pain_score,
        "pain_sites": [site.model_dump() for site in body.pain_sites],
        "swelling": symptoms.swelling,
        "locking": symptoms.locking,
        "giving_way": symptoms.giving_way,
        "cannot_bear_weight": symptoms.cannot_bear_weight,
        "night_pain": symptoms.night_pain,
        "fever": symptoms.fever,
        "trauma": symptoms.trauma,
        "redness_warmth": symptoms.redness_warmth,
        "numbness": symptoms.numbness,
        "stopped_run": body.stopped_run,
        "ostrc_q1": ostrc.q1 if ostrc else None,
        "ostrc_q2": ostrc.q2 if ostrc else None,
        "ostrc_q3": ostrc.q3 if ostrc else None,
        "ostrc_q4": ostrc.q4 if ostrc else None,
        "note": body.note,
    }


def ack_payload(uuid: str | None, status: Status, errors: tuple[WireError, ...] = ()) -> bytes:
    """The JSON acknowledgement published to the device's `ack` topic."""
    if not errors and uuid is not None:
        # The common case, once per stored message: a validated uuid needs no escaping.
        return b'{"uuid":"%s","status":"%s","errors":[]}' % (uuid.encode(), status.encode())
    return json.dumps(
        {"uuid": uuid, "status": status, "errors": [e.as_dict() for e in errors]},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def truncate_payload(payload: bytes) -> bytes:
    return payload[:DEAD_LETTER_PAYLOAD]
