"""Wire schemas: the JSON payloads devices publish (IEEE 1752.1 / Open mHealth data points).

Known fields are validated strictly (no type coercion, finite numbers, aware times); unknown
fields are ignored so that newer apps keep working with an older service.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Final, Literal, NotRequired

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from contract.bounds import EARLIEST

UUID_RE = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
NIL_UUID: Final = "00000000-0000-0000-0000-000000000000"

RUN_SCHEMA = ("ieee", "physical-activity")
CHECKIN_SCHEMA = ("kneeguard", "knee-checkin")


class Wire(BaseModel):
    """Base of every wire model: strict on known fields, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False, frozen=True)


def wire_time_in_utc(value: datetime) -> datetime:
    """An aware time that converts to UTC and is not before 2000, as UTC.

    Years 1 and 9999 with an offset are valid RFC 3339 but have no UTC equivalent in Python;
    they are refused here, by field, rather than failing later in a conversion.
    """
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is out of range: it has no UTC equivalent") from None
    # The upper bound, an hour after receipt, depends on the message: checked when decoded.
    if utc < EARLIEST:
        raise ValueError("time must not be before 2000-01-01T00:00:00Z")
    return utc


def _not_nil(value: str) -> str:
    if value == NIL_UUID:
        raise ValueError("the nil uuid cannot identify a message")
    return value


Uuid = Annotated[str, Field(pattern=UUID_RE)]
MessageUuid = Annotated[Uuid, AfterValidator(_not_nil)]
WireTime = Annotated[AwareDatetime, AfterValidator(wire_time_in_utc)]
ShortText = Annotated[str, Field(max_length=200)]
SchemaVersion = Annotated[str, Field(pattern=r"^1\.\d{1,3}$")]
Modality = Literal["sensed", "self-reported"]
DistanceValue = Annotated[float, Field(ge=0, le=1_000_000)]
DistanceUnit = Literal["m", "km", "mi"]
DurationValue = Annotated[float, Field(ge=0, le=14 * 86_400)]
DurationUnit = Literal["sec", "min", "h"]
ElevationValue = Annotated[float, Field(ge=0, le=100_000)]
ElevationUnit = Literal["m", "ft"]
CadenceValue = Annotated[float, Field(gt=0, le=400)]
HeartRateNumber = Annotated[float, Field(gt=0, le=300)]
Exertion = Annotated[float, Field(ge=0, le=10)]
MAX_RUN_SECONDS: Final = 14 * 86_400


class SchemaId(Wire):
    namespace: ShortText
    name: ShortText
    version: SchemaVersion


class Provenance(Wire):
    source_name: ShortText | None = None
    source_data_point_id: ShortText | None = None


class Header(Wire):
    uuid: MessageUuid
    schema_id: SchemaId | None = None
    source_creation_date_time: WireTime
    modality: Modality | None = None
    acquisition_provenance: Provenance | None = None


class Distance(Wire):
    value: DistanceValue
    unit: DistanceUnit


class Duration(Wire):
    value: DurationValue
    unit: DurationUnit


class Elevation(Wire):
    value: ElevationValue
    unit: ElevationUnit


class Cadence(Wire):
    value: CadenceValue
    unit: Literal["steps/min"]


class HeartRateValue(Wire):
    value: HeartRateNumber
    unit: Literal["beats/min"]


