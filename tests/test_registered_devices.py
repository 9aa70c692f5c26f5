"""`db.bulk.registered_devices`, the writer's one question per batch: which of these (athlete,
device) pairs may store? Asked of real SQLite and PostgreSQL, inside a transaction that is
rolled back, so each example starts from an empty table."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert

from db.bulk import registered_devices
from db.models import Athlete, Device

NOW = datetime(2026, 12, 7, 8, 0, tzinfo=UTC)

# Few names, so that asked and registered pairs meet often; ids that differ only in case or by a
# prefix, so that a match on anything looser than the exact pair shows.
ATHLETES = st.sampled_from(["ann", "Ann", "ann2", "bob", "b"])
DEVICES = st.sampled_from(["watch-1", "watch-10", "WATCH-1", "phone"])
PAIRS = st.sets(st.tuples(ATHLETES, DEVICES), max_size=12)


def _register(conn: Connection, pairs: set[tuple[str, str]]) -> None:
    athletes = sorted({athlete for athlete, _ in pairs})
    if athletes:
        conn.execute(
            insert(Athlete),
            [
                {
                    "id": athlete,
                    "name": athlete,
                    "email": f"{athlete}@example.com",
                    "timezone": "UTC",
                    "created_at": NOW,
                }
                for athlete in athletes
            ],
        )
        conn.execute(
            insert(Device),
            [{"athlete_id": a, "id": d, "created_at": NOW} for a, d in sorted(pairs)],
        )


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(registered=PAIRS, asked=PAIRS)
def test_exactly_the_registered_pairs_asked_for(
    engine: Engine, registered: set[tuple[str, str]], asked: set[tuple[str, str]]
) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        _register(conn, registered)
        assert registered_devices(conn, asked) == registered & asked
        transaction.rollback()


def test_a_device_of_another_athlete_is_not_registered(engine: Engine) -> None:
    with engine.connect() as conn, conn.begin() as transaction:
        _register(conn, {("ann", "watch-1"), ("bob", "phone")})
        assert registered_devices(conn, {("ann", "phone"), ("bob", "watch-1")}) == set()
        assert registered_devices(conn, set()) == set()
        transaction.rollback()


def test_a_batch_of_more_athletes_than_one_query_holds(engine: Engine) -> None:
    """A batch may hold up to 10,000 messages (KNEEGUARD_INGEST_BATCH_SIZE), each from another
    athlete; SQLite is asked in chunks, and every chunk's answer counts."""
    registered = {(f"a{i:05d}", "watch") for i in range(0, 1_500, 2)}
    asked = {(f"a{i:05d}", "watch") for i in range(1_500)} | {("a00000", "other")}
    with engine.connect() as conn, conn.begin() as transaction:
        _register(conn, registered)
        assert registered_devices(conn, asked) == registered
        transaction.rollback()


def test_a_device_removed_in_another_transaction_is_no_longer_registered(engine: Engine) -> None:
    """What `device revoke` does (it deletes the row) is seen by the next batch: nothing is
    remembered between calls."""
    with engine.begin() as conn:
        _register(conn, {("ann", "watch-1"), ("ann", "phone")})
    with engine.connect() as conn:
        assert registered_devices(conn, {("ann", "watch-1"), ("ann", "phone")}) == {
            ("ann", "watch-1"),
            ("ann", "phone"),
        }
        conn.rollback()
    with engine.begin() as conn:
        conn.execute(delete(Device).where(Device.id == "watch-1"))
    with engine.connect() as conn:
        assert registered_devices(conn, {("ann", "watch-1"), ("ann", "phone")}) == {
            ("ann", "phone")
        }
