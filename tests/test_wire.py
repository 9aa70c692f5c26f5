"""Wire schemas and decoding as pure logic: hypothesis explores the payload space."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.exc import OperationalError

from contract.topics import Kind, TopicError, Topics
from db.engine import describe_operational_error
from db.urls import redact_url, url_password
from ingest.messages import MAX_PAYLOAD, Inbound, Invalid, Valid, ack_payload, decode
from ingest.units import to_metres, to_seconds
from testsupport import checkin_payload, run_payload

TOPICS = Topics("kneeguard/v1")
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)
RUN = "kneeguard/v1/ann/watch/run"
CHECKIN = "kneeguard/v1/ann/watch/checkin"


def inbound(topic: str, payload: bytes | dict[str, Any]) -> Inbound:
    raw = json.dumps(payload).encode() if isinstance(payload, dict) else payload
    return Inbound(topic, raw, 1, 1, NOW)


offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(
    lambda m: timezone(timedelta(minutes=m))
)
# Every instant a message may carry: from 2000 (with any offset) to well before `NOW`.
instants = st.datetimes(
    min_value=datetime(2000, 1, 2), max_value=datetime(2026, 11, 23), timezones=offsets
)
finite = st.floats(min_value=0, max_value=1e5, allow_nan=False, allow_infinity=False)


@given(
    value=finite,
    unit=st.sampled_from(["m", "km", "mi"]),
    start=instants,
    minutes=st.floats(min_value=0.01, max_value=600),
)
def test_any_valid_run_is_stored_in_metres_utc_and_seconds(
    value: float, unit: str, start: datetime, minutes: float
) -> None:
    end = start + timedelta(minutes=minutes)
    payload = run_payload(
        distance={"value": value, "unit": unit},
        effective_time_frame={
            "time_interval": {
                "start_date_time": start.isoformat(),
                "end_date_time": end.isoformat(),
            }
        },
    )
    del payload["body"]["duration"]
    result = decode(TOPICS, inbound(RUN, payload))
    metres, seconds = to_metres(value, unit), minutes * 60
    if metres > 500_000 or (metres >= 400 and seconds < metres / 1000 * 120):
        # No one runs that far, or that fast: refused by field, never stored.
        assert isinstance(result, Invalid), result
        assert {e.loc for e in result.errors} <= {"body.distance", "body.effective_time_frame"}
        return
    assert isinstance(result, Valid), result
    row = result.row
    assert row["distance_m"] == pytest.approx(to_metres(value, unit))
    assert row["start_time"].utcoffset() == timedelta(0)
    assert row["start_time"] == start
    assert row["duration_s"] == pytest.approx((end - start).total_seconds())
    assert result.uuid == payload["header"]["uuid"]


@given(pain=st.integers(min_value=0, max_value=10), when=instants)
def test_any_valid_checkin_keeps_its_score_and_instant(pain: int, when: datetime) -> None:
    payload = checkin_payload(pain_score=pain, effective_time_frame={"date_time": when.isoformat()})
    result = decode(TOPICS, inbound(CHECKIN, payload))
    assert isinstance(result, Valid)
    assert result.row["pain_score"] == pain
    assert result.row["recorded_at"] == when


@given(pain=st.one_of(st.integers().filter(lambda n: not 0 <= n <= 10), st.floats(), st.text()))
def test_pain_outside_0_to_10_or_not_an_integer_is_rejected(pain: Any) -> None:
    payload = checkin_payload()
    payload["body"]["pain_score"] = pain
    raw = json.dumps(payload, allow_nan=True).encode()
    result = decode(TOPICS, inbound(CHECKIN, raw))
    assert isinstance(result, Invalid)
    assert any(e.loc == "body.pain_score" for e in result.errors)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)


def _mutate(base: dict[str, Any], path: list[str], value: Any) -> dict[str, Any]:
    node: Any = base
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return base


RUN_PATHS = [
    ["header", "uuid"],
    ["header", "source_creation_date_time"],
    ["header", "schema_id"],
    ["header", "modality"],
    ["body", "distance"],
    ["body", "distance", "value"],
    ["body", "distance", "unit"],
    ["body", "duration"],
    ["body", "effective_time_frame"],
    ["body", "effective_time_frame", "time_interval", "end_date_time"],
    ["body", "heart_rate"],
    ["body", "average_cadence"],
    ["body", "perceived_exertion"],
    ["body", "running_dynamics", "power_w"],
]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(path=st.sampled_from(RUN_PATHS), value=json_values)
def test_a_wrong_value_anywhere_is_rejected_with_a_location_or_stored_sanely(
    path: list[str], value: Any
) -> None:
    payload = _mutate(run_payload(), path, value)
    result = decode(TOPICS, inbound(RUN, payload))
    if isinstance(result, Invalid):
        assert result.errors
        assert all(e.msg for e in result.errors)
        assert result.device is not None
        json.loads(ack_payload(result.uuid, "rejected", result.errors))
    else:
        row = result.row
        for key in ("distance_m", "duration_s", "cadence_spm", "hr_avg_bpm", "rpe", "power_w"):
            if row[key] is not None:
                assert math.isfinite(row[key]) and row[key] >= 0


@settings(max_examples=300)
@given(raw=st.binary(max_size=300))
def test_raw_bytes_never_raise(raw: bytes) -> None:
    result = decode(TOPICS, inbound(CHECKIN, raw))
    assert isinstance(result, Invalid | Valid)


@given(extra=st.dictionaries(st.text(min_size=1, max_size=12), json_values, max_size=5))
def test_unknown_fields_are_ignored(extra: dict[str, Any]) -> None:
    payload = checkin_payload()
    known = set(payload) | set(payload["header"]) | set(payload["body"])
    extra = {k: v for k, v in extra.items() if k not in known}
    payload.update(extra)
    payload["body"].update(extra)
    payload["header"].update(extra)
    assert isinstance(decode(TOPICS, inbound(CHECKIN, payload)), Valid)


def test_payload_limit_is_exact() -> None:
    payload = run_payload()
    raw = json.dumps(payload).encode()
    padded = raw[:-1] + b', "pad": "' + b"x" * (MAX_PAYLOAD - len(raw) - 11) + b'"}'
    assert len(padded) == MAX_PAYLOAD
    assert isinstance(decode(TOPICS, inbound(RUN, padded)), Valid)
    over = padded[:-2] + b'x"}'
    assert isinstance(decode(TOPICS, inbound(RUN, over)), Invalid)


@given(
    athlete=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    device=st.from_regex(r"[A-Za-z0-9_-]{1,64}", fullmatch=True),
    kind=st.sampled_from(list(Kind)),
)
def test_topics_round_trip(athlete: str, device: str, kind: Kind) -> None:
    parsed = TOPICS.parse(TOPICS.inbound(athlete, device, kind))
    assert (parsed.athlete_id, parsed.device_id, parsed.kind) == (athlete, device, kind)


@pytest.mark.parametrize(
    "topic",
    [
        "other/v1/ann/watch/run",
        "kneeguard/v1/ann/run",
        "kneeguard/v1/ann/watch/run/extra",
        "kneeguard/v1/ann/watch/ack",
        "kneeguard/v1/an n/watch/run",
        "kneeguard/v1/ann/" + "w" * 65 + "/run",
    ],
)
def test_malformed_topics_are_refused(topic: str) -> None:
    with pytest.raises(TopicError):
        TOPICS.parse(topic)


def test_units_convert_exactly() -> None:
    assert to_metres(1, "mi") == 1609.344
    assert to_metres(1000, "ft") == pytest.approx(304.8)
    assert to_metres(5, "km") == 5000
    assert to_seconds(1.5, "h") == 5400
    assert to_seconds(42, "min") == 2520


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://kg:s3cret@db:5432/kg", "postgresql+psycopg://kg:***@db:5432/kg"),
        ("mqtts://dev:p%40ss@broker:8883", "mqtts://dev:***@broker:8883"),
        ("smtp://mail:25", "smtp://mail:25"),
        ("sqlite:///var/kneeguard.db", "sqlite:///var/kneeguard.db"),
    ],
)
def test_urls_are_shown_without_passwords(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://kg:pa/ss@db:5432/kg",
        "postgresql+psycopg://kg:pa#ss@db:5432/kg",
        "postgresql+psycopg://kg:pa?ss@db:5432/kg",
        "postgresql+psycopg://kg:pa@ss@db:5432/kg",
        "mqtts://kg:p/a#s?s@x@db:5432",
        "smtp://kg:pa/ss@db:5432",
    ],
)
def test_a_password_with_unescaped_url_characters_is_hidden_whole(url: str) -> None:
    """A URL parser would end the password at the first `/`, `#`, `?` or `@` and show the
    rest; the redactor ends it at the last `@`."""
    shown = redact_url(url)
    assert shown.startswith(url.split(":")[0] + "://kg:***@db:5432"), shown
    assert "pa" not in shown and "ss" not in shown and "p/a" not in shown
    assert url_password(url) == url.split("kg:", 1)[1].rsplit("@", 1)[0]


def test_a_database_error_never_shows_the_password() -> None:
    url = "postgresql+psycopg://kg:pa@ss@db:5432/kg"
    error = OperationalError("connect", {}, Exception("auth failed for pa@ss\nsecond line"))
    assert describe_operational_error(url, error) == (
        "cannot use database postgresql+psycopg://kg:***@db:5432/kg: auth failed for ***"
    )


@pytest.mark.parametrize("escape", ["\\ud800", "\\udc00", "\\u0000"])
def test_unstorable_text_in_an_error_is_made_safe(escape: str) -> None:
    payload = checkin_payload()
    payload["header"]["schema_id"] = {"namespace": "x", "name": "y", "version": "1.0"}
    raw = json.dumps(payload).replace('"namespace": "x"', f'"namespace": "x{escape}"')
    result = decode(TOPICS, inbound(RUN, raw.encode()))
    assert isinstance(result, Invalid)
    assert any(e.loc == "header.schema_id" for e in result.errors)
    result.reason.encode("utf-8")  # storable as the dead letter's reason
    json.loads(ack_payload(result.uuid, "rejected", result.errors))


def test_a_surrogate_pair_escape_is_a_valid_emoji() -> None:
    payload = checkin_payload(note="x")
    raw = json.dumps(payload).replace('"note": "x"', '"note": "sore \\ud83c\\udfc3"')
    result = decode(TOPICS, inbound(CHECKIN, raw.encode()))
    assert isinstance(result, Valid)
    assert result.row["note"] == "sore \U0001f3c3"


# --- version 2 bounds: times, uuids, plausible runs -------------------------------------------

TIME_FIELDS = {
    "header.source_creation_date_time": ["header", "source_creation_date_time"],
    "body.effective_time_frame.time_interval.start_date_time": [
        "body",
        "effective_time_frame",
        "time_interval",
        "start_date_time",
    ],
    "body.effective_time_frame.time_interval.end_date_time": [
        "body",
        "effective_time_frame",
        "time_interval",
        "end_date_time",
    ],
}


@pytest.mark.parametrize(
    ("value", "msg"),
    [
        ("0001-01-01T00:00:00+01:00", "no UTC equivalent"),
        ("9999-12-31T23:59:59-14:00", "no UTC equivalent"),
        ("1999-12-31T23:59:59Z", "before 2000"),
        ("2000-01-01T00:30:00+01:00", "before 2000"),
    ],
)
@pytest.mark.parametrize("loc", list(TIME_FIELDS))
def test_a_time_out_of_range_is_rejected_by_field(loc: str, value: str, msg: str) -> None:
    payload = run_payload(duration={"value": 10, "unit": "sec"}, distance={"value": 1, "unit": "m"})
    if loc.endswith("start_date_time"):
        # Keep the interval ordered, so the only problem is the bound.
        _mutate(payload, TIME_FIELDS[loc], value)
        payload["body"]["effective_time_frame"]["time_interval"]["end_date_time"] = (
            "2026-11-02T08:00:00Z"
        )
    else:
        _mutate(payload, TIME_FIELDS[loc], value)
    result = decode(TOPICS, inbound(RUN, payload))
    assert isinstance(result, Invalid), result
    assert any(e.loc == loc and msg in e.msg for e in result.errors), result.errors


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-14:00"])
def test_a_checkin_time_without_utc_equivalent_is_rejected_by_field(value: str) -> None:
    payload = checkin_payload(effective_time_frame={"date_time": value})
    result = decode(TOPICS, inbound(CHECKIN, payload))
    assert isinstance(result, Invalid)
    assert [e.loc for e in result.errors] == ["body.effective_time_frame.date_time"]
    assert result.uuid == payload["header"]["uuid"]


def test_the_earliest_time_is_2000_01_01_utc() -> None:
    payload = checkin_payload(effective_time_frame={"date_time": "2000-01-01T00:00:00Z"})
    payload["header"]["source_creation_date_time"] = "2000-01-01T01:00:00+01:00"
    assert isinstance(decode(TOPICS, inbound(CHECKIN, payload)), Valid)


@pytest.mark.parametrize(
    ("ahead", "accepted"),
    [
        (timedelta(minutes=59, seconds=59), True),
        (timedelta(hours=1), True),
        (timedelta(hours=1, seconds=1), False),
        (timedelta(days=365 * 73), False),
    ],
)
def test_a_time_more_than_an_hour_after_receipt_is_rejected(
    ahead: timedelta, accepted: bool
) -> None:
    when = (NOW + ahead).isoformat()
    checkin = checkin_payload(effective_time_frame={"date_time": when}, symptoms={"locking": True})
    result = decode(TOPICS, inbound(CHECKIN, checkin))
    assert isinstance(result, Valid) is accepted, result
    if not accepted:
        assert isinstance(result, Invalid)
        assert [e.loc for e in result.errors] == ["body.effective_time_frame.date_time"]
        assert "one hour after" in result.errors[0].msg

    created = checkin_payload()
    created["header"]["source_creation_date_time"] = when
    result = decode(TOPICS, inbound(CHECKIN, created))
    assert isinstance(result, Valid) is accepted, result
    if isinstance(result, Invalid):
        assert [e.loc for e in result.errors] == ["header.source_creation_date_time"]


def test_a_run_ending_in_the_future_is_rejected() -> None:
    start = NOW - timedelta(minutes=30)
    payload = run_payload(
        effective_time_frame={
            "time_interval": {
                "start_date_time": start.isoformat(),
                "end_date_time": (NOW + timedelta(hours=2)).isoformat(),
            }
        }
    )
    result = decode(TOPICS, inbound(RUN, payload))
    assert isinstance(result, Invalid)
    assert [e.loc for e in result.errors] == [
        "body.effective_time_frame.time_interval.end_date_time"
    ]


def test_the_nil_uuid_is_rejected() -> None:
    payload = checkin_payload()
    payload["header"]["uuid"] = "00000000-0000-0000-0000-000000000000"
    result = decode(TOPICS, inbound(CHECKIN, payload))
    assert isinstance(result, Invalid)
    assert [(e.loc, e.msg) for e in result.errors] == [
        ("header.uuid", "the nil uuid cannot identify a message")
    ]


def _plain_run(metres: float, seconds: float) -> dict[str, Any]:
    return run_payload(
        distance={"value": metres, "unit": "m"}, duration={"value": seconds, "unit": "sec"}
    )


@pytest.mark.parametrize(
    ("metres", "seconds", "loc"),
    [
        (500_000, 72 * 3600, None),
        (500_000.5, 72 * 3600, "body.distance"),
        (1_000_000, 3600, "body.distance"),
        (10_000, 72 * 3600, None),
        (10_000, 72 * 3600 + 1, "body.duration"),
        (10_000, 1200, None),  # exactly 2:00 min/km
        (10_000, 1199, "body.duration"),
        (400, 48, None),
        (400, 47.9, "body.duration"),
        (399.9, 1, None),  # sprints and strides are not judged on pace
    ],
)
def test_implausible_runs_are_rejected_naming_the_field(
    metres: float, seconds: float, loc: str | None
) -> None:
    result = decode(TOPICS, inbound(RUN, _plain_run(metres, seconds)))
    if loc is None:
        assert isinstance(result, Valid), result
    else:
        assert isinstance(result, Invalid)
        assert [e.loc for e in result.errors] == [loc], result.errors


def test_a_million_miles_is_rejected() -> None:
    payload = run_payload(distance={"value": 1_000_000, "unit": "mi"})
    result = decode(TOPICS, inbound(RUN, payload))
    assert isinstance(result, Invalid)
    assert [e.loc for e in result.errors] == ["body.distance"]
    assert "500 km" in result.errors[0].msg


def test_moving_time_from_the_interval_is_bounded_too() -> None:
    payload = run_payload(
        distance={"value": 10, "unit": "km"},
        effective_time_frame={
            "time_interval": {
                "start_date_time": "2026-11-01T00:00:00Z",
                "end_date_time": "2026-11-04T00:00:01Z",
            }
        },
    )
    del payload["body"]["duration"]
    result = decode(TOPICS, inbound(RUN, payload))
    assert isinstance(result, Invalid)
    assert [e.loc for e in result.errors] == ["body.effective_time_frame"]


def test_decode_turns_any_unforeseen_failure_into_a_rejection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The class behind the poison message: whatever raises while decoding rejects that message
    (with its uuid when readable), it never escapes to the writer."""
    import ingest.messages as messages

    def boom(*args: Any) -> Any:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(messages, "checkin_row", boom)
    payload = checkin_payload()
    result = decode(TOPICS, inbound(CHECKIN, payload))
    assert isinstance(result, Invalid)
    assert result.uuid == payload["header"]["uuid"]
    assert result.errors[0].msg == "the message could not be processed (OverflowError)"