def _bare_number_as(unit: str) -> Any:
    """Accept a bare number for a unit-value with only one possible unit."""

    def wrap(value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {"value": value, "unit": unit}
        return value

    return BeforeValidator(wrap)


BeatsPerMinute = Annotated[HeartRateValue, _bare_number_as("beats/min")]


class HeartRate(Wire):
    """Average and maximum heart rate, each as beats/min or an Open mHealth unit-value."""

    average: BeatsPerMinute | None = None
    maximum: BeatsPerMinute | None = None


Dynamic = Annotated[float, Field(ge=0, le=100_000)]


class RunningDynamics(Wire):
    ground_contact_time_ms: Dynamic | None = None
    vertical_oscillation_mm: Dynamic | None = None
    step_length_mm: Dynamic | None = None
    power_w: Dynamic | None = None


class TimeInterval(Wire):
    start_date_time: WireTime
    end_date_time: WireTime

    @model_validator(mode="after")
    def _end_after_start(self) -> TimeInterval:
        if self.end_date_time <= self.start_date_time:
            raise ValueError("end_date_time must be after start_date_time")
        if (self.end_date_time - self.start_date_time).total_seconds() > MAX_RUN_SECONDS:
            raise ValueError("a run cannot last more than 14 days")
        return self


class RunTimeFrame(Wire):
    time_interval: TimeInterval


class RunBody(Wire):
    activity_name: Literal["running"] = "running"
    effective_time_frame: RunTimeFrame
    distance: Distance
    duration: Duration | None = None
    cumulative_elevation_gain: Elevation | None = None
    average_cadence: Annotated[Cadence, _bare_number_as("steps/min")] | None = None
    heart_rate: HeartRate | None = None
    perceived_exertion: Exertion | None = None
    running_dynamics: RunningDynamics | None = None


class PainSite(Wire):
    side: Literal["left", "right", "both"]
    aspect: Literal["anterior", "lateral", "medial", "posterior", "diffuse"]


class Symptoms(Wire):
    swelling: bool = False
    locking: bool = False
    giving_way: bool = False
    cannot_bear_weight: bool = False
    night_pain: bool = False
    fever: bool = False
    trauma: bool = False
    redness_warmth: bool = False
    numbness: bool = False  # numbness or pins and needles below the knee


OstrcOption = Annotated[int, Field(ge=0, le=3)]


class Ostrc(Wire):
    """Weekly OSTRC-O2 answers: option index 0-3 of each question (scored 0/8/17/25)."""

    q1: OstrcOption
    q2: OstrcOption
    q3: OstrcOption
    q4: OstrcOption


class CheckinTimeFrame(Wire):
    date_time: WireTime


class CheckinBody(Wire):
    effective_time_frame: CheckinTimeFrame
    context: Literal["post_run", "next_morning", "daily"]
    related_run_uuid: Uuid | None = None
    pain_score: Annotated[int, Field(ge=0, le=10)]
    pain_sites: Annotated[list[PainSite], Field(max_length=16)] = []
    symptoms: Symptoms = Symptoms()
    ostrc: Ostrc | None = None
    stopped_run: bool = False  # the run was stopped or shortened because of knee pain
    note: Annotated[str, Field(max_length=1000)] | None = None


def _check_schema_id(header: Header, expected: tuple[str, str], kind: str) -> None:
    schema = header.schema_id
    if schema is not None and (schema.namespace, schema.name) != expected:
        raise ValueError(
            f"schema_id {schema.namespace}/{schema.name}/{schema.version} cannot be sent on a "
            f"{kind} topic; expected {expected[0]}/{expected[1]}/1.0"
        )


class RunMessage(Wire):
    header: Header
    body: RunBody

    @model_validator(mode="after")
    def _schema_matches_topic(self) -> RunMessage:
        _check_schema_id(self.header, RUN_SCHEMA, "run")
        return self


class CheckinMessage(Wire):
    header: Header
    body: CheckinBody

    @model_validator(mode="after")
    def _schema_matches_topic(self) -> CheckinMessage:
        _check_schema_id(self.header, CHECKIN_SCHEMA, "checkin")
        return self


# --- A run message as plain dicts --------------------------------------------------------------
# What `RunMessage` accepts, less what its validators written in Python check (times in UTC and
# not before 2000, the nil uuid, the interval, the schema id, a bare number for a unit-value),
# validated into dicts rather than models: on the benchmark's run, 5 µs where `RunMessage` took
# 14. ingest/messages.py checks the rest itself and hands anything it does not accept whole to
# `RunMessage`, so that every rejection is the models'; tests/test_wire.py checks that both give
# the same row for every run the dicts accept.

_AS_DICTS = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)


@with_config(_AS_DICTS)
class SchemaIdDict(TypedDict):
    namespace: ShortText
    name: ShortText
    version: SchemaVersion


@with_config(_AS_DICTS)
class ProvenanceDict(TypedDict, total=False):
    source_name: ShortText | None
    source_data_point_id: ShortText | None


@with_config(_AS_DICTS)
class HeaderDict(TypedDict):
    uuid: Uuid
    schema_id: NotRequired[SchemaIdDict | None]
    source_creation_date_time: AwareDatetime
    modality: NotRequired[Modality | None]
    acquisition_provenance: NotRequired[ProvenanceDict | None]


@with_config(_AS_DICTS)
class DistanceDict(TypedDict):
    value: DistanceValue
    unit: DistanceUnit


@with_config(_AS_DICTS)
class DurationDict(TypedDict):
    value: DurationValue
    unit: DurationUnit


@with_config(_AS_DICTS)
class ElevationDict(TypedDict):
    value: ElevationValue
    unit: ElevationUnit


@with_config(_AS_DICTS)
class CadenceDict(TypedDict):
    value: CadenceValue
    unit: Literal["steps/min"]


@with_config(_AS_DICTS)
class HeartRateValueDict(TypedDict):
    value: HeartRateNumber
    unit: Literal["beats/min"]


@with_config(_AS_DICTS)
class HeartRateDict(TypedDict, total=False):
    average: HeartRateNumber | HeartRateValueDict | None
    maximum: HeartRateNumber | HeartRateValueDict | None


@with_config(_AS_DICTS)
class RunningDynamicsDict(TypedDict, total=False):
    ground_contact_time_ms: Dynamic | None
    vertical_oscillation_mm: Dynamic | None
    step_length_mm: Dynamic | None
    power_w: Dynamic | None


@with_config(_AS_DICTS)
class TimeIntervalDict(TypedDict):
    start_date_time: AwareDatetime
    end_date_time: AwareDatetime


@with_config(_AS_DICTS)
class RunTimeFrameDict(TypedDict):
    time_interval: TimeIntervalDict


@with_config(_AS_DICTS)
class RunBodyDict(TypedDict):
    activity_name: NotRequired[Literal["running"]]
    effective_time_frame: RunTimeFrameDict
    distance: DistanceDict
    duration: NotRequired[DurationDict | None]
    cumulative_elevation_gain: NotRequired[ElevationDict | None]
    average_cadence: NotRequired[CadenceValue | CadenceDict | None]
    heart_rate: NotRequired[HeartRateDict | None]
    perceived_exertion: NotRequired[Exertion | None]
    running_dynamics: NotRequired[RunningDynamicsDict | None]


@with_config(_AS_DICTS)
class RunMessageDict(TypedDict):
    header: HeaderDict
    body: RunBodyDict


RUN_AS_DICTS: Final = TypeAdapter(RunMessageDict)
