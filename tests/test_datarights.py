"""`kneeguard athlete export` and `athlete delete` on both databases: all of one athlete's data,
and nothing of another's."""

from __future__ import annotations

import io
import json
import uuid as uuidlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, insert, select

from contract.topics import Topics
from db.models import (
    Alert,
    AlertEvent,
    Athlete,
    Base,
    Checkin,
    Coach,
    DeadLetter,
    Delivery,
    Device,
    Digest,
    Prompt,
    Run,
)
from kneeguard.admin.credentials import (
    ACL_BEGIN,
    BrokerCredentials,
    read_password_entries,
    set_password,
)
from kneeguard.cli import athlete as athlete_cli
from testsupport import assert_user_error, kneeguard

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


@dataclass
class Seeded:
    """What `seed` wrote for one athlete: ids, and strings only their rows contain."""

    athlete_id: str
    mark: str
    devices: list[str]
    uuids: list[str] = field(default_factory=list)
    alert_ids: list[int] = field(default_factory=list)


def seed(engine: Engine, athlete_id: str, coach_id: str) -> Seeded:
    """One athlete with two devices and at least one row of every kind that is theirs."""
    mark = f"{athlete_id}-{uuidlib.uuid4().hex[:8]}"
    seeded = Seeded(athlete_id, mark, [f"{athlete_id}-watch", f"{athlete_id}-phone"])
    run_uuid, checkin_uuid, rejected_uuid = (str(uuidlib.uuid4()) for _ in range(3))
    seeded.uuids += [run_uuid, checkin_uuid, rejected_uuid]
    start = NOW - timedelta(days=1)
    with engine.begin() as conn:
        conn.execute(
            insert(Athlete).values(
                id=athlete_id,
                name=f"Name of {athlete_id}",
                email=f"{athlete_id}@example.com",
                timezone="Europe/Oslo",
                coach_id=coach_id,
                ntfy_topic=f"{athlete_id}-knee",
                channels="email,push,inapp",
                quiet_hours=None,
                created_at=NOW - timedelta(days=30),
            )
        )
        conn.execute(
            insert(Device),
            [{"athlete_id": athlete_id, "id": d, "created_at": NOW} for d in seeded.devices],
        )
        run_id = conn.execute(
            insert(Run)
            .values(
                uuid=run_uuid,
                athlete_id=athlete_id,
                device_id=seeded.devices[0],
                start_time=start,
                end_time=start + timedelta(minutes=50),
                distance_m=10_000.0,
                duration_s=2880.0,
                source_name=f"watch of {mark}",
                source_created_at=start,
                received_at=start,
            )
            .returning(Run.id)
        ).scalar_one()
        conn.execute(
            insert(Checkin).values(
                uuid=checkin_uuid,
                athlete_id=athlete_id,
                device_id=seeded.devices[1],
                recorded_at=start + timedelta(hours=1),
                context="post_run",
                related_run_uuid=run_uuid,
                pain_score=6,
                pain_sites=[{"side": "left", "aspect": "medial"}],
                locking=True,
                ostrc_q1=2,
                note=f"note {mark} — ünïcode ✓",
                source_created_at=start,
                received_at=start,
            )
        )
        conn.execute(insert(Prompt).values(run_id=run_id, athlete_id=athlete_id, sent_at=start))
        for rule, status in (("redflag.locked_knee", "open"), ("pain.high", "resolved")):
            alert_id = conn.execute(
                insert(Alert)
                .values(
                    athlete_id=athlete_id,
                    rule_id=rule,
                    severity="urgent",
                    recommendation="urgent_care",
                    status=status,
                    opened_at=start,
                    last_triggered_at=start,
                    updated_at=start,
                    resolved_at=start + timedelta(hours=2) if status == "resolved" else None,
                    message=f"alert for {athlete_id}",
                    evidence={"pain_score": 6, "why": f"evidence {mark}"},
                )
                .returning(Alert.id)
            ).scalar_one()
            seeded.alert_ids.append(alert_id)
            conn.execute(
                insert(AlertEvent),
                [
                    {"alert_id": alert_id, "athlete_id": athlete_id, "kind": kind,
                     "severity": "urgent", "at": start, "detail": None}
                    for kind in ("opened", "raised")
                ],
            )  # fmt: skip
        alert_id = seeded.alert_ids[0]
        conn.execute(
            insert(Delivery),
            [
                delivery(f"a:{mark}:email", alert_id, "athlete", athlete_id, athlete_id, "sent"),
                delivery(f"a:{mark}:push", alert_id, "athlete", athlete_id, athlete_id, "failed"),
                # the coach's copy of this athlete's alert is about the athlete too
                delivery(f"c:{mark}:email", alert_id, "coach", coach_id, athlete_id, "pending"),
                # a notice addressed to the athlete whose alert link is gone
                delivery(f"x:{mark}:inapp", None, "athlete", athlete_id, None, "dead"),
            ],
        )
        conn.execute(
            insert(DeadLetter),
            [
                {
                    "received_at": start,
                    "topic": f"kneeguard/v1/{athlete_id}/{device}/checkin",
                    "athlete_id": athlete_id,
                    "device_id": device,
                    "uuid": uuid,
                    "reason": "body.pain_score: too high",
                    "payload": payload,
                    "payload_size": len(payload),
                }
                for device, uuid, payload in (
                    (seeded.devices[0], rejected_uuid, f'{{"note": "payload {mark}"}}'.encode()),
                    ("stranger", None, b"\xff\xfe not utf-8 " + mark.encode()),
                )
            ],
        )
    return seeded


