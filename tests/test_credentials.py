"""Device credentials and confinement, against a real mosquitto running the deploy config.

The broker here has only the service account and the shipped ACL (no `tester` superuser); device
credentials come from `kneeguard device add`, which writes the broker's files and SIGHUPs it.
"""

from __future__ import annotations

import base64
import json
import logging
import ssl
import stat
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from contract.topics import Kind, Topics
from ingest.messages import Inbound
from ingest.mqtt import BrokerAddress, MqttConnection
from kneeguard.admin.credentials import (
    ACL_BEGIN,
    ACL_END,
    hash_password,
    read_password_entries,
    render_acl,
    set_password,
    verify_password,
)
from testsupport import (
    CHECKIN_USER,
    ROOT,
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeployMosquitto,
    DeviceClient,
    assert_user_error,
    free_port,
    kneeguard,
    self_signed_certificate,
    wait_until,
)

pytestmark = [pytest.mark.broker, pytest.mark.timeout(60)]

TOPICS = Topics("kneeguard/v1")


@pytest.fixture
def confined(tmp_path: Path) -> Iterator[DeployMosquitto]:
    mosq = DeployMosquitto(tmp_path / "broker")
    mosq.start()
    yield mosq
    mosq.stop()


def managed(db_url: str, broker: DeployMosquitto, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with the test broker's password file, ACL and pid file configured."""
    return kneeguard(
        db_url,
        *args,
        KNEEGUARD_MQTT_PASSWORD_FILE=str(broker.password_file),
        KNEEGUARD_MQTT_ACL_FILE=str(broker.acl_file),
        KNEEGUARD_MQTT_BROKER_PID_FILE=str(broker.pid_file),
    )


def add_athlete(db_url: str, athlete_id: str) -> None:
    email = f"{athlete_id}@example.com"
    result = kneeguard(
        db_url, "athlete", "add", "--id", athlete_id, "--name", "R", "--email", email
    )
    assert result.returncode == 0, result


def add_device(db_url: str, broker: DeployMosquitto, athlete_id: str, device_id: str) -> str:
    """`device add`; returns the printed password after checking the broker accepts it."""
    result = managed(db_url, broker, "device", "add", "--athlete", athlete_id, "--id", device_id)
    assert result.returncode == 0, result
    username, password = printed_credentials(result.stdout)
    assert username == f"{athlete_id}.{device_id}"
    assert wait_until(lambda: accepted(broker.port, username, password), 5, 0.05)
    return password


@contextmanager
def device(port: int, username: str, password: str, *subscribe: str) -> Iterator[DeviceClient]:
    client = DeviceClient(port, username, password, subscribe=subscribe)
    try:
        yield client
    finally:
        client.close()


def printed_credentials(stdout: str) -> tuple[str, str]:
    fields = {}
    for line in stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        fields[key] = value
    return fields["MQTT username"], fields["MQTT password"]


def connack(
    port: int,
    username: str | None,
    password: str | None,
    *,
    cafile: Path | None = None,
    timeout: float = 5.0,
) -> ReasonCode | None:
    """The broker's CONNACK reason code, or None when the connection ends without one."""
    done = threading.Event()
    codes: list[ReasonCode] = []

    def on_connect(
        client: mqtt.Client, userdata: object, flags: object, rc: ReasonCode, p: object
    ) -> None:
        codes.append(rc)
        done.set()

    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=f"probe-{uuid.uuid4().hex[:8]}"
    )
    if username is not None:
        client.username_pw_set(username, password)
    if cafile is not None:
        client.tls_set(ca_certs=str(cafile))
    client.on_connect = on_connect
    client.on_disconnect = lambda *args: done.set()
    try:
        client.connect("127.0.0.1", port, keepalive=10)
    except OSError:  # ssl.SSLError included: a failed handshake
        return None
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0] if codes else None


def accepted(port: int, username: str | None, password: str | None) -> bool:
    code = connack(port, username, password)
    return code is not None and not code.is_failure


def refused(port: int, username: str | None, password: str | None) -> bool:
    code = connack(port, username, password)
    return code is None or code.is_failure


class Service:
    """The service's own MqttConnection (shared subscription, manual acks) on the broker."""

    def __init__(self, url: str, shared_group: str | None = "kneeguard") -> None:
        self.received: list[Inbound] = []
        self.connection = MqttConnection(
            BrokerAddress.from_url(url),
            f"kneeguard-test-{uuid.uuid4().hex[:8]}",
            TOPICS.subscriptions(shared_group),
            self._sink,
        )

    def _sink(self, inbound: Inbound) -> None:
        self.received.append(inbound)
        self.connection.ack(inbound.mid, inbound.qos)

    def __enter__(self) -> Service:
        self.connection.start()
        assert wait_until(
            lambda: self.connection.ready.is_set() or self.connection.failed.is_set(), 10
        )
        assert self.connection.ready.is_set(), self.connection.fatal_error
        return self

    def __exit__(self, *exc: object) -> None:
        self.connection.stop()

    def topics(self) -> list[str]:
        return [inbound.topic for inbound in self.received]


