"""A small club and its messages: the coach Cora, her athlete Ann and Ann's watch, the topics
Ann's watch publishes on, payload builders, and Ann's runs, check-ins and alerts written
straight to the database for the rules, alert and delivery tests."""

from __future__ import annotations

import uuid as uuidlib
from copy import deepcopy
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from db.engine import session_factory
from db.models import Alert, AlertEvent, Checkin, Run
from kneeguard.admin.registry import Registry

PREFIX = "kneeguard/v1"
RUN_TOPIC = f"{PREFIX}/ann/watch/run"
CHECKIN_TOPIC = f"{PREFIX}/ann/watch/checkin"


def register(engine: Engine, **athlete: Any) -> None:
    """Cora, her athlete Ann (with `athlete`'s settings), and Ann's device `watch`."""
    registry = Registry(session_factory(engine))
    registry.add_coach(coach_id="cora", name="Cora", email="cora@example.com")
    registry.add_athlete(
        athlete_id="ann", name="Ann", email="ann@example.com", coach_id="cora", **athlete
    )
    registry.add_device(athlete_id="ann", device_id="watch")


def add_alert(engine: Engine, severity: str, opened_at: datetime, rule: str = "pain.high") -> int:
    """An open alert for Ann, as the rules would store it; returns its id."""
    with engine.begin() as conn:
        return int(
            conn.execute(
                insert(Alert).returning(Alert.id),
                [
                    {
                        "athlete_id": "ann",
                        "rule_id": rule,
                        "severity": severity,
                        "recommendation": "urgent_care" if severity == "urgent" else "rest",
                        "status": "open",
                        "opened_at": opened_at,
                        "last_triggered_at": opened_at,
                        "updated_at": opened_at,
                        "message": "Seen: something. What to do: rest. This is not a diagnosis.",
                        "evidence": {},
                    }
                ],
            ).scalar_one()
        )


RUN_TEMPLATE: dict[str, Any] = {
    "header": {
        "uuid": "",
        "schema_id": {"namespace": "ieee", "name": "physical-activity", "version": "1.0"},
        "source_creation_date_time": "2026-11-02T08:00:00+01:00",
        "modality": "sensed",
        "acquisition_provenance": {"source_name": "TestWatch 3", "source_data_point_id": "r-1"},
    },
    "body": {
        "activity_name": "running",
        "effective_time_frame": {
            "time_interval": {
                "start_date_time": "2026-11-02T07:00:00+01:00",
                "end_date_time": "2026-11-02T07:50:00+01:00",
            }
        },
        "distance": {"value": 10.0, "unit": "km"},
        "duration": {"value": 48, "unit": "min"},
        "cumulative_elevation_gain": {"value": 120, "unit": "m"},
        "average_cadence": {"value": 172, "unit": "steps/min"},
        "heart_rate": {"average": 148, "maximum": 171},
        "perceived_exertion": 4,
        "running_dynamics": {
            "ground_contact_time_ms": 245,
            "vertical_oscillation_mm": 82,
            "step_length_mm": 1150,
            "power_w": 260,
        },
    },
}

CHECKIN_TEMPLATE: dict[str, Any] = {
    "header": {
        "uuid": "",
        "schema_id": {"namespace": "kneeguard", "name": "knee-checkin", "version": "1.0"},
        "source_creation_date_time": "2026-11-02T08:05:00+01:00",
        "modality": "self-reported",
    },
    "body": {
        "effective_time_frame": {"date_time": "2026-11-02T08:00:00+01:00"},
        "context": "post_run",
        "pain_score": 2,
        "pain_sites": [{"side": "left", "aspect": "anterior"}],
        "symptoms": {"swelling": False},
        "note": "a little sore on the stairs",
    },
}


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def run_payload(**body: Any) -> dict[str, Any]:
    return _payload(RUN_TEMPLATE, body)


def checkin_payload(**body: Any) -> dict[str, Any]:
    return _payload(CHECKIN_TEMPLATE, body)


def _payload(template: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """A copy of `template` with a new uuid and `body`'s fields set."""
    payload = deepcopy(template)
    payload["header"]["uuid"] = new_uuid()
    payload["body"].update(body)
    return payload


# --- rows written straight to the database (rules and alert tests) ---------------------------

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""The instant the alert tests are set at."""


def run_row(athlete_id: str, start: datetime, km: float, minutes: float = 50) -> dict[str, Any]:
    """A stored run's columns, as ingest writes them, under a new uuid."""
    return {
        "uuid": str(uuidlib.uuid4()),
        "athlete_id": athlete_id,
        "device_id": "watch",
        "start_time": start,
        "end_time": start + timedelta(minutes=minutes),
        "distance_m": km * 1000,
        "duration_s": minutes * 60,
        "source_created_at": start,
        "received_at": start,
    }


def checkin_row(
    athlete_id: str, at: datetime, pain: int, context: str = "post_run"
) -> dict[str, Any]:
    """A stored check-in's columns, as ingest writes them, under a new uuid."""
    return {
        "uuid": str(uuidlib.uuid4()),
        "athlete_id": athlete_id,
        "device_id": "watch",
        "recorded_at": at,
        "context": context,
        "pain_score": pain,
        "pain_sites": [],
        "source_created_at": at,
        "received_at": at,
    }


def insert_run(
    conn: Connection, athlete_id: str, start: datetime, km: float, minutes: float = 50
) -> str:
    """Store a run of `athlete_id` in the caller's transaction; returns its uuid."""
    row = run_row(athlete_id, start, km, minutes)
    conn.execute(insert(Run), [row])
    return str(row["uuid"])


def insert_checkin(
    conn: Connection,
    athlete_id: str,
    at: datetime,
    pain: int,
    context: str = "post_run",
    **extra: Any,
) -> None:
    """Store a check-in of `athlete_id` in the caller's transaction; `extra` sets columns."""
    conn.execute(insert(Checkin), [{**checkin_row(athlete_id, at, pain, context), **extra}])


def add_run(engine: Engine, start: datetime, km: float, minutes: float = 50, **extra: Any) -> int:
    row = {**run_row("ann", start, km, minutes), **extra}
    with engine.begin() as conn:
        return int(conn.execute(insert(Run).returning(Run.id), [row]).scalar_one())


def add_checkin(
    engine: Engine, at: datetime, pain: int, context: str = "post_run", **extra: Any
) -> int:
    row = {**checkin_row("ann", at, pain, context), **extra}
    with engine.begin() as conn:
        return int(conn.execute(insert(Checkin).returning(Checkin.id), [row]).scalar_one())


def alerts(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(select(Alert).order_by(Alert.id)))


def events(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [
            (r.alert_id, r.kind) for r in conn.execute(select(AlertEvent).order_by(AlertEvent.id))
        ]


def base_weeks(engine: Engine, weeks: int = 6) -> None:
    """Six steady weeks: 8 km on Mon/Wed/Fri and a 14 km long run on Sunday."""
    start = NOW - timedelta(weeks=weeks)
    for day in range(weeks * 7):
        when = (start + timedelta(days=day)).replace(hour=7)
        weekday = when.weekday()
        if weekday in (0, 2, 4):
            add_run(engine, when, 8, 45)
        elif weekday == 6:
            add_run(engine, when, 14, 80)
