"""The whole service in the test's own process, on a real broker and database, with the small
club of `register` and a device client that collects its acks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select

from db.engine import make_engine
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport.club import register
from testsupport.servers import DeviceClient, Mosquitto, device_client


@dataclass
class Running:
    service: Service
    engine: Engine
    device: DeviceClient

    def count(self, model: type[Any]) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


@contextmanager
def running_service(db_url: str, broker: Mosquitto) -> Iterator[Running]:
    engine = make_engine(db_url)
    register(engine)
    service = Service(Settings(database_url=db_url, mqtt_url=broker.url, _env_file=None), engine)
    service.start()
    try:
        assert service.connection.ready.wait(10), "service did not subscribe"
        with device_client(broker.port) as device:
            yield Running(service, engine, device)
    finally:
        service.stop()
        engine.dispose()