@pytest.mark.parametrize(
    ("kind", "original", "doubled", "key"),
    [
        (CHECKIN, '"pain_score": 2', '"pain_score": 2, "pain_score": 9', "pain_score"),
        (CHECKIN, '"locking": false', '"locking": false, "locking": true', "locking"),
        (RUN, '"unit": "km"', '"unit": "km", "unit": "mi"', "unit"),
        (RUN, '"header": {', '"header": {"uuid": "x", ', "uuid"),
    ],
)
def test_a_key_twice_in_one_object_is_rejected(
    kind: str, original: str, doubled: str, key: str
) -> None:
    payload = checkin_payload(pain_score=2) if kind == CHECKIN else run_payload()
    if kind == CHECKIN:
        payload["body"]["symptoms"] = {"locking": False}
    text = json.dumps(payload)
    assert original in text
    result = decode(TOPICS, inbound(kind, text.replace(original, doubled, 1).encode()))
    assert isinstance(result, Invalid), result
    assert [(e.loc, e.msg) for e in result.errors] == [
        ("", f"payload has the key {key!r} twice in one object")
    ]


# Keys built from characters that JSON can write in more than one way, each written raw or as a
# \\u escape, so that two spellings of one key must be found equal.
_KEY_CHARS = ["a", "b", "\u00e9", "\U0001f600", '"', "\\", "\ud800"]