# --- the hash -------------------------------------------------------------------------------


def test_hash_is_mosquittos_own_format(tmp_path: Path) -> None:
    passwd = tmp_path / "passwd"
    passwd.touch()
    subprocess.run(
        ["mosquitto_passwd", "-b", str(passwd), "probe", "s3cret"], check=True, timeout=10
    )
    entry = read_password_entries(passwd)["probe"]
    assert verify_password("s3cret", entry)
    assert not verify_password("s3cret ", entry)
    _, kind, iterations, salt, _ = entry.split("$")
    rebuilt = hash_password("s3cret", iterations=int(iterations), salt=base64.b64decode(salt))
    assert (kind, rebuilt) == ("7", entry)


def test_broker_accepts_our_entries_and_refuses_anonymous_and_wrong_passwords(
    confined: DeployMosquitto,
) -> None:
    set_password(confined.password_file, "probe.one", "correct horse")
    assert stat.S_IMODE(confined.password_file.stat().st_mode) & 0o007 == 0
    assert SERVICE_USER in read_password_entries(confined.password_file)
    confined.reload()
    assert wait_until(lambda: accepted(confined.port, "probe.one", "correct horse"), 5, 0.05)
    assert refused(confined.port, "probe.one", "correct horsE")
    assert refused(confined.port, None, None)
    assert refused(confined.port, "", "")
    assert refused(confined.port, "nobody", "correct horse")
    assert accepted(confined.port, SERVICE_USER, SERVICE_PASSWORD)


# --- device add / revoke --------------------------------------------------------------------


