"""De-duplication is per athlete (DESIGN.md v2): through the real broker on both databases."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from db.engine import session_factory
from db.models import Checkin, Run
from kneeguard.admin.registry import Registry
from testsupport import (
    CHECKIN_TOPIC,
    PREFIX,
    RUN_TOPIC,
    Running,
    checkin_payload,
    run_payload,
    wait_until,
)

BOB_RUN = f"{PREFIX}/bob/phone/run"
BOB_CHECKIN = f"{PREFIX}/bob/phone/checkin"


@pytest.fixture
def club(running: Running) -> Running:
    registry = Registry(session_factory(running.engine))
    registry.add_athlete(athlete_id="bob", name="Bob", email="bob@example.com", coach_id="cora")
    registry.add_device(athlete_id="bob", device_id="phone")
    return running


def test_another_athletes_uuid_never_makes_a_message_a_duplicate(club: Running) -> None:
    """Reproduced: athlete A publishing uuid X made athlete B's locked knee with uuid X a
    `duplicate`, silently dropped."""
    shadow = checkin_payload(pain_score=0)
    real = checkin_payload(pain_score=6, symptoms={"locking": True})
    real["header"]["uuid"] = shadow["header"]["uuid"]
    run_a, run_b = run_payload(), run_payload()
    run_b["header"]["uuid"] = run_a["header"]["uuid"]

    club.device.publish(CHECKIN_TOPIC, shadow)
    club.device.publish(RUN_TOPIC, run_a)
    assert club.device.ack_for(shadow["header"]["uuid"])["status"] == "accepted"
    club.device.publish(BOB_CHECKIN, real)
    club.device.publish(BOB_RUN, run_b)

    def acks_for(uuid: str) -> list[str]:
        return sorted(a["status"] for a in club.device.acks() if a["uuid"] == uuid)

    assert wait_until(lambda: len(acks_for(real["header"]["uuid"])) == 2, 10)
    assert acks_for(real["header"]["uuid"]) == ["accepted", "accepted"]
    assert wait_until(lambda: len(acks_for(run_b["header"]["uuid"])) == 2, 10)
    assert acks_for(run_b["header"]["uuid"]) == ["accepted", "accepted"]
    with club.engine.connect() as conn:
        checkins = conn.execute(
            select(Checkin.athlete_id, Checkin.locking).order_by(Checkin.athlete_id)
        ).all()
        runs = conn.execute(select(Run.athlete_id).order_by(Run.athlete_id)).scalars().all()
    assert [tuple(row) for row in checkins] == [("ann", False), ("bob", True)]
    assert runs == ["ann", "bob"]


def test_the_same_athlete_resending_a_uuid_is_still_a_duplicate(club: Running) -> None:
    first = checkin_payload(pain_score=2)
    again = checkin_payload(pain_score=9)
    again["header"]["uuid"] = first["header"]["uuid"].upper()
    club.device.publish(CHECKIN_TOPIC, first)
    assert club.device.ack_for(first["header"]["uuid"])["status"] == "accepted"
    # In one batch with a third copy, and later on its own: one row either way.
    club.device.publish_many(
        [(CHECKIN_TOPIC, json.dumps(again).encode()), (CHECKIN_TOPIC, json.dumps(first).encode())]
    )

    assert wait_until(
        lambda: (
            [a["status"] for a in club.device.acks() if a["uuid"] == first["header"]["uuid"]]
            == ["accepted", "duplicate", "duplicate"]
        ),
        10,
    )
    with club.engine.connect() as conn:
        scores = conn.execute(select(Checkin.pain_score)).scalars().all()
    assert scores == [2]
