"""Runs stored by a process of their own (KNEEGUARD_RUN_LANE_PROCESS, with a check-in session),
against mosquitto running the shipped config with client ids bound to user names.

In one process, runs took the CPU and the interpreter lock from the check-in writer, the rules
and the outbox, so that a red flag's email waited behind a flood of runs. These tests show the
run process doing the run session's whole job (storing, acknowledging, the metrics and the
readiness check), a red flag going through while it is stuck, and that no way of ending either
process loses a message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from db.engine import make_engine
from db.models import Checkin, Run
from kneeguard.app.runlane import NICENESS
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from tests.test_checkin_lane import (
    CHECKIN_TOPIC,
    PREFIX,
    count,
    insert_waits_on_runs,
    red_flag,
    runs,
    runs_table_locked,
    urgent_alerts,
    uuids,
)
from testsupport import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeviceClient,
    Mosquitto,
    SmtpSink,
    device_client,
    free_port,
    register,
    service,
    service_env,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(180)]


def process_env(broker: Mosquitto) -> dict[str, str]:
    return {"KNEEGUARD_MQTT_CHECKIN_URL": broker.checkin_url, "KNEEGUARD_RUN_LANE_PROCESS": "true"}


def child_pid(log: str) -> int:
    marker = "runs are stored by a process of their own (pid "
    assert marker in log, log
    return int(log.split(marker, 1)[1].split(")", 1)[0])


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def niceness(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


@pytest.mark.postgres
def test_a_red_flag_goes_through_while_the_run_process_is_stuck(
    pg_url: str, bound_broker: Mosquitto
) -> None:
    engine = make_engine(pg_url)
    smtp = SmtpSink().start()
    settings = Settings(
        database_url=pg_url,
        mqtt_url=bound_broker.url,
        mqtt_checkin_url=bound_broker.checkin_url,
        run_lane_process=True,
        smtp_url=smtp.url,
        _env_file=None,
    )
    app = Service(settings, engine, first_run_delay=timedelta(minutes=10))
    assert app.run_lane is not None
    app.start()
    device = None
    try:
        assert app.wait_ready(30), [c.fatal_error for c in app.connections]
        assert app.readiness.reasons() == []
        lane_pid = app.run_lane.pid
        assert lane_pid is not None and lane_pid != os.getpid()
        assert niceness(lane_pid) == min(19, niceness(os.getpid()) + NICENESS)
        device = DeviceClient(bound_broker.port, subscribe=(f"{PREFIX}/+/+/ack",))
        run_ids, messages = runs(3000)
        with runs_table_locked(pg_url):
            device.publish_many(messages)
            assert wait_until(lambda: insert_waits_on_runs(engine), 20)
            flag = red_flag()
            device.publish(CHECKIN_TOPIC, flag)
            ack = device.ack_for(flag["header"]["uuid"], 10)
            assert ack["status"] == "accepted"
            assert wait_until(lambda: urgent_alerts(engine) == 1, 10)
            assert wait_until(lambda: any("ann@example.com" in to for _, to in smtp.received), 20)
            assert count(engine, Run) == 0  # the run process is still stuck
            # The readiness check sees the stuck batch in the other process.
            app.readiness.writer_stall = 0.5
            assert wait_until(
                lambda: any("run-writer stuck" in r for r in app.readiness.reasons()), 10
            )
        # The lock is gone: every run goes in, once, and is acknowledged to the device.
        assert wait_until(lambda: count(engine, Run) == 3000, 60)
        assert wait_until(lambda: len(device.acks()) == 3001, 30)
        assert sorted(uuids(engine, Run)) == sorted(run_ids)
        assert uuids(engine, Checkin) == [flag["header"]["uuid"]]
        # The run process's counts reach this process's metrics.
        registry = app.metrics.registry
        assert wait_until(
            lambda: (
                registry.get_sample_value(
                    "kneeguard_messages_total", {"kind": "run", "outcome": "stored"}
                )
                == 3000
            ),
            5,
        )
        assert (
            registry.get_sample_value("kneeguard_messages_received_total", {"kind": "run"}) == 3000
        )
        assert (
            registry.get_sample_value("kneeguard_messages_received_total", {"kind": "checkin"}) == 1
        )
        assert (registry.get_sample_value("kneeguard_writer_batch_seconds_count") or 0) >= 2
        app.readiness.writer_stall = 30
        assert wait_until(lambda: app.readiness.reasons() == [], 5), app.readiness.reasons()
    finally:
        if device is not None:
            device.close()
        app.stop()
        smtp.stop()
        engine.dispose()
    assert app.run_lane.pid is not None and not alive(app.run_lane.pid)


@pytest.mark.postgres
def test_the_service_killed_its_run_process_stores_what_it_holds_and_exits(
    pg_url: str, bound_broker: Mosquitto
) -> None:
    engine = make_engine(pg_url)
    run_ids, messages = runs(3000)
    try:
        with service(pg_url, bound_broker.url, **process_env(bound_broker)) as first:
            assert wait_until(lambda: first.log.count("subscribed to") == 2, 30), first.log
            lane = child_pid(first.log)
            with device_client(bound_broker.port) as device:
                device.publish_many(messages)
            assert wait_until(lambda: count(engine, Run) >= 100, 60), first.log
            first.process.kill()
            first.wait()
            # Orphaned, the run process ends by itself; what it acknowledged is stored.
            assert wait_until(lambda: not alive(lane), 40), "the run process outlived the service"
        with service(pg_url, bound_broker.url, **process_env(bound_broker)) as second:
            # The orphan may have stored every run before it exited: wait for the new service
            # itself, so that it is up (and its signal handlers are) before it is stopped.
            assert wait_until(lambda: second.log.count("subscribed to") == 2, 30), second.log
            assert wait_until(lambda: count(engine, Run) == 3000, 120), second.log
            time.sleep(1)  # any redelivered duplicate would have arrived by now
            second.signal(signal.SIGTERM)
            assert second.wait() == 0, second.log
        assert sorted(uuids(engine, Run)) == sorted(run_ids)
    finally:
        engine.dispose()


def test_a_dead_run_process_stops_the_service_with_a_clear_error(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    with service(sqlite_url, bound_broker.url, **process_env(bound_broker)) as proc:
        assert wait_until(lambda: proc.log.count("subscribed to") == 2, 30), proc.log
        os.kill(child_pid(proc.log), signal.SIGKILL)
        code = proc.wait(30)
    assert code == 1
    assert "the run process exited unexpectedly (exit status -9)" in proc.log


def test_refused_run_credentials_stop_the_service_with_a_clear_error(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    url = f"mqtt://{SERVICE_USER}:wrong-password-5521@127.0.0.1:{bound_broker.port}"
    with service(sqlite_url, url, **process_env(bound_broker)) as proc:
        code = proc.wait(30)
    assert code == 1
    assert "the broker refused the credentials" in proc.log
    assert "wrong-password-5521" not in proc.log
    assert SERVICE_PASSWORD not in proc.log
    assert "Traceback" not in proc.log


def test_metrics_and_readiness_of_the_run_process_over_http(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    bind = f"127.0.0.1:{free_port()}"
    engine = make_engine(sqlite_url)
    register(engine)
    _, messages = runs(50)
    with service(
        sqlite_url, bound_broker.url, KNEEGUARD_WEB_BIND=bind, **process_env(bound_broker)
    ) as proc:
        assert wait_until(lambda: proc.log.count("subscribed to") == 2, 30), proc.log
        assert wait_until(
            lambda: httpx.get(f"http://{bind}/readyz", timeout=5).status_code == 200, 20
        )
        with device_client(bound_broker.port) as device:
            device.publish_many(messages)
        try:
            assert wait_until(lambda: count(engine, Run) == 50, 30), proc.log
        finally:
            engine.dispose()
        line = 'kneeguard_messages_total{kind="run",outcome="stored"} 50.0'
        assert wait_until(lambda: line in httpx.get(f"http://{bind}/metrics", timeout=5).text, 10)
        proc.signal(signal.SIGTERM)
        assert proc.wait() == 0, proc.log
    assert "stopped after 50 messages" in proc.log


def test_the_installed_command_starts_its_run_process(
    sqlite_url: str, bound_broker: Mosquitto
) -> None:
    """As the image runs it: the `kneeguard` console script, whose module the run process must
    not run again as a command when it starts."""
    script = Path(sys.executable).with_name("kneeguard")
    assert script.exists(), script
    env = service_env(sqlite_url, bound_broker.url, **process_env(bound_broker))
    proc = subprocess.Popen(
        [str(script), "run"], env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    lines: list[str] = []

    def read() -> None:
        assert proc.stderr is not None
        lines.extend(line.rstrip("\n") for line in proc.stderr)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert wait_until(lambda: sum("subscribed to" in line for line in lines) == 2, 30), lines
        lane = child_pid("\n".join(lines))
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, lines
        reader.join(5)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert wait_until(lambda: not alive(lane), 10)
    assert "Usage:" not in "\n".join(lines)
