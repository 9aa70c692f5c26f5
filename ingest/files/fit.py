"""FIT activity files, decoded with Garmin's FIT SDK (`garmin-fit-sdk`).

Each running session is one run (sport `running`, whatever its sub-sport: road, trail,
treadmill, track...); a multisport file yields its running legs and nothing else. From a
session: start, end (start + elapsed time), distance, moving time (`total_timer_time`, which
stops while the timer is paused), climb, average cadence, heart rate average and maximum. FIT
stores running cadence as strides per minute (one foot) with a fractional part: it is doubled
to steps per minute. The source is the recording device's product name.

The whole file is checked before anything is taken from it: header, announced size against the
actual size (a truncated file) and the CRCs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Final, cast

from garmin_fit_sdk import Decoder, Stream

from ingest.files.model import ActivityRun, FileRefusedError, NotARunError

RUNNING = "running"
# The SDK's defaults, but heart rates from HRM-Pro style `hr` messages are not merged into the
# records: only the session summary is read, and the merge costs time on long files.
DECODE_OPTIONS: Final[dict[str, Any]] = {"merge_heart_rates": False, "enable_crc_check": True}
_HEADER_MIN = 12


def _decoder(content: bytes) -> Decoder:
    return Decoder(Stream.from_byte_array(bytearray(content)))


def _check_whole(content: bytes) -> None:
    """Refuse a file that is not FIT, or not all there, before decoding its messages."""
    if len(content) < _HEADER_MIN or content[8:12] != b".FIT":
        raise FileRefusedError("not a FIT file (no FIT file header)")
    header_size = content[0]
    if header_size not in (12, 14):
        raise FileRefusedError(f"not a FIT file (header size {header_size})")
    data_size = int.from_bytes(content[4:8], "little")
    expected = header_size + data_size + 2
    if len(content) < expected:
        raise FileRefusedError(
            f"truncated FIT file: its header announces {expected} bytes, the file has "
            f"{len(content)}"
        )


def _describe(errors: list[Exception]) -> str:
    text = str(errors[0])
    if "CRC" in text:
        return "corrupt FIT file: the CRC check failed"
    return "corrupt FIT file: it cannot be decoded"


def decode(content: bytes) -> dict[str, list[dict[str, Any]]]:
    """All messages of a valid FIT file, by message name; raises `FileRefusedError`."""
    _check_whole(content)
    decoder = _decoder(content)
    try:
        messages, errors = decoder.read(**DECODE_OPTIONS)
    except Exception:  # the SDK reports most errors in `errors`, but not all of them
        raise FileRefusedError("corrupt FIT file: it cannot be decoded") from None
    if errors:
        raise FileRefusedError(_describe(errors))
    # The SDK's TypedDicts per message would not hold the values the checks below expect to
    # find missing or malformed in a foreign file: read them as plain dicts.
    return cast(dict[str, list[dict[str, Any]]], messages)


def device_name(messages: dict[str, list[dict[str, Any]]]) -> str:
    """The recording device's name: the creator's product name where the file has one."""
    infos = messages.get("device_info_mesgs", [])
    creators = [m for m in infos if m.get("device_index") in ("creator", 0)]
    file_ids = messages.get("file_id_mesgs", [])
    for message in [*creators, *file_ids]:
        name = message.get("product_name")
        if isinstance(name, str) and name.strip():
            return name.strip()[:200]
    for message in [*file_ids, *creators]:
        maker = message.get("manufacturer")
        product = message.get("garmin_product") or message.get("product")
        if isinstance(maker, str):
            words = [maker.replace("_", " ").title()]
            if isinstance(product, str):
                words.append(product)
            elif isinstance(product, int):
                words.append(f"product {product}")
            return " ".join(words)[:200]
    return "FIT file"


def _positive(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def _aware(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def _cadence_spm(session: dict[str, Any]) -> float | None:
    strides = _positive(session.get("avg_running_cadence"))
    if strides is None:
        strides = _positive(session.get("avg_cadence"))
    if strides is None:
        return None
    fraction = _positive(session.get("avg_fractional_cadence")) or 0.0
    return round(2.0 * (strides + fraction), 2)


def _run(index: int, session: dict[str, Any], source: str, created: datetime | None) -> ActivityRun:
    start = _aware(session.get("start_time"))
    if start is None:
        raise FileRefusedError(f"running session {index} has no start time")
    elapsed = _positive(session.get("total_elapsed_time"))
    end = start + timedelta(seconds=elapsed) if elapsed else _aware(session.get("timestamp"))
    if end is None or end <= start:
        raise FileRefusedError(f"running session {index} has no duration")
    distance = session.get("total_distance")
    if not isinstance(distance, int | float) or distance < 0:
        raise FileRefusedError(f"running session {index} has no distance")
    timer = _positive(session.get("total_timer_time"))
    moving = timer if timer is not None else (end - start).total_seconds()
    ascent = session.get("total_ascent")
    return ActivityRun(
        index=index,
        start=start,
        end=end,
        distance_m=float(distance),
        moving_s=moving,
        source_name=source,
        created=created,
        elevation_gain_m=float(ascent) if isinstance(ascent, int | float) else None,
        cadence_spm=_cadence_spm(session),
        hr_avg_bpm=_positive(session.get("avg_heart_rate")),
        hr_max_bpm=_positive(session.get("max_heart_rate")),
    )


def read_fit(content: bytes) -> list[ActivityRun]:
    """The running sessions of a FIT file; raises `FileRefusedError` or `NotARunError`."""
    messages = decode(content)
    file_ids = messages.get("file_id_mesgs", [])
    kind = file_ids[0].get("type") if file_ids else None
    if kind is not None and kind != "activity":
        raise NotARunError(f"a FIT {kind} file, not an activity")
    sessions = messages.get("session_mesgs", [])
    if not sessions:
        raise FileRefusedError("FIT activity without a session")
    source = device_name(messages)
    created = _aware(file_ids[0].get("time_created")) if file_ids else None
    runs = [
        _run(index, session, source, created)
        for index, session in enumerate(sessions)
        if session.get("sport") == RUNNING
    ]
    if not runs:
        sports = sorted({str(s.get("sport", "unknown")) for s in sessions})
        raise NotARunError(", ".join(sports))
    return runs
