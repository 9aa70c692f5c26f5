"""Retention on both databases: old dead letters and finished deliveries go, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select

from db.models import DeadLetter, Delivery
from kneeguard.admin.retention import purge
from kneeguard.app.service import Service
from kneeguard.settings import Settings

NOW = datetime(2026, 11, 25, 3, 0, tzinfo=UTC)


def add_dead_letters(engine: Engine, ages: list[timedelta]) -> None:
    with engine.begin() as conn:
        conn.execute(
            insert(DeadLetter),
            [
                {
                    "received_at": NOW - age,
                    "topic": f"kneeguard/v1/ann/watch/run#{i}",
                    "athlete_id": "ann",
                    "device_id": "watch",
                    "uuid": None,
                    "reason": "test",
                    "payload": b"{}",
                    "payload_size": 2,
                }
                for i, age in enumerate(ages)
            ],
        )


def add_deliveries(engine: Engine, rows: list[tuple[str, timedelta, bool]]) -> None:
    """(status, age, retry scheduled) per row."""
    values: list[dict[str, Any]] = [
        {
            "dedup_key": f"test:{i}:{status}",
            "alert_id": None,
            "digest_id": None,
            "reason": "opened",
            "recipient_kind": "athlete",
            "recipient_id": "ann",
            "athlete_id": "ann",
            "channel": "email",
            "status": status,
            "attempts": 1,
            "created_at": NOW - age,
            "due_at": NOW + timedelta(minutes=5) if retry else None,
        }
        for i, (status, age, retry) in enumerate(rows)
    ]
    with engine.begin() as conn:
        conn.execute(insert(Delivery), values)


def dead_letter_ages(engine: Engine) -> list[float]:
    with engine.connect() as conn:
        times = conn.execute(select(DeadLetter.received_at).order_by(DeadLetter.id)).scalars()
        return [(NOW - t) / timedelta(days=1) for t in times]


def delivery_keys(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(Delivery.dedup_key).order_by(Delivery.id)).scalars())


def test_dead_letters_older_than_the_limit_go_and_younger_ones_stay(engine: Engine) -> None:
    day = timedelta(days=1)
    add_dead_letters(engine, [31 * day, 29 * day, 30 * day, 30 * day + timedelta(seconds=1), day])
    purged = purge(engine, NOW, dead_letter_days=30, delivery_days=180)
    assert (purged.dead_letters, purged.deliveries) == (2, 0)
    assert dead_letter_ages(engine) == [29, 30, 1]  # exactly 30 days is not older than 30


def test_only_finished_deliveries_older_than_the_limit_go(engine: Engine) -> None:
    old, young = timedelta(days=181), timedelta(days=179)
    add_deliveries(
        engine,
        [
            ("sent", old, False),
            ("dead", old, False),
            ("failed", old, False),  # failed permanently: finished
            ("failed", old, True),  # failed, retry scheduled: still on its way
            ("pending", old, True),
            ("pending", old, False),
            ("sending", old, False),
            ("sent", young, False),
            ("dead", young, False),
            ("failed", young, False),
        ],
    )
    purged = purge(engine, NOW, dead_letter_days=30, delivery_days=180)
    assert (purged.dead_letters, purged.deliveries) == (0, 3)
    assert delivery_keys(engine) == [
        "test:3:failed",
        "test:4:pending",
        "test:5:pending",
        "test:6:sending",
        "test:7:sent",
        "test:8:dead",
        "test:9:failed",
    ]
    assert purge(engine, NOW, 30, 180).total == 0  # idempotent


def test_a_large_purge_goes_in_batches(engine: Engine) -> None:
    add_dead_letters(engine, [timedelta(days=40)] * 25 + [timedelta(days=2)] * 3)
    add_deliveries(engine, [("sent", timedelta(days=200), False)] * 7)
    purged = purge(engine, NOW, 30, 180, batch_size=4)
    assert (purged.dead_letters, purged.deliveries) == (25, 7)
    assert dead_letter_ages(engine) == [2, 2, 2]


def test_purge_refuses_a_naive_instant_and_non_positive_limits(engine: Engine) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        purge(engine, datetime(2026, 11, 25), 30, 180)
    with pytest.raises(ValueError, match="positive"):
        purge(engine, NOW, 0, 180)


def test_the_service_schedules_the_purge_daily_with_the_configured_limits(
    engine: Engine, db_url: str
) -> None:
    settings = Settings(
        database_url=db_url,
        mqtt_url="mqtt://127.0.0.1:1",
        dead_letter_retention_days=7,
        delivery_retention_days=14,
        _env_file=None,
    )
    service = Service(settings, engine, clock=lambda: NOW)
    assert service.scheduler is not None
    job = service.scheduler.get_job("retention")
    assert job is not None
    assert job.trigger.interval == timedelta(days=1)
    assert job.func == service.purge_expired

    add_dead_letters(engine, [timedelta(days=8), timedelta(days=6)])
    add_deliveries(
        engine, [("sent", timedelta(days=15), False), ("sent", timedelta(days=13), False)]
    )
    service.purge_expired()
    assert dead_letter_ages(engine) == [6]
    assert delivery_keys(engine) == ["test:1:sent"]
    assert Service(settings, engine, only="ingest").scheduler is None
