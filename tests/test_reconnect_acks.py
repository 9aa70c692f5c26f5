"""A message held by the writer while the broker connection drops is acknowledged once, on the
new connection, for its redelivered copy: against a real broker through a TCP proxy that cuts the
connection.

After a reconnect the broker sends again what was not acknowledged, with the same packet id. An
ack for the original, sent on the new connection, frees that id at the broker; the copy's own
ack, sent later, could then reach a different message the broker gave the id to, before that
message is stored. So a message's ack goes out on the connection it came on, or not at all.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from sqlalchemy import func, select

from db.engine import make_engine
from db.models import Run
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport import (
    RUN_TOPIC,
    SERVICE_PASSWORD,
    SERVICE_USER,
    Mosquitto,
    TcpProxy,
    device_client,
    register,
    run_payload,
    wait_until,
)


def test_a_message_held_across_a_reconnect_is_acknowledged_once_on_the_new_connection(
    sqlite_url: str, broker: Mosquitto
) -> None:
    engine = make_engine(sqlite_url)
    register(engine)
    with TcpProxy("127.0.0.1", broker.port) as proxy:
        url = f"mqtt://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{proxy.port}"
        service = Service(
            Settings(database_url=sqlite_url, mqtt_url=url, _env_file=None), engine, only="ingest"
        )
        connection = service.connection
        pubacks: list[tuple[int, int]] = []  # (connection number, packet id) of each PUBACK sent
        send_puback = connection._client._send_puback

        def recorded(mid: int) -> Any:
            pubacks.append((connection._connection, mid))
            return send_puback(mid)

        connection._client._send_puback = recorded  # type: ignore[method-assign]
        held = threading.Event()
        held.set()
        writer = service.writer
        writer.give_way_to, writer.max_give_way = held.is_set, 3600.0
        service.start()
        try:
            assert connection.ready.wait(10)
            with device_client(broker.port) as device:
                payload = run_payload()
                device.publish(RUN_TOPIC, json.dumps(payload).encode())
                # The writer has taken the run into a batch and waits.
                assert wait_until(
                    lambda: connection._connection == 1 and writer.queue_depth() == 0, 10
                )
                time.sleep(0.3)
                proxy.cut()
                time.sleep(0.3)
                proxy.restore()
                # Reconnected; the broker sent the run again, with the same packet id.
                assert wait_until(lambda: connection._connection == 2, 20)
                assert wait_until(lambda: writer.queue_depth() == 1, 10)
                held.clear()
                assert wait_until(lambda: len(device.acks()) == 2, 10), device.acks()
                assert [a["status"] for a in device.acks()] == ["accepted", "duplicate"]
                time.sleep(0.3)
        finally:
            held.clear()
            service.stop()
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(Run)).scalar_one() == 1
    engine.dispose()
    # One PUBACK, on the new connection, for the copy; none for the original.
    assert len(pubacks) == 1 and pubacks[0][0] == 2, pubacks
    assert connection.stale_acks == 1