def delivery(
    key: str,
    alert_id: int | None,
    kind: str,
    recipient: str,
    athlete_id: str | None,
    status: str,
) -> dict[str, Any]:
    return {
        "dedup_key": key,
        "alert_id": alert_id,
        "digest_id": None,
        "reason": "opened",
        "recipient_kind": kind,
        "recipient_id": recipient,
        "athlete_id": athlete_id,
        "channel": key.rsplit(":", 1)[1],
        "status": status,
        "attempts": 1,
        "created_at": NOW - timedelta(days=1),
        "due_at": None,
        "last_error": None,
    }


@dataclass
class Club:
    url: str
    engine: Engine
    ann: Seeded
    bo: Seeded


@pytest.fixture
def club(db_url: str, engine: Engine) -> Club:
    with engine.begin() as conn:
        conn.execute(
            insert(Coach).values(
                id="cora",
                name="Cora",
                email="cora@example.com",
                timezone="UTC",
                created_at=NOW,
            )
        )
        digest_id = conn.execute(
            insert(Digest)
            .values(
                coach_id="cora",
                period="daily",
                period_start=NOW - timedelta(days=1),
                period_end=NOW,
                created_at=NOW,
                subject="digest",
                text="digest",
                html="digest",
                data={},
            )
            .returning(Digest.id)
        ).scalar_one()
        conn.execute(
            insert(Delivery).values(
                {
                    **delivery("digest:1:email", None, "coach", "cora", None, "sent"),
                    "digest_id": digest_id,
                    "reason": "digest",
                }
            )
        )
        conn.execute(
            insert(DeadLetter).values(
                received_at=NOW,
                topic="not/a/kneeguard/topic",
                athlete_id=None,
                device_id=None,
                uuid=None,
                reason="topic",
                payload=b"{}",
                payload_size=2,
            )
        )
    return Club(db_url, engine, seed(engine, "ann", "cora"), seed(engine, "bo", "cora"))


def counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table.name: int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in Base.metadata.sorted_tables
        }


def rows_mentioning(engine: Engine, seeded: Seeded) -> list[str]:
    """Every row, in any table, that holds the athlete's id or carries one of their devices,
    uuids, alerts or marked strings."""
    needles = [seeded.mark, f"{seeded.athlete_id}@", *seeded.devices, *seeded.uuids]
    found = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(select(table)).mappings():
                values = list(row.values())
                if (
                    seeded.athlete_id in values
                    or any(n in str(v) for v in values for n in needles)
                    or row.get("alert_id") in seeded.alert_ids
                ):
                    found.append(f"{table.name}: {dict(row)!r:.200}")
    return found


def test_both_commands_are_registered_under_athlete() -> None:
    assert athlete_cli.athlete.commands.get("export") is athlete_cli.export
    assert athlete_cli.athlete.commands.get("delete") is athlete_cli.delete


# --- export -------------------------------------------------------------------------------------


