"""Check-ins on a broker session and a writer of their own (KNEEGUARD_MQTT_CHECKIN_URL), against
mosquitto running the shipped config with its binding of client ids to user names.

Reproduction of the defect: with one session for runs and check-ins, a check-in published
behind a backlog of runs waited for every one of them (at the broker, whose queue for the
session is first in, first out, and in the one writer), so its red flag did too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, func, select, text

from db.engine import make_engine
from db.models import Alert, Checkin, Run
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from testsupport import (
    CHECKIN_USER,
    ROOT,
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeviceClient,
    Mosquitto,
    SmtpSink,
    checkin_payload,
    held_for,
    register,
    run_payload,
    service,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]

PREFIX = "kneeguard/v1"
RUN_TOPIC = f"{PREFIX}/ann/watch/run"
CHECKIN_TOPIC = f"{PREFIX}/ann/watch/checkin"


def count(engine: Engine, model: type[Run] | type[Checkin]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def uuids(engine: Engine, model: type[Run] | type[Checkin]) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(select(model.uuid)).scalars())


def urgent_alerts(engine: Engine) -> int:
    with engine.connect() as conn:
        query = select(func.count()).select_from(Alert).where(Alert.severity == "urgent")
        return int(conn.execute(query).scalar_one())


def runs(n: int) -> tuple[list[str], list[tuple[str, bytes]]]:
    payloads = [run_payload() for _ in range(n)]
    return [p["header"]["uuid"] for p in payloads], [
        (RUN_TOPIC, json.dumps(p).encode()) for p in payloads
    ]


def red_flag() -> dict[str, Any]:
    return checkin_payload(pain_score=3, symptoms={"locking": True})


@contextmanager
def runs_table_locked(url: str) -> Iterator[psycopg.Connection[Any]]:
    """Another transaction holds an EXCLUSIVE lock on `runs`: inserts of runs wait for it,
    reads and every other table do not."""
    conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
    try:
        conn.execute("LOCK TABLE runs IN EXCLUSIVE MODE")
        yield conn
    finally:
        conn.rollback()
        conn.close()


def insert_waits_on_runs(engine: Engine) -> bool:
    with engine.connect() as conn:
        waiting = conn.execute(
            text("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'runs'::regclass")
        ).scalar_one()
    return int(waiting) > 0


@pytest.mark.postgres
@pytest.mark.parametrize("lane", ["own session", "shared session"])
def test_a_red_flag_goes_through_while_the_run_writer_is_stuck(
    pg_url: str, bound_broker: Mosquitto, lane: str
) -> None:
    engine = make_engine(pg_url)
    smtp = SmtpSink().start()
    settings = Settings(
        database_url=pg_url,
        mqtt_url=bound_broker.url,
        mqtt_checkin_url=bound_broker.checkin_url if lane == "own session" else None,
        smtp_url=smtp.url,
        _env_file=None,
    )
    app = Service(settings, engine, first_run_delay=timedelta(minutes=10))
    app.start()
    device = None
    try:
        assert app.wait_ready(10)
        assert len(app.connections) == (2 if lane == "own session" else 1)
        # With a lane of their own, check-ins never wait; runs give way to a red flag's sends.
        own = lane == "own session"
        assert app.writer.give_way_to == (app.outbox.urgent_busy if own else None)
        assert app.checkin_writer is None or app.checkin_writer.give_way_to is None
        device = DeviceClient(bound_broker.port, subscribe=(f"{PREFIX}/+/+/ack",))
        run_ids, messages = runs(3000)
        with runs_table_locked(pg_url):
            # More runs than the broker's in-flight window (1000): the rest wait in the broker's
            # queue for the run session, behind a writer that cannot commit.
            device.publish_many(messages)
            assert wait_until(lambda: insert_waits_on_runs(engine), 20)
            flag = red_flag()
            device.publish(CHECKIN_TOPIC, flag)
            if lane == "own session":
                ack = device.ack_for(flag["header"]["uuid"], 10)
                assert ack["status"] == "accepted"
                assert wait_until(lambda: urgent_alerts(engine) == 1, 10)
                assert wait_until(
                    lambda: any("ann@example.com" in to for _, to in smtp.received), 20
                )
                assert count(engine, Run) == 0  # the run writer is still stuck
            else:
                # The defect: the check-in waits behind the stuck runs.
                assert not wait_until(lambda: count(engine, Checkin) > 0, 3)
        # The lock is gone: every run goes in, once.
        assert wait_until(lambda: count(engine, Run) == 3000, 60)
        device.ack_for(flag["header"]["uuid"], 20)
        assert wait_until(lambda: urgent_alerts(engine) == 1, 10)
        assert sorted(uuids(engine, Run)) == sorted(run_ids)
        assert uuids(engine, Checkin) == [flag["header"]["uuid"]]
    finally:
        if device is not None:
            device.close()
        app.stop()
        smtp.stop()
        engine.dispose()


def test_turning_the_checkin_session_on_does_not_deliver_checkins_twice(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    """The run session's persistent subscription to the check-ins, left from before, is dropped:
    otherwise each check-in would reach both sessions and the device would get two answers."""
    engine = make_engine(sqlite_url)
    register(engine, quiet_hours="off")
    before = Service(
        Settings(database_url=sqlite_url, mqtt_url=bound_broker.url, _env_file=None),
        engine,
        only="ingest",
    )
    before.start()
    assert before.wait_ready(10)
    before.stop()
    engine = make_engine(sqlite_url)
    settings = Settings(
        database_url=sqlite_url,
        mqtt_url=bound_broker.url,
        mqtt_checkin_url=bound_broker.checkin_url,
        _env_file=None,
    )
    after = Service(settings, engine, only="ingest")
    after.start()
    device = DeviceClient(bound_broker.port, subscribe=(f"{PREFIX}/+/+/ack",))
    try:
        assert after.wait_ready(10)
        flag = red_flag()
        device.publish(CHECKIN_TOPIC, flag)
        assert device.ack_for(flag["header"]["uuid"])["status"] == "accepted"
        time.sleep(1.5)  # a second delivery would be answered `duplicate` by now
        assert [a["status"] for a in device.acks()] == ["accepted"]
        assert after.checkin_writer is not None and after.checkin_writer.committed == 1
        assert after.writer.committed == 0
    finally:
        device.close()
        after.stop()


def test_both_sessions_share_their_subscriptions_across_replicas(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    """KNEEGUARD_MQTT_SHARED_GROUP: both sessions subscribe as $share/GROUP/..., and the ACL
    lets the check-in user do so."""
    engine = make_engine(sqlite_url)
    register(engine, quiet_hours="off")
    settings = Settings(
        database_url=sqlite_url,
        mqtt_url=bound_broker.url,
        mqtt_checkin_url=bound_broker.checkin_url,
        mqtt_shared_group="kneeguard",
        _env_file=None,
    )
    app = Service(settings, engine, only="ingest")
    app.start()
    device = DeviceClient(bound_broker.port, subscribe=(f"{PREFIX}/+/+/ack",))
    try:
        assert app.wait_ready(10), [c.fatal_error for c in app.connections]
        run, flag = run_payload(), red_flag()
        device.publish(RUN_TOPIC, run)
        device.publish(CHECKIN_TOPIC, flag)
        assert device.ack_for(run["header"]["uuid"])["status"] == "accepted"
        assert device.ack_for(flag["header"]["uuid"])["status"] == "accepted"
        # The writer counts a batch once its acks are out, so the count may trail the ack.
        checkins = app.checkin_writer
        assert checkins is not None
        assert wait_until(lambda: checkins.committed == 1 and app.writer.committed == 1, 5)
    finally:
        device.close()
        app.stop()


# --- `kneeguard run` as a process: crashes and clean stops with both sessions ------------------


def burst_with_checkins(
    runs_n: int, checkins_n: int
) -> tuple[list[str], list[str], list[tuple[str, bytes]]]:
    run_ids, messages = runs(runs_n)
    checkins = [red_flag() for _ in range(checkins_n)]
    every = max(1, runs_n // max(1, checkins_n))
    for i, payload in enumerate(checkins):
        messages.insert((i + 1) * every + i, (CHECKIN_TOPIC, json.dumps(payload).encode()))
    return run_ids, [c["header"]["uuid"] for c in checkins], messages


def lane_env(broker: Mosquitto) -> dict[str, str]:
    return {"KNEEGUARD_MQTT_CHECKIN_URL": broker.checkin_url}


def publisher(broker: Mosquitto, messages: list[tuple[str, bytes]]) -> threading.Thread:
    """Publishes `messages` at QoS 1 as the `tester` user, on a thread of its own."""

    def publish() -> None:
        client = DeviceClient(broker.port)
        try:
            client.publish_many(messages)
        finally:
            client.close()

    thread = threading.Thread(target=publish)
    thread.start()
    return thread


@pytest.mark.postgres
def test_sigkill_with_both_sessions_loses_nothing_and_doubles_nothing(
    pg_url: str, bound_broker: Mosquitto
) -> None:
    engine = make_engine(pg_url)
    run_ids, checkin_ids, messages = burst_with_checkins(5000, 100)
    try:
        with service(pg_url, bound_broker.url, **lane_env(bound_broker)) as first:
            assert wait_until(lambda: first.log.count("subscribed to") == 2, 20), first.log
            sender = publisher(bound_broker, messages)
            assert wait_until(lambda: count(engine, Run) >= 500, 60), first.log
            first.process.kill()
            first.wait()
            killed_at = count(engine, Run), count(engine, Checkin)
            sender.join(120)
        assert killed_at[0] < 5000, "the burst finished before the kill; nothing was tested"
        with service(pg_url, bound_broker.url, **lane_env(bound_broker)) as second:
            assert wait_until(lambda: count(engine, Run) == 5000, 120), second.log
            assert wait_until(lambda: count(engine, Checkin) == 100, 30), second.log
            time.sleep(1)  # any redelivered duplicate would have arrived by now
            second.signal(signal.SIGTERM)
            assert second.wait() == 0, second.log
        assert sorted(uuids(engine, Run)) == sorted(run_ids)
        assert sorted(uuids(engine, Checkin)) == sorted(checkin_ids)
    finally:
        engine.dispose()


def pending_for(broker: Mosquitto, user: str) -> list[str]:
    """The uuids the broker still holds for a service user's persistent session."""
    held = held_for(broker.port, user, SERVICE_PASSWORD)
    return [json.loads(payload)["header"]["uuid"] for payload in held]


