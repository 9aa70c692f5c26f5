"""Shared fixtures: real SQLite and PostgreSQL databases, a real mosquitto per test, the small club
registered (`db`) and with the ingest running (`live`); and the one
hypothesis profile, loaded here so the same settings apply whichever tests are collected."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from hypothesis import settings
from sqlalchemy import Engine, text

from db.engine import make_engine
from db.migrate import upgrade
from db.models import Base
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport import (
    DeviceClient,
    Mosquitto,
    Running,
    device_client,
    missing,
    register,
    running_service,
)
from testsupport.web import SECRET, WebApp, seed, serve

settings.register_profile("kneeguard", max_examples=60, deadline=None)
settings.load_profile("kneeguard")

PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=3"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session, migrated, dropped at the end."""
    name = f"kneeguard_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True)
    except psycopg.OperationalError as exc:
        missing(f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}")
        raise
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _empty_tables(engine: Engine) -> None:
    names = ", ".join(f'"{t.name}"' for t in reversed(Base.metadata.sorted_tables))
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL on each backend."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kneeguard.db'}"
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    url = request.getfixturevalue("pg_server_url")
    engine = make_engine(url)
    _empty_tables(engine)
    engine.dispose()
    yield url


@pytest.fixture
def pg_url(pg_server_url: str) -> str:
    """PostgreSQL with Cora, Ann (no quiet hours: her alerts go out at once) and Ann's watch."""
    engine = make_engine(pg_server_url)
    _empty_tables(engine)
    register(engine, quiet_hours="off")
    engine.dispose()
    return pg_server_url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'kneeguard.db'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """A mosquitto of our own, running the deploy config on a free port."""
    mosq = Mosquitto(tmp_path / "broker")
    mosq.start()
    yield mosq
    mosq.stop()


@pytest.fixture
def bound_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    """The shipped config with client ids bound to user names, plus the `tester` superuser (one
    client at a time under it)."""
    mosq = Mosquitto(tmp_path / "broker", bind_client_ids=True)
    mosq.start()
    yield mosq
    mosq.stop()


@pytest.fixture
def db(engine: Engine) -> Engine:
    register(engine)
    return engine


@pytest.fixture
def live(db: Engine, db_url: str, broker: Mosquitto) -> Iterator[tuple[Engine, DeviceClient]]:
    settings = Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None)
    service = Service(settings, db, only="ingest")
    service.start()
    assert service.connection.ready.wait(10)
    with device_client(broker.port) as device:
        yield db, device
    service.stop()


@pytest.fixture
def running(db_url: str, broker: Mosquitto) -> Iterator[Running]:
    """The service in this process on each backend, its club registered, a device connected."""
    with running_service(db_url, broker) as started:
        yield started


@pytest.fixture
def web(db_url: str) -> Iterator[WebApp]:
    """The web app alone on each backend, with two coaches and their athletes (`seed`)."""
    with serve(db_url, secret_key=SECRET) as app:
        seed(app.engine)
        yield app


@pytest.fixture
def web_sqlite(sqlite_url: str) -> Iterator[WebApp]:
    """The same, on SQLite only."""
    with serve(sqlite_url, secret_key=SECRET) as app:
        seed(app.engine)
        yield app