def test_export_has_every_kind_of_row_and_nothing_of_another_athlete(club: Club) -> None:
    result = kneeguard(club.url, "athlete", "export", "--id", "ann")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)

    assert document["format"] == "kneeguard.athlete-export"
    assert document["athlete"]["id"] == "ann"
    assert document["athlete"]["coach_id"] == "cora"
    assert document["athlete"]["email"] == "ann@example.com"
    assert [d["id"] for d in document["devices"]] == sorted(club.ann.devices)
    assert [r["uuid"] for r in document["runs"]] == [club.ann.uuids[0]]
    (checkin,) = document["checkins"]
    assert checkin["uuid"] == club.ann.uuids[1]
    assert checkin["note"] == f"note {club.ann.mark} — ünïcode ✓"
    assert checkin["pain_sites"] == [{"side": "left", "aspect": "medial"}]
    assert checkin["locking"] is True
    assert sorted(a["id"] for a in document["alerts"]) == sorted(club.ann.alert_ids)
    for alert in document["alerts"]:
        assert [e["kind"] for e in alert["events"]] == ["opened", "raised"]
        assert all(e["alert_id"] == alert["id"] for e in alert["events"])
        assert alert["evidence"]["why"] == f"evidence {club.ann.mark}"
    assert sorted((d["recipient_kind"], d["channel"]) for d in document["deliveries"]) == [
        ("athlete", "email"),
        ("athlete", "inapp"),
        ("athlete", "push"),
        ("coach", "email"),
    ]
    assert len(document["prompts"]) == 1
    letters = {d["device_id"]: d for d in document["dead_letters"]}
    assert set(letters) == {club.ann.devices[0], "stranger"}
    assert letters[club.ann.devices[0]]["payload_encoding"] == "utf-8"
    assert f"payload {club.ann.mark}" in letters[club.ann.devices[0]]["payload"]
    assert letters["stranger"]["payload_encoding"] == "base64"

    # Instants are ISO 8601 in UTC.
    assert document["runs"][0]["start_time"] == "2026-11-19T12:00:00+00:00"
    assert datetime.fromisoformat(document["exported_at"]).utcoffset() == timedelta(0)

    text = result.stdout
    for needle in ("bo@example.com", club.bo.mark, *club.bo.devices, *club.bo.uuids, "digest:"):
        assert needle not in text


def test_export_of_an_athlete_with_nothing_but_a_profile(club: Club) -> None:
    with club.engine.begin() as conn:
        conn.execute(
            insert(Athlete).values(
                id="cy", name="Cy", email="cy@example.com", timezone="UTC", created_at=NOW
            )
        )
    result = kneeguard(club.url, "athlete", "export", "--id", "cy")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["athlete"]["coach_id"] is None
    for kind in ("devices", "runs", "checkins", "alerts", "deliveries", "prompts", "dead_letters"):
        assert document[kind] == [], kind


# --- delete -------------------------------------------------------------------------------------


def test_delete_erases_all_of_it_and_nothing_of_another_athlete(club: Club) -> None:
    before = counts(club.engine)
    bo_before = json.loads(kneeguard(club.url, "athlete", "export", "--id", "bo").stdout)
    held = {line.split(":", 1)[0] for line in rows_mentioning(club.engine, club.ann)}

    result = kneeguard(club.url, "athlete", "delete", "--id", "ann", "--yes")
    assert result.returncode == 0, result.stderr
    reported = dict(
        line.strip().split(": ") for line in result.stdout.splitlines()[1:] if ": " in line
    )
    expected = {
        "athletes": 1,
        "devices": 2,
        "runs": 1,
        "checkins": 1,
        "alerts": 2,
        "alert_events": 4,
        "deliveries": 4,
        "prompts": 1,
        "dead_letters": 2,
    }
    assert {k: int(v) for k, v in reported.items()} == expected
    assert held == set(expected)
    assert "broker credentials were not changed" in result.stdout

    assert rows_mentioning(club.engine, club.ann) == []
    after = counts(club.engine)
    assert {t: before[t] - after[t] for t in before if before[t] != after[t]} == expected
    assert after["coaches"] == 1 and after["digests"] == 1
    bo_after = json.loads(kneeguard(club.url, "athlete", "export", "--id", "bo").stdout)
    assert {k: v for k, v in bo_after.items() if k != "exported_at"} == {
        k: v for k, v in bo_before.items() if k != "exported_at"
    }
    assert_user_error(kneeguard(club.url, "athlete", "export", "--id", "ann"), 2, "unknown")