@st.composite
def _spelled_key(draw: st.DrawFn) -> str:
    chars = draw(st.lists(st.sampled_from(_KEY_CHARS), max_size=3))
    spelled = []
    for char in chars:
        if draw(st.booleans()) or char in ('"', "\\", "\ud800"):
            spelled.append(json.dumps(char)[1:-1])
        else:
            spelled.append(char)
    return '"' + "".join(spelled) + '"'


def _object(members: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pairs = st.lists(st.tuples(_spelled_key(), members), max_size=4)
    return pairs.map(lambda items: "{" + ", ".join(f"{k}: {v}" for k, v in items) + "}")


_documents = st.recursive(
    st.sampled_from(["1", '"x"', "null", "[]"]),
    lambda inner: st.one_of(
        _object(inner), st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]")
    ),
    max_leaves=12,
)


@given(document=_object(_documents))
@settings(max_examples=300)
def test_the_fast_duplicate_key_check_agrees_with_the_standard_library(document: str) -> None:
    """jiter decides whenever it can read the text; the standard library's verdict, key named,
    is the reference for every document."""
    from ingest.messages import _duplicate_key, _duplicate_key_named

    payload = document.encode()
    assert _duplicate_key(payload, document) == _duplicate_key_named(document)


def test_the_same_key_in_different_objects_is_fine() -> None:
    payload = run_payload(
        distance={"value": 5, "unit": "km"}, duration={"value": 30, "unit": "min"}
    )
    assert isinstance(decode(TOPICS, inbound(RUN, payload)), Valid)


