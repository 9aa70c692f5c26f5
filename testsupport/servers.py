"""Real servers for the tests and benchmarks: a mosquitto on a free port with the deploy config,
device clients, and waiting on them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid as uuidlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

ROOT = Path(__file__).resolve().parent.parent
DEPLOY_CONF = ROOT / "deploy" / "mosquitto" / "mosquitto.conf"
SERVICE_USER = "kneeguard"
SERVICE_PASSWORD = "service-secret-7f3a"
# The check-in session's user (deploy/mosquitto/acl), with the service's password as init-auth.sh
# gives it.
CHECKIN_USER = "kneeguard-checkin"
TEST_USER = "tester"
TEST_PASSWORD = "tester-secret-91c2"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(reason: str) -> None:
    """A server a test needs is missing: fail under CI, skip elsewhere."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- broker ---------------------------------------------------------------------------------


def deploy_config(
    port: int,
    data_dir: Path,
    password_file: Path,
    acl_file: Path,
    extra: str = "",
    *,
    bind_client_ids: bool = True,
) -> str:
    """The shipped mosquitto.conf with listener, paths and logging pointed at the test's own.

    `bind_client_ids=False` turns the shipped `use_username_as_clientid` off, for brokers whose
    tests connect many clients under one user (the `tester` superuser, several services under
    the service account); tests/test_takeover.py shows what the binding closes.
    """
    replaced = {
        "persistence_location": f"persistence_location {data_dir}/",
        "password_file": f"password_file {password_file}",
        "acl_file": f"acl_file {acl_file}",
        "listener": f"listener {port} 127.0.0.1",
        "log_dest": f"log_dest file {data_dir / 'mosquitto.log'}",
    }
    lines = []
    for line in DEPLOY_CONF.read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key in replaced:
            lines.append(replaced.pop(key))
        elif key == "use_username_as_clientid" and not bind_client_ids:
            lines.append("use_username_as_clientid false")
        else:
            lines.append(line)
    if os.geteuid() == 0:
        # As root mosquitto drops to the mosquitto user, who cannot read the test's files.
        lines.append("user root")
    return "\n".join(lines) + "\n" + extra