def test_device_add_prints_working_credentials_once_and_revoke_removes_them(
    sqlite_url: str, confined: DeployMosquitto, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    add_athlete(sqlite_url, "ann")
    add_athlete(sqlite_url, "bob")
    result = managed(sqlite_url, confined, "device", "add", "--athlete", "ann", "--id", "watch-1")
    assert result.returncode == 0, result
    username, password = printed_credentials(result.stdout)
    assert username == "ann.watch-1"
    assert len(password) >= 24
    assert result.stdout.count(password) == 1
    assert "will not be shown again" in result.stdout
    assert "broker reloaded" in result.stdout
    assert wait_until(lambda: accepted(confined.port, username, password), 5, 0.05)
    bob_password = add_device(sqlite_url, confined, "bob", "watch-1")
    assert bob_password != password

    # Stored only as a hash, in a file other users cannot read; the ACL equals the registry.
    entries = read_password_entries(confined.password_file)
    assert set(entries) == {SERVICE_USER, CHECKIN_USER, "ann.watch-1", "bob.watch-1"}
    assert verify_password(password, entries["ann.watch-1"])
    assert password not in confined.password_file.read_text()
    assert stat.S_IMODE(confined.password_file.stat().st_mode) & 0o007 == 0
    acl = confined.acl_file.read_text()
    assert acl.startswith((ROOT / "deploy" / "mosquitto" / "acl").read_text().split(ACL_BEGIN)[0])
    assert "user ann.watch-1\ntopic write kneeguard/v1/ann/watch-1/run\n" in acl
    assert "user bob.watch-1\n" in acl

    listed = kneeguard(sqlite_url, "device", "list", "--athlete", "ann")
    assert "ann.watch-1" in listed.stdout and "bob" not in listed.stdout

    # A connected device is cut off by the revoke, and cannot come back.
    with device(confined.port, username, password) as connected:
        revoked = managed(
            sqlite_url, confined, "device", "revoke", "--athlete", "ann", "--id", "watch-1"
        )
        assert revoked.returncode == 0, revoked
        assert "revoked" in revoked.stdout
        assert wait_until(lambda: refused(confined.port, username, password), 5, 0.05)
        assert wait_until(lambda: not connected.client.is_connected(), 5)
    assert set(read_password_entries(confined.password_file)) == {
        SERVICE_USER,
        CHECKIN_USER,
        "bob.watch-1",
    }
    assert "ann.watch-1" not in confined.acl_file.read_text()
    assert accepted(confined.port, "bob.watch-1", bob_password)

    again = managed(sqlite_url, confined, "device", "revoke", "--athlete", "ann", "--id", "watch-1")
    assert_user_error(again, 2, "not registered")

    everything = result.stderr + caplog.text + confined.log() + revoked.stdout + revoked.stderr
    assert password not in everything
    assert bob_password not in everything


def test_device_add_errors_leave_no_credentials(
    sqlite_url: str, confined: DeployMosquitto, tmp_path: Path
) -> None:
    before = confined.password_file.read_text()
    unknown = managed(sqlite_url, confined, "device", "add", "--athlete", "nobody", "--id", "w")
    assert_user_error(unknown, 2, "unknown athlete")
    bad_id = managed(sqlite_url, confined, "device", "add", "--athlete", "ann", "--id", "a.b")
    assert_user_error(bad_id, 2, "invalid device id")
    assert confined.password_file.read_text() == before

    # A password file that cannot be written: the device is not left registered without one.
    add_athlete(sqlite_url, "ann")
    result = kneeguard(
        sqlite_url,
        "device",
        "add",
        "--athlete",
        "ann",
        "--id",
        "w",
        KNEEGUARD_MQTT_PASSWORD_FILE=str(tmp_path / "missing-dir" / "passwd"),
        KNEEGUARD_MQTT_ACL_FILE=str(confined.acl_file),
    )
    assert_user_error(result, 1, "device not added")
    assert "MQTT password" not in result.stdout
    assert json.loads(kneeguard(sqlite_url, "device", "list", "--json").stdout) == []


def test_device_add_without_password_file_generates_no_credentials(sqlite_url: str) -> None:
    add_athlete(sqlite_url, "ann")
    result = kneeguard(sqlite_url, "device", "add", "--athlete", "ann", "--id", "w")
    assert result.returncode == 0, result
    assert "credentials were not generated" in result.stdout
    assert "MQTT password" not in result.stdout


def test_acl_keeps_everything_outside_the_managed_section() -> None:
    static = "user kneeguard\ntopic readwrite kneeguard/v1/#\n"
    first = render_acl(static, TOPICS, [("ann", "w"), ("ann", "w")])
    assert first.startswith(static + "\n" + ACL_BEGIN + "\n")
    assert first.count("user ann.w\n") == 1
    with_tail = first + "user tester\ntopic readwrite #\n"
    second = render_acl(with_tail, TOPICS, [("bob", "p")])
    assert second.startswith(static)
    assert "ann.w" not in second and "user bob.p\n" in second
    assert second.endswith(ACL_END + "\nuser tester\ntopic readwrite #\n")
    assert render_acl(second, TOPICS, [("bob", "p")]) == second


def test_acl_follows_the_topic_contract() -> None:
    """The ACL block is derived from `contract.topics`: a device may write every message kind
    and read every topic the service publishes to it, so a new kind is not refused by the
    broker for want of an ACL line."""
    block = render_acl("", TOPICS, [("ann", "w")]).splitlines()
    writes = [f"topic write kneeguard/v1/ann/w/{kind}" for kind in Kind]
    reads = [f"topic read kneeguard/v1/ann/w/{end}" for end in ("ack", "prompt")]
    reads.append("topic read kneeguard/v1/ann/alerts")
    assert [line for line in block if line.startswith("topic ")] == writes + reads


# --- confinement ----------------------------------------------------------------------------


def test_a_device_writes_and_reads_only_its_own_topics(
    sqlite_url: str, confined: DeployMosquitto
) -> None:
    for athlete in ("ann", "bob"):
        add_athlete(sqlite_url, athlete)
    ann_password = add_device(sqlite_url, confined, "ann", "w1")
    bob_password = add_device(sqlite_url, confined, "bob", "w1")
    add_device(sqlite_url, confined, "bob", "phone")

    ann_reads = (
        "kneeguard/v1/#",
        TOPICS.ack("bob", "w1"),
        TOPICS.prompt("bob", "w1"),
        TOPICS.alerts("bob"),
        TOPICS.ack("ann", "w1"),
    )
    # The observer needs a service account of its own: under the service's, it would take the
    # service's session (the broker binds client ids to user names).
    confined.add_service_user("kneeguard-observer")
    confined.reload()
    assert wait_until(lambda: accepted(confined.port, "kneeguard-observer", SERVICE_PASSWORD), 5)
    with (
        Service(confined.url) as service,
        device(confined.port, "kneeguard-observer", SERVICE_PASSWORD, "kneeguard/v1/#") as observer,
        device(confined.port, "ann.w1", ann_password, *ann_reads) as ann,
        device(confined.port, "bob.w1", bob_password, "#") as bob,
    ):
        # Writing: everything outside ann's own run and check-in topics is dropped by the broker.
        for topic in (
            TOPICS.inbound("bob", "w1", Kind.RUN),
            TOPICS.inbound("bob", "w1", Kind.CHECKIN),
            TOPICS.inbound("bob", "phone", Kind.RUN),
            TOPICS.inbound("ann", "w2", Kind.RUN),
            TOPICS.ack("bob", "w1"),
            TOPICS.ack("ann", "w1"),
            TOPICS.prompt("ann", "w1"),
            TOPICS.alerts("bob"),
            TOPICS.alerts("ann"),
            "kneeguard/v1/bob/w1/run/extra",
            "kneeguard/v1/ann/w1/run/extra",
        ):
            ann.publish(topic, b"{}")
        own = [TOPICS.inbound("ann", "w1", Kind.RUN), TOPICS.inbound("ann", "w1", Kind.CHECKIN)]
        for topic in own:
            ann.publish(topic, b"{}")
        # QoS 1 from one client arrives in order: once ann's last message is in, nothing
        # published before it can still come.
        assert wait_until(lambda: own[-1] in service.topics(), 5)
        assert wait_until(lambda: own[-1] in {t for t, _ in observer.received}, 5)
        assert service.topics() == own
        assert [t for t, _ in observer.received] == own

        # Reading: the service publishes to bob's topics first, then ann's.
        theirs = [TOPICS.ack("bob", "w1"), TOPICS.prompt("bob", "w1"), TOPICS.alerts("bob")]
        theirs.append(TOPICS.ack("bob", "phone"))
        mine = [TOPICS.ack("ann", "w1"), TOPICS.prompt("ann", "w1"), TOPICS.alerts("ann")]
        for topic in theirs + mine:
            service.connection.publish_confirmed(topic, b'{"for": "' + topic.encode() + b'"}')
        assert wait_until(lambda: mine[-1] in {t for t, _ in ann.received}, 5)
        assert {t for t, _ in ann.received} == set(mine)
        assert wait_until(lambda: theirs[2] in {t for t, _ in bob.received}, 5)
        assert {t for t, _ in bob.received} == set(theirs[:3])


def test_service_account_subscribes_with_and_without_a_shared_group(
    confined: DeployMosquitto,
) -> None:
    for group in ("kneeguard", None):
        with Service(confined.url, group):
            pass


# --- TLS ------------------------------------------------------------------------------------


def test_tls_listener_serves_the_service_and_refuses_plain_mqtt(tmp_path: Path) -> None:
    cert, key = self_signed_certificate(tmp_path / "certs")
    mosq = DeployMosquitto(tmp_path / "broker", tls_port=free_port(), certfile=cert, keyfile=key)
    mosq.start()
    try:
        assert mosq.tls_port is not None
        url = f"mqtts://{SERVICE_USER}:{SERVICE_PASSWORD}@127.0.0.1:{mosq.tls_port}?cafile={cert}"
        with Service(url) as service:
            service.connection.publish_confirmed(TOPICS.alerts("ann"), b"{}")
            # TLS sockets buffer their own reads; only plain TCP gets the read buffer.
            assert not service.connection.buffered_reads
        tls = connack(mosq.tls_port, SERVICE_USER, SERVICE_PASSWORD, cafile=cert)
        assert tls is not None and not tls.is_failure
        anonymous = connack(mosq.tls_port, None, None, cafile=cert)
        assert anonymous is not None and anonymous.is_failure
        assert connack(mosq.tls_port, SERVICE_USER, SERVICE_PASSWORD, timeout=2) is None
        # A client that does not trust the test's certificate does not get through.
        with pytest.raises(ssl.SSLError):
            untrusting = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
            untrusting.tls_set()
            untrusting.connect("127.0.0.1", mosq.tls_port)
    finally:
        mosq.stop()


def test_device_rotate_gives_a_new_password_and_cuts_off_the_old_one(
    sqlite_url: str, confined: DeployMosquitto
) -> None:
    add_athlete(sqlite_url, "ann")
    old = add_device(sqlite_url, confined, "ann", "w1")
    with device(confined.port, "ann.w1", old) as connected:
        rotated = managed(
            sqlite_url, confined, "device", "rotate", "--athlete", "ann", "--id", "w1"
        )
        assert rotated.returncode == 0, rotated
        username, new = printed_credentials(rotated.stdout)
        assert (username, rotated.stdout.count(new)) == ("ann.w1", 1)
        assert new != old
        assert wait_until(lambda: refused(confined.port, "ann.w1", old), 5, 0.05)
        assert wait_until(lambda: not connected.client.is_connected(), 5)
    assert accepted(confined.port, "ann.w1", new)
    assert "user ann.w1\n" in confined.acl_file.read_text()  # the ACL still has the device

    unknown = managed(sqlite_url, confined, "device", "rotate", "--athlete", "ann", "--id", "w2")
    assert_user_error(unknown, 2, "not registered")
    unmanaged = kneeguard(sqlite_url, "device", "rotate", "--athlete", "ann", "--id", "w1")
    assert_user_error(unmanaged, 2, "KNEEGUARD_MQTT_PASSWORD_FILE")