def test_an_oversized_payload_is_rejected_with_its_uuid_when_readable() -> None:
    payload = run_payload()
    payload["body"]["padding"] = "x" * MAX_PAYLOAD
    result = decode(TOPICS, inbound(RUN, payload))
    assert isinstance(result, Invalid)
    assert result.uuid == payload["header"]["uuid"]
    assert "the limit is 65536" in result.errors[0].msg


# --- Runs validated as dicts agree with the models ---------------------------------------------

ABSENT = object()


def _times() -> st.SearchStrategy[str]:
    """RFC 3339 times around every bound the models check: before 2000 by an offset, years with
    no UTC equivalent, around receipt and an hour after it, and ordinary ones."""
    special = st.sampled_from(
        [
            (NOW + timedelta(hours=1, seconds=1)).isoformat(),
            (NOW + timedelta(hours=1)).isoformat(),
            (NOW + timedelta(hours=1, seconds=1))
            .astimezone(timezone(timedelta(hours=-5)))
            .isoformat(),
            (NOW + timedelta(minutes=59)).astimezone(timezone(timedelta(hours=9))).isoformat(),
            "1999-12-31T23:59:59Z",
            "2000-01-01T00:30:00+01:00",
            "2000-01-01T00:00:00Z",
            "0001-01-01T00:00:00+01:00",
            "9999-12-31T23:59:59-14:00",
            "2026-11-02T07:00:00",  # no offset
            "2026-11-02 07:00:00+01:00",
        ]
    )
    return special | instants.map(lambda t: t.isoformat())