@dataclass
class Mosquitto:
    """A mosquitto process running the deploy config on a free port, plus a `tester` superuser,
    and without the binding of client ids to user names (see `deploy_config`): many test clients
    share the `tester` user, and tests run several services under the service account.
    `bind_client_ids=True` keeps the shipped binding."""

    workdir: Path
    port: int = field(default_factory=free_port)
    acl_extra: str = ""
    process: subprocess.Popen[bytes] | None = None
    bind_client_ids: bool = False

    @property
    def url(self) -> str:
        return f"mqtt://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{self.port}"

    @property
    def checkin_url(self) -> str:
        """KNEEGUARD_MQTT_CHECKIN_URL: the check-in session's own user."""
        return f"mqtt://{CHECKIN_USER}:{SERVICE_PASSWORD}@127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        return self.workdir / "passwd"

    @property
    def acl_file(self) -> Path:
        return self.workdir / "acl"

    def prepare(self) -> None:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            missing("mosquitto is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password_file.unlink(missing_ok=True)
        self.password_file.touch()
        for user, password in (
            (SERVICE_USER, SERVICE_PASSWORD),
            (CHECKIN_USER, SERVICE_PASSWORD),
            (TEST_USER, TEST_PASSWORD),
        ):
            self.add_user(user, password)
        acl = (ROOT / "deploy" / "mosquitto" / "acl").read_text()
        acl += f"\nuser {TEST_USER}\ntopic readwrite #\n{self.acl_extra}\n"
        self.acl_file.write_text(acl)
        conf = deploy_config(
            self.port,
            self.workdir,
            self.password_file,
            self.acl_file,
            bind_client_ids=self.bind_client_ids,
        )
        (self.workdir / "mosquitto.conf").write_text(conf)

    def add_user(self, user: str, password: str) -> None:
        subprocess.run(
            ["mosquitto_passwd", "-b", str(self.password_file), user, password],
            check=True,
            capture_output=True,
        )

    def start(self) -> None:
        if self.process is None and not (self.workdir / "mosquitto.conf").exists():
            self.prepare()
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.process = subprocess.Popen(
            [binary, "-c", str(self.workdir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        if not wait_until(self._listening, 10):
            self.stop()
            raise RuntimeError(f"mosquitto did not start: {self.log()[-2000:]}")

    def _listening(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None

    def log(self) -> str:
        path = self.workdir / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""


@dataclass
class DeployMosquitto(Mosquitto):
    """The deploy config as shipped: only the service accounts, the deploy ACL unchanged (no
    `tester` superuser), a pid file for SIGHUP reloads, and optionally the shipped TLS listener
    (deploy/mosquitto/tls.conf) on a second port with the given certificate and key."""

    tls_port: int | None = None
    certfile: Path | None = None
    keyfile: Path | None = None

    @property
    def pid_file(self) -> Path:
        return self.workdir / "mosquitto.pid"

    def prepare(self) -> None:
        if not Path(shutil.which("mosquitto") or "/usr/sbin/mosquitto").exists():
            missing("mosquitto is not installed")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.password_file.unlink(missing_ok=True)
        self.password_file.touch(mode=0o600)
        self.add_user(SERVICE_USER, SERVICE_PASSWORD)
        self.add_user(CHECKIN_USER, SERVICE_PASSWORD)  # as init-auth.sh does
        shutil.copyfile(ROOT / "deploy" / "mosquitto" / "acl", self.acl_file)
        extra = ""
        if self.tls_port is not None:
            if self.certfile is None or self.keyfile is None:
                raise ValueError("a TLS listener needs certfile and keyfile")
            extra = tls_config(self.tls_port, self.certfile, self.keyfile)
        conf = deploy_config(self.port, self.workdir, self.password_file, self.acl_file, extra)
        (self.workdir / "mosquitto.conf").write_text(conf)

    def start(self) -> None:
        super().start()
        assert self.process is not None
        self.pid_file.write_text(f"{self.process.pid}\n")
        if self.tls_port is not None:
            tls_port = self.tls_port
            if not wait_until(lambda: port_open(tls_port), 10):
                self.stop()
                raise RuntimeError(f"mosquitto TLS listener did not start: {self.log()[-2000:]}")

    def add_service_user(self, user: str, password: str = SERVICE_PASSWORD) -> None:
        """Another service account (a second replica, an observer), as deploy/mosquitto/acl
        tells operators to add one: the broker names each session after its user, so two
        connections under one user would take each other's session. Before `start`, or `reload`
        after."""
        self.add_user(user, password)
        with self.acl_file.open("a") as acl:
            acl.write(f"\nuser {user}\ntopic readwrite kneeguard/v1/#\n")

    def reload(self) -> None:
        """SIGHUP: mosquitto re-reads its password and ACL files."""
        assert self.process is not None
        self.process.send_signal(signal.SIGHUP)


def tls_config(port: int, certfile: Path, keyfile: Path) -> str:
    """The shipped TLS listener (deploy/mosquitto/tls.conf) with its port and files rewritten."""
    replaced = {
        "listener": f"listener {port} 127.0.0.1",
        "certfile": f"certfile {certfile}",
        "keyfile": f"keyfile {keyfile}",
    }
    lines = []
    for line in (ROOT / "deploy" / "mosquitto" / "tls.conf").read_text().splitlines():
        lines.append(replaced.pop(line.split(" ", 1)[0], line))
    if replaced:
        raise ValueError(f"deploy/mosquitto/tls.conf has no {', '.join(replaced)} line")
    return "\n".join(lines) + "\n"


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def self_signed_certificate(directory: Path, host: str = "127.0.0.1") -> tuple[Path, Path]:
    """A throw-away certificate for `host` (its own CA) and its key, made with the openssl CLI."""
    if shutil.which("openssl") is None:
        missing("openssl is not installed")
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = directory / "server.crt", directory / "server.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-days", "1", "-subj", "/CN=kneeguard-test",
            "-addext", f"subjectAltName=IP:{host},DNS:localhost",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    return cert, key


# --- device-side client ---------------------------------------------------------------------


class DeviceClient:
    """A device (or an app) on the broker: publishes and collects what it receives."""

    def __init__(
        self,
        port: int,
        username: str = TEST_USER,
        password: str = TEST_PASSWORD,
        subscribe: tuple[str, ...] = (),
        client_id: str | None = None,
    ) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._connected = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"test-{uuidlib.uuid4().hex[:12]}",
        )
        self.client.username_pw_set(username, password)
        self.client.max_inflight_messages_set(1000)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self._subscriptions = subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("test client could not connect")
        if subscribe and not self._subscribed.wait(10):
            raise RuntimeError("test client could not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: Any) -> None:
        if self._subscriptions:
            client.subscribe([(t, 1) for t in self._subscriptions])
        self._connected.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.received.append((msg.topic, bytes(msg.payload)))

    def publish(self, topic: str, payload: bytes | str | dict[str, Any], qos: int = 1) -> None:
        if isinstance(payload, dict):
            payload = json.dumps(payload)
        info = self.client.publish(topic, payload, qos=qos)
        info.wait_for_publish(10)

    def publish_many(self, items: list[tuple[str, bytes]], qos: int = 1) -> None:
        infos = [self.client.publish(topic, payload, qos=qos) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(60)

    def acks(self) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(p) for t, p in self.received if t.endswith("/ack")]

    def ack_for(self, uuid: str | None, timeout: float = 10) -> dict[str, Any]:
        found: list[dict[str, Any]] = []

        def check() -> bool:
            found[:] = [a for a in self.acks() if a.get("uuid") == uuid]
            return bool(found)

        if not wait_until(check, timeout):
            raise AssertionError(f"no ack for {uuid} within {timeout}s; got {self.acks()[-5:]}")
        return found[-1]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def device_client(port: int, prefix: str = "kneeguard/v1") -> Iterator[DeviceClient]:
    client = DeviceClient(port, subscribe=(f"{prefix}/+/+/ack",))
    try:
        yield client
    finally:
        client.close()


# --- a service user's persistent session, from outside the service ---------------------------


def open_session(
    port: int, user: str, password: str, topic: str, client_id: str | None = None
) -> None:
    """Leave a persistent session on the broker subscribed to `topic` at QoS 1, as a service
    that stopped would (MQTT 3.1.1, as the service spoke before it moved to MQTT 5): the broker
    then queues for it what devices publish. The session is `client_id`'s (default: the user's;
    where the broker binds client ids to users it is the user's whatever the id)."""
    subscribed = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id or user,
        clean_session=False,
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    client.username_pw_set(user, password)
    client.on_connect = lambda c, *args: c.subscribe(topic, 1)
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        if not subscribed.wait(10):
            raise RuntimeError(f"could not subscribe as {user}")
    finally:
        client.disconnect()
        client.loop_stop()


def held_for(port: int, user: str, password: str, settle: float = 2.0) -> list[bytes]:
    """Connect as `user`'s persistent session on a broker that names sessions after users and
    collect what it still holds for it, until nothing more arrives for `settle` seconds."""
    received: list[bytes] = []
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=user, clean_session=False
    )
    client.username_pw_set(user, password)
    client.on_message = lambda c, u, msg: received.append(bytes(msg.payload))
    client.connect("127.0.0.1", port)
    client.loop_start()
    last = -1
    while last != len(received):
        last = len(received)
        time.sleep(settle)
    client.disconnect()
    client.loop_stop()
    return received