def test_delete_removes_the_devices_broker_credentials_and_acl_entries(
    club: Club, tmp_path: Path
) -> None:
    passwd, acl = tmp_path / "passwd", tmp_path / "acl"
    set_password(passwd, "kneeguard", "service-password")
    acl.write_text("user kneeguard\ntopic readwrite kneeguard/v1/#\n")
    broker = BrokerCredentials(passwd, acl, None, Topics("kneeguard/v1"))
    devices = [("ann", d) for d in club.ann.devices] + [("bo", d) for d in club.bo.devices]
    for athlete_id, device_id in devices:
        broker.issue(athlete_id, device_id, devices)
    assert "user ann.ann-watch" in acl.read_text()

    env = {"KNEEGUARD_MQTT_PASSWORD_FILE": str(passwd), "KNEEGUARD_MQTT_ACL_FILE": str(acl)}
    result = kneeguard(club.url, "athlete", "delete", "--id", "ann", "--yes", **env)
    assert result.returncode == 0, result.stderr
    assert "  broker credentials: 2" in result.stdout
    assert sorted(read_password_entries(passwd)) == ["bo.bo-phone", "bo.bo-watch", "kneeguard"]
    text = acl.read_text()
    assert "ann" not in text.split(ACL_BEGIN, 1)[1]
    assert "user bo.bo-watch" in text and text.startswith("user kneeguard\n")


def test_credentials_that_cannot_be_removed_leave_the_athlete_in_place(
    club: Club, tmp_path: Path
) -> None:
    unreadable = tmp_path / "passwd"
    unreadable.mkdir()  # a directory where the password file should be
    before = counts(club.engine)
    acl = tmp_path / "acl"
    acl.write_text("user kneeguard\ntopic readwrite kneeguard/v1/#\n")
    env = {"KNEEGUARD_MQTT_PASSWORD_FILE": str(unreadable), "KNEEGUARD_MQTT_ACL_FILE": str(acl)}
    result = kneeguard(club.url, "athlete", "delete", "--id", "ann", "--yes", **env)
    assert_user_error(result, 1, "athlete ann not deleted: cannot remove broker credentials")
    assert counts(club.engine) == before


def test_delete_without_yes_off_a_terminal_refuses(
    club: Club, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(athlete_cli, "stdin_is_tty", lambda: False)
    before = counts(club.engine)
    result = kneeguard(club.url, "athlete", "delete", "--id", "ann")
    assert_user_error(result, 2, "refusing to delete without --yes")
    assert counts(club.engine) == before


@pytest.mark.parametrize(("answer", "erased"), [("n\n", False), ("y\n", True)])
def test_delete_on_a_terminal_asks_first(
    club: Club, monkeypatch: pytest.MonkeyPatch, answer: str, erased: bool
) -> None:
    monkeypatch.setattr(athlete_cli, "stdin_is_tty", lambda: True)
    monkeypatch.setattr("sys.stdin", io.StringIO(answer))
    before = counts(club.engine)
    result = kneeguard(club.url, "athlete", "delete", "--id", "ann")
    assert "Erase athlete 'ann' and all of their data?" in result.stdout
    if erased:
        assert result.returncode == 0, result.stderr
        assert counts(club.engine)["athletes"] == before["athletes"] - 1
    else:
        assert result.returncode == 1
        assert result.stderr.strip() == "kneeguard: aborted"
        assert counts(club.engine) == before


@pytest.mark.parametrize(
    "args",
    [
        ["athlete", "export", "--id", "nobody"],
        ["athlete", "delete", "--id", "nobody", "--yes"],
        ["athlete", "delete", "--id", "nobody"],
        ["athlete", "export", "--id", "a b/c"],
    ],
)
def test_unknown_athlete_exits_2_with_one_line(club: Club, args: list[str]) -> None:
    before = counts(club.engine)
    assert_user_error(kneeguard(club.url, *args), 2, "unknown athlete")
    assert counts(club.engine) == before


def test_missing_id_exits_2(club: Club) -> None:
    assert_user_error(kneeguard(club.url, "athlete", "export"), 2, "Missing option '--id'")
    assert_user_error(kneeguard(club.url, "athlete", "delete", "--yes"), 2, "Missing option")