def _unit_value(
    numbers: st.SearchStrategy[Any], units: list[str], bare: bool
) -> st.SearchStrategy[Any]:
    value = numbers
    choices = [
        st.just(ABSENT),
        st.none(),
        st.fixed_dictionaries({"value": value, "unit": st.sampled_from(units)}),
        st.fixed_dictionaries({"value": value}),
    ]
    if bare:
        choices.append(value)
    return st.one_of(*choices)


_numbers = st.one_of(
    st.sampled_from([0, 0.5, 1, 48, 120, 172, 300, 301, 400, 401, 86_400, 1_000_000, 1_000_001]),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-10, max_value=2e6),
    st.booleans(),
    st.just("10"),
)


@st.composite
def _run_variants(draw: st.DrawFn) -> dict[str, Any]:
    payload = run_payload()
    header, body = payload["header"], payload["body"]
    # Around receipt as often as anywhere else: an hour after it is a bound of its own.
    start = draw(
        instants | st.integers(-20 * 60, 61).map(lambda minutes: NOW + timedelta(minutes=minutes))
    )
    # Hypothesis draws the first of a list most often: an ordinary interval, then each bound.
    delta = draw(
        st.sampled_from(
            [
                timedelta(minutes=50),
                timedelta(seconds=-1),
                timedelta(0),
                timedelta(seconds=1),
                timedelta(days=14),
                timedelta(days=14, seconds=1),
            ]
        )
    )
    interval = body["effective_time_frame"]["time_interval"]
    interval["start_date_time"] = start.isoformat()
    interval["end_date_time"] = (start + delta).isoformat()
    header["source_creation_date_time"] = (start + delta).isoformat()
    fields: dict[tuple[str, str], Any] = {
        ("header", "uuid"): st.sampled_from(
            [
                header["uuid"],
                header["uuid"].upper(),
                "00000000-0000-0000-0000-000000000000",
                "not-a-uuid",
            ]
        ),
        ("header", "schema_id"): st.sampled_from(
            [
                ABSENT,
                None,
                {"namespace": "ieee", "name": "physical-activity", "version": "1.0"},
                {"namespace": "kneeguard", "name": "knee-checkin", "version": "1.0"},
                {"namespace": "ieee", "name": "knee-checkin", "version": "1.0"},
                {"namespace": "kneeguard", "name": "physical-activity", "version": "1.0"},
                {"namespace": "ieee", "name": "physical-activity", "version": "2.0"},
            ]
        ),
        ("header", "source_creation_date_time"): _times(),
        ("header", "modality"): st.sampled_from([ABSENT, None, "sensed", "self-reported", "x"]),
        ("header", "acquisition_provenance"): st.sampled_from(
            [ABSENT, None, {}, {"source_name": "w"}, {"source_name": "w" * 201}]
        ),
        ("body", "activity_name"): st.sampled_from([ABSENT, "running", "cycling"]),
        ("body", "distance"): _unit_value(_numbers, ["m", "km", "mi", "ft"], bare=True),
        ("body", "duration"): _unit_value(_numbers, ["sec", "min", "h", "d"], bare=True),
        ("body", "cumulative_elevation_gain"): _unit_value(_numbers, ["m", "ft", "km"], False),
        ("body", "average_cadence"): _unit_value(_numbers, ["steps/min", "rpm"], bare=True),
        ("body", "heart_rate"): st.one_of(
            st.sampled_from([ABSENT, None, {}, 148]),
            st.fixed_dictionaries(
                {},
                optional={
                    "average": _unit_value(_numbers, ["beats/min", "bpm"], bare=True),
                    "maximum": _unit_value(_numbers, ["beats/min"], bare=True),
                },
            ),
        ),
        ("body", "perceived_exertion"): st.one_of(st.just(ABSENT), st.none(), _numbers),
        ("body", "running_dynamics"): st.one_of(
            st.sampled_from([ABSENT, None, {}]),
            st.fixed_dictionaries({}, optional={"power_w": _numbers, "step_length_mm": _numbers}),
        ),
        ("body", "effective_time_frame"): st.sampled_from([ABSENT, "keep", {}]),
    }
    # A few changes at a time, so that many runs stay valid with one thing near a bound.
    changed = draw(st.lists(st.sampled_from(list(fields)), max_size=2, unique=True))
    for part, key in changed:
        value = draw(fields[(part, key)])
        if value == "keep":
            continue
        if value is ABSENT:
            payload[part].pop(key, None)
        else:
            payload[part][key] = value
        if isinstance(value, dict):
            for inner in list(value):
                if value[inner] is ABSENT:
                    del value[inner]
    if draw(st.sampled_from([False, True])):
        interval["end_date_time"] = draw(_times())
    return payload