@pytest.mark.postgres
def test_sigterm_with_both_sessions_commits_everything_it_acknowledged(
    pg_url: str, bound_broker: Mosquitto
) -> None:
    engine = make_engine(pg_url)
    run_ids, checkin_ids, messages = burst_with_checkins(10000, 100)
    try:
        # The sessions exist; while the service is away the broker queues the burst for them.
        with service(pg_url, bound_broker.url, **lane_env(bound_broker)) as proc:
            assert wait_until(lambda: proc.log.count("subscribed to") == 2, 20), proc.log
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log
        publisher(bound_broker, messages).join(120)
        with service(pg_url, bound_broker.url, **lane_env(bound_broker)) as proc:
            # At the first commit, with most of the backlog still queued at the broker.
            assert wait_until(lambda: count(engine, Run) >= 1, 60), proc.log
            proc.signal(signal.SIGTERM)
            assert proc.wait() == 0, proc.log
        stored = set(uuids(engine, Run)) | set(uuids(engine, Checkin))
        assert len(stored) < 10100, "the burst was stored before SIGTERM; nothing was tested"
        # Whatever is not stored must still be held by the broker for one of the two sessions:
        # a message acknowledged to the broker but not committed would be in neither set.
        held = set(pending_for(bound_broker, SERVICE_USER))
        held_checkins = set(pending_for(bound_broker, CHECKIN_USER))
        missing = set(run_ids + checkin_ids) - stored
        assert missing <= held | held_checkins, f"{len(missing - held - held_checkins)} lost"
        assert not held_checkins & set(run_ids)
        assert not held & set(checkin_ids)
    finally:
        engine.dispose()


