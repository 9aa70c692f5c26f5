"""The schema on both backends: migrations match the models, instants come back in UTC."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, insert, select

from db.engine import DatabaseError, check_ready, make_engine
from db.migrate import head_revision
from db.models import Athlete, Base, Coach
from db.types import UTCDateTime


def test_migrations_produce_exactly_the_models(engine: Engine) -> None:
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrated_database_is_ready(engine: Engine, db_url: str) -> None:
    check_ready(engine, db_url)
    assert head_revision() is not None


def test_instants_are_stored_and_returned_in_utc(engine: Engine) -> None:
    oslo = timezone(timedelta(hours=2))
    created = datetime(2026, 6, 1, 9, 30, tzinfo=oslo)
    with engine.begin() as conn:
        conn.execute(
            insert(Coach),
            [
                {
                    "id": "c",
                    "name": "C",
                    "email": "c@example.com",
                    "timezone": "Europe/Oslo",
                    "digest": "daily",
                    "digest_hour": 7,
                    "created_at": created,
                }
            ],
        )
    with engine.connect() as conn:
        stored = conn.execute(select(Coach.created_at)).scalar_one()
    assert stored == created
    assert stored.tzinfo is not None and stored.utcoffset() == timedelta(0)
    assert stored.hour == 7


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        UTCDateTime().process_bind_param(datetime(2026, 1, 1), make_engine("sqlite://").dialect)


def test_deleting_an_athlete_deletes_their_devices(engine: Engine) -> None:
    from db.engine import session_factory
    from kneeguard.admin.registry import Registry

    registry = Registry(session_factory(engine), clock=lambda: datetime(2026, 1, 1, tzinfo=UTC))
    registry.add_athlete(athlete_id="a", name="A", email="a@example.com")
    registry.add_device(athlete_id="a", device_id="w")
    with session_factory(engine)() as session:
        session.delete(session.get(Athlete, "a"))
        session.commit()
    with engine.connect() as conn:
        assert conn.execute(select(Athlete.id)).all() == []
        assert conn.exec_driver_sql("SELECT count(*) FROM devices").scalar_one() == 0


def test_unmigrated_database_is_not_ready(tmp_path: object) -> None:
    url = "sqlite://"
    with pytest.raises(DatabaseError, match="not initialised"):
        check_ready(make_engine(url), url)