def _decoded_both_ways(payload: bytes) -> tuple[Valid | None, Valid | Invalid]:
    from ingest.messages import _decode_model, _run_as_dicts

    message = inbound(RUN, payload)
    device = TOPICS.parse(RUN)
    text = payload.decode()
    return _run_as_dicts(device, message, text), _decode_model(device, message, text)


def _typed(row: dict[str, Any]) -> dict[str, tuple[type, Any]]:
    return {key: (type(value), value) for key, value in row.items()}


@given(payload=_run_variants())
@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
def test_a_run_validated_as_dicts_gives_the_models_row(payload: dict[str, Any]) -> None:
    """Whatever the dicts accept, the models accept with the same row, value for value and type
    for type; whatever they do not, the models decode (and name what is wrong)."""
    fast, models = _decoded_both_ways(json.dumps(payload).encode())
    if fast is not None:
        assert isinstance(models, Valid), models
        assert (fast.device, fast.uuid) == (models.device, models.uuid)
        assert _typed(fast.row) == _typed(models.row)


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"heart_rate": {"average": {"value": 148, "unit": "beats/min"}, "maximum": 171}},
        {"average_cadence": 172, "distance": {"value": 6.2, "unit": "mi"}},
        {"duration": None, "cumulative_elevation_gain": {"value": 400, "unit": "ft"}},
        {"running_dynamics": None, "heart_rate": None, "perceived_exertion": None},
    ],
    ids=["template", "unit-value heart rate", "bare cadence, miles", "no duration", "nulls"],
)
def test_ordinary_runs_take_the_dicts_path(body: dict[str, Any]) -> None:
    fast, models = _decoded_both_ways(json.dumps(run_payload(**body)).encode())
    assert fast is not None
    assert isinstance(models, Valid)
    assert _typed(fast.row) == _typed(models.row)