def test_the_checkin_session_needs_a_user_of_its_own(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    with service(sqlite_url, bound_broker.url, KNEEGUARD_MQTT_CHECKIN_URL=bound_broker.url) as proc:
        code = proc.wait(30)
    assert code == 2
    assert "invalid KNEEGUARD_MQTT_CHECKIN_URL: needs a broker user of its own" in proc.log
    assert SERVICE_PASSWORD not in proc.log


def test_bad_checkin_credentials_stop_the_service_with_a_clear_error(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    url = f"mqtt://{CHECKIN_USER}:wrong-password-8812@127.0.0.1:{bound_broker.port}"
    with service(sqlite_url, bound_broker.url, KNEEGUARD_MQTT_CHECKIN_URL=url) as proc:
        code = proc.wait(30)
    assert code == 1
    assert "the broker refused the credentials" in proc.log
    assert f"(mqtt://{CHECKIN_USER}@127.0.0.1:{bound_broker.port}); not retrying" in proc.log
    assert "wrong-password-8812" not in proc.log
    assert "Traceback" not in proc.log


def test_without_a_checkin_session_the_service_says_red_flags_share_the_run_queue(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    with service(sqlite_url, bound_broker.url) as proc:
        proc.wait_subscribed()
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0
    assert "KNEEGUARD_MQTT_CHECKIN_URL is not set" in proc.log
    assert proc.log.count("subscribed to") == 1


# --- deploy/mosquitto/init-auth.sh ------------------------------------------------------------


def run_init_auth(auth_dir: Path) -> str:
    shell = shutil.which("dash") or shutil.which("sh") or "/bin/sh"
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AUTH_DIR": str(auth_dir),
        "ACL_TEMPLATE": str(ROOT / "deploy" / "mosquitto" / "acl"),
        "AUTH_OWNER": f"{os.getuid()}:{os.getgid()}",
        "MQTT_SERVICE_PASSWORD": SERVICE_PASSWORD,
    }
    result = subprocess.run(
        [shell, str(ROOT / "deploy" / "mosquitto" / "init-auth.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout


def test_init_auth_gives_the_checkin_session_its_user_and_acl_also_on_an_old_acl(
    tmp_path: Path,
) -> None:
    if shutil.which("mosquitto_passwd") is None:
        pytest.skip("mosquitto_passwd is not installed")
    auth = tmp_path / "auth"
    auth.mkdir()
    # An ACL seeded before the check-in session existed, with a device section in use.
    shipped = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
    start = shipped.index("# The service's check-in session")
    end = shipped.index("\n\n", shipped.index(f"user {CHECKIN_USER}")) + 2
    old = shipped[:start] + shipped[end:]
    old = old.replace(
        "# --- end of devices ---",
        "user ann.watch\ntopic write kneeguard/v1/ann/watch/run\n# --- end of devices ---",
    )
    assert f"user {CHECKIN_USER}" not in old
    (auth / "acl").write_text(old)
    first = run_init_auth(auth)
    second = run_init_auth(auth)
    assert f"ACL block of '{CHECKIN_USER}' added" in first
    assert "added" not in second
    acl = (auth / "acl").read_text()
    assert acl.count(f"user {CHECKIN_USER}\n") == 1
    assert acl.startswith(old)
    assert "user ann.watch\n" in acl
    users = [line.split(":")[0] for line in (auth / "passwd").read_text().splitlines()]
    assert sorted(users) == sorted([SERVICE_USER, CHECKIN_USER, "healthcheck"])
    # A broker with these files lets the service's two sessions in, each under its own user.
    broker = Mosquitto(tmp_path / "broker", bind_client_ids=True)
    broker.prepare()
    shutil.copyfile(auth / "acl", broker.acl_file)
    shutil.copyfile(auth / "passwd", broker.password_file)
    broker.start()
    try:
        engine = make_engine(f"sqlite:///{tmp_path / 'kg.db'}", create_dirs=True)
        from db.migrate import upgrade

        upgrade(engine)
        settings = Settings(
            database_url=f"sqlite:///{tmp_path / 'kg.db'}",
            mqtt_url=broker.url,
            mqtt_checkin_url=broker.checkin_url,
            _env_file=None,
        )
        app = Service(settings, engine, only="ingest")
        app.start()
        try:
            assert app.wait_ready(10), [c.fatal_error for c in app.connections]
        finally:
            app.stop()
    finally:
        broker.stop()
