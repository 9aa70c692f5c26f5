"""A check-in from the web form: built into the same JSON payload a device publishes, validated
and converted by the same ingest code (`ingest.messages.decode`), stored by the same insert, and
announced through the same "check-in stored" event, so the same red-flag rules run at once.

The form's uuid is fixed when the form is rendered (signed, so it cannot be swapped for another
athlete's), which makes a double submit one check-in.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Engine

from contract.topics import Kind, Topics
from ingest.messages import Inbound, Invalid, WireError, decode
from ingest.schemas import CheckinBody, Symptoms
from ingest.writer import CHECKINS, Stored, Writer

WEB_DEVICE: Final = "web"
"""The device id of check-ins answered on the web (a web form is not a registered device)."""

SIDES: Final = ("left", "right")
ASPECTS: Final = ("anterior", "lateral", "medial", "posterior", "diffuse")

SYMPTOM_LABELS: Final[Mapping[str, str]] = {
    "swelling": "Swelling",
    "locking": "Knee locks (gets stuck)",
    "giving_way": "Knee gives way",
    "cannot_bear_weight": "Cannot put weight on it",
    "night_pain": "Pain at night or at rest",
    "fever": "Fever or feeling unwell",
    "trauma": "A fall, twist or blow today",
    "redness_warmth": "Red or warm to the touch",
    "numbness": "Numbness or pins and needles below the knee",
}

OSTRC_QUESTIONS: Final = (
    (
        "q1",
        "Have you had any difficulties participating in training and competition due to knee "
        "problems during the past week?",
        (
            "Full participation without knee problems",
            "Full participation, but with knee problems",
            "Reduced participation due to knee problems",
            "Cannot participate due to knee problems",
        ),
    ),
    (
        "q2",
        "To what extent have you reduced your training volume due to knee problems during the "
        "past week?",
        ("No reduction", "To a minor extent", "To a moderate extent", "To a major extent"),
    ),
    (
        "q3",
        "To what extent have knee problems affected your performance during the past week?",
        ("No effect", "To a minor extent", "To a moderate extent", "To a major extent"),
    ),
    (
        "q4",
        "To what extent have you experienced knee pain related to your sport during the past week?",
        ("No pain", "Mild pain", "Moderate pain", "Severe pain"),
    ),
)


def symptom_names() -> list[str]:
    """Every symptom of the wire model, in its order (new ones appear here by themselves)."""
    return list(Symptoms.model_fields)


def has_stopped_run() -> bool:
    return "stopped_run" in CheckinBody.model_fields


def reported_signs(checkin: object) -> list[str]:
    """The symptoms (and a stopped run) a stored check-in reports, by field name."""
    names = [*symptom_names(), *(["stopped_run"] if has_stopped_run() else [])]
    return [name for name in names if getattr(checkin, name, False)]


def signs_of(checkin: object) -> list[str]:
    """The symptoms (and a stopped run) a stored check-in reports, in words."""
    return [name.replace("_", " ") for name in reported_signs(checkin)]


@dataclass
class FormResult:
    """What became of a submitted form: stored, a duplicate, or errors per form field."""

    status: str  # accepted | duplicate | rejected
    errors: dict[str, str] = field(default_factory=dict)
    stored: Stored | None = None


def field_of(loc: str) -> str:
    """Map a wire error location to the form field it belongs next to."""
    parts = loc.split(".")
    if parts[:1] == ["body"]:
        parts = parts[1:]
    if not parts:
        return "form"
    if parts[0] == "symptoms":
        return "symptoms"
    if parts[0] == "pain_sites":
        return "pain_sites"
    if parts[0] == "ostrc":
        return f"ostrc_{parts[1]}" if len(parts) > 1 and parts[1].startswith("q") else "ostrc"
    if parts[0] == "effective_time_frame":
        return "form"
    return parts[0]


def _int_or_raw(value: str | None) -> Any:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value  # the wire model names it as not an integer


def build_payload(
    form: Mapping[str, Any],
    *,
    uuid: str,
    now: datetime,
    context: str,
    related_run_uuid: str | None,
    ostrc_due: bool,
) -> dict[str, Any]:
    """The device payload a form submission stands for.

    `form` maps field names to a string or, for repeated checkboxes, a list of strings.
    """

    def values(name: str) -> list[str]:
        value = form.get(name)
        if value is None:
            return []
        return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]

    def one(name: str) -> str | None:
        found = values(name)
        return found[-1] if found else None

    chosen = set(values("site"))
    sites: list[dict[str, str]] = []
    for aspect in ASPECTS:
        left, right = f"left:{aspect}" in chosen, f"right:{aspect}" in chosen
        if left and right:
            sites.append({"side": "both", "aspect": aspect})
        elif left or right:
            sites.append({"side": "left" if left else "right", "aspect": aspect})
    unknown = chosen - {f"{s}:{a}" for s in SIDES for a in ASPECTS}
    if unknown:
        side, _, aspect = sorted(unknown)[0].partition(":")
        sites.append({"side": side, "aspect": aspect})  # refused by the wire model, by name

    symptoms = {name: True for name in values("symptom")}
    pain = _int_or_raw(one("pain_score"))
    body: dict[str, Any] = {
        "effective_time_frame": {"date_time": now.isoformat()},
        "context": context,
        "pain_sites": sites,
        "symptoms": symptoms,
    }
    if pain is not None:
        body["pain_score"] = pain
    if related_run_uuid:
        body["related_run_uuid"] = related_run_uuid
    if one("stopped_run") and has_stopped_run():
        body["stopped_run"] = True
    note = (one("note") or "").strip()
    if note:
        body["note"] = note
    if ostrc_due:
        answers = {q: _int_or_raw(one(f"ostrc_{q}")) for q, _, _ in OSTRC_QUESTIONS}
        given = {q: a for q, a in answers.items() if a is not None}
        if given:
            body["ostrc"] = given
    return {
        "header": {
            "uuid": uuid,
            "schema_id": {"namespace": "kneeguard", "name": "knee-checkin", "version": "1.0"},
            "source_creation_date_time": now.isoformat(),
            "modality": "self-reported",
            "acquisition_provenance": {"source_name": "KneeGuard web"},
        },
        "body": body,
    }


StoredListener = Callable[[Sequence[Stored]], None]


@dataclass
class WebCheckins:
    """Validates and stores web check-ins, then fires the same event as the ingest writer."""

    engine: Engine
    topics: Topics
    on_stored: StoredListener

    def submit(self, athlete_id: str, payload: dict[str, Any], now: datetime) -> FormResult:
        raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
        message = Inbound(
            topic=f"{self.topics.prefix}/{athlete_id}/{WEB_DEVICE}/checkin",
            payload=raw,
            mid=0,
            qos=0,
            received_at=now,
        )
        decoded = decode(self.topics, message)
        if isinstance(decoded, Invalid):
            return FormResult("rejected", errors_by_field(decoded.errors))
        with self.engine.begin() as conn:
            ids = Writer._insert_new(conn, CHECKINS, [decoded.row])
        row_id = ids.get((athlete_id, decoded.uuid))
        if row_id is None:
            return FormResult("duplicate")
        stored = Stored(Kind.CHECKIN, row_id, decoded.uuid, athlete_id, WEB_DEVICE)
        self.on_stored([stored])
        return FormResult("accepted", stored=stored)


def errors_by_field(errors: Sequence[WireError]) -> dict[str, str]:
    found: dict[str, str] = {}
    for error in errors:
        name = field_of(error.loc)
        message = error.msg
        if name == "pain_score" and "required" in message.lower():
            message = "Please choose a pain score from 0 to 10."
        found.setdefault(name, message)
    return found