def _one_thing_wrong(change: Any) -> bytes:
    payload = run_payload()
    change(
        payload["header"], payload["body"], payload["body"]["effective_time_frame"]["time_interval"]
    )
    return json.dumps(payload).encode()


_SOON_AFTER = (NOW + timedelta(hours=1, seconds=1)).isoformat()


@pytest.mark.parametrize(
    ("change", "loc"),
    [
        (lambda h, b, i: h.update(uuid="00000000-0000-0000-0000-000000000000"), "header.uuid"),
        (lambda h, b, i: h["schema_id"].update(name="knee-checkin"), "header.schema_id"),
        (lambda h, b, i: h["schema_id"].update(namespace="kneeguard"), "header.schema_id"),
        (
            lambda h, b, i: h.update(source_creation_date_time=_SOON_AFTER),
            "header.source_creation_date_time",
        ),
        (
            lambda h, b, i: h.update(source_creation_date_time="2000-01-01T00:30:00+01:00"),
            "header.source_creation_date_time",
        ),
        (
            lambda h, b, i: h.update(source_creation_date_time="9999-12-31T23:59:59-14:00"),
            "header.source_creation_date_time",
        ),
        (
            lambda h, b, i: i.update(end_date_time=i["start_date_time"]),
            "body.effective_time_frame.time_interval",
        ),
        (
            lambda h, b, i: i.update(start_date_time="2026-10-19T07:49:59+01:00"),
            "body.effective_time_frame.time_interval",
        ),
        (
            lambda h, b, i: i.update(start_date_time=NOW.isoformat(), end_date_time=_SOON_AFTER),
            "body.effective_time_frame.time_interval.end_date_time",
        ),
        (
            lambda h, b, i: b.update(
                distance={"value": 10, "unit": "km"}, duration={"value": 5, "unit": "min"}
            ),
            "body.duration",
        ),
        (
            lambda h, b, i: b.update(
                distance={"value": 501, "unit": "km"}, duration={"value": 60, "unit": "h"}
            ),
            "body.distance",
        ),
        (lambda h, b, i: b.update(duration=48), "body.duration"),
        (
            lambda h, b, i: b["heart_rate"].update(average={"value": 148, "unit": "bpm"}),
            "body.heart_rate.average.unit",
        ),
    ],
    ids=[
        "nil uuid",
        "schema name",
        "schema namespace",
        "created after receipt",
        "before 2000 by its offset",
        "no UTC equivalent",
        "empty interval",
        "interval over 14 days",
        "end after receipt",
        "faster than possible",
        "too long",
        "bare duration",
        "heart rate unit",
    ],
)
def test_each_check_of_the_models_is_also_made_on_the_dicts_path(change: Any, loc: str) -> None:
    fast, models = _decoded_both_ways(_one_thing_wrong(change))
    assert fast is None
    assert isinstance(models, Invalid)
    assert models.errors[0].loc == loc, models.errors


@pytest.mark.parametrize(
    "text",
    [
        # A key twice, and an escape that smuggles in U+0000: the models' path names each.
        json.dumps(run_payload()).replace(
            '"modality": "sensed"', '"modality": "sensed", "modality": "self-reported"'
        ),
        json.dumps(run_payload()).replace('"TestWatch 3"', '"Test\\u0000Watch"'),
    ],
    ids=["duplicate key", "NUL escape"],
)
def test_runs_the_dicts_path_leaves_to_the_models(text: str) -> None:
    fast, models = _decoded_both_ways(text.encode())
    assert fast is None
    assert isinstance(models, Invalid)
