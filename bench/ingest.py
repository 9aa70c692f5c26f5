"""Ingest throughput: KneeGuard against a bare MQTT subscriber, on PostgreSQL and SQLite.

One run starts one mosquitto with the shipped deploy config (testsupport.Mosquitto) and measures
five consumers of the same burst of N run messages, one after the other:

1. the ceiling: a bare paho 2.x subscriber (callback API v2, QoS 1, persistent session) that only
   counts what it receives;
2. the ceiling with acks: the same subscriber, also publishing one QoS 1 message per message
   received to the device's ack topic, which is the MQTT work the contract asks of KneeGuard
   (reported beside the ceiling, not used for the ratios);
3. `python -m kneeguard run --only ingest` on a fresh PostgreSQL database;
4. two such processes sharing the subscriptions (`$share/kneeguard/...`, the design's scale-out),
   on a fresh PostgreSQL database: what a two-core machine can give ingest;
5. one process on SQLite (a file in a temporary directory).

Each consumer's CPU time during the burst (user + system, all threads) is reported per message.

Each consumer is connected and subscribed first. Then publisher processes (spawned, one paho
client each, 1000 messages in flight) publish their share of N pre-generated payloads at QoS 1
as fast as they can. rate = N / (end - first publish), where end is the last receipt for the
ceiling and the last commit for KneeGuard. KneeGuard's completion is detected by polling
`SELECT count(*) FROM runs` every 0.2 s; the end time is then refined from the database itself
(PostgreSQL: when the service's connection went idle after its last commit, from
pg_stat_activity; SQLite: the modification time of the WAL and database files), falling back to
the poll time when that is not available.

Environment: BENCH_PUBLISHERS (default 2) sets the number of publisher processes; BENCH_PYSPY=DIR
records a py-spy profile (`--format raw`, one file per backend) of the service during each
KneeGuard phase, with BENCH_PYSPY_ARGS passed on to `py-spy record` (e.g. `--idle` or `--gil`).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode
from sqlalchemy import Engine, func, select, text

import testsupport
from bench import BenchError, Figure, scale_from_env
from bench._ceiling import PLACEHOLDER, CeilingResult
from bench._db import PG_ADMIN, fresh_postgres
from db.engine import make_engine, session_factory
from db.migrate import upgrade
from db.models import Run
from kneeguard.admin.registry import Registry
from testsupport import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    TEST_PASSWORD,
    TEST_USER,
    Mosquitto,
    run_payload,
)

SIZES = {"full": 100_000, "small": 20_000, "tiny": 500}
PREFIX = "kneeguard/v1"
ATHLETE = "bench-athlete"
DEVICE = "bench-watch"
RUN_TOPIC = f"{PREFIX}/{ATHLETE}/{DEVICE}/run"
ACK_TOPIC = f"{PREFIX}/{ATHLETE}/{DEVICE}/ack"
SUBSCRIPTION = f"{PREFIX}/+/+/run"
POLL_INTERVAL = 0.2
DEFAULT_PUBLISHERS = 2

# Start method for publisher processes: spawn, so that no thread of this process
# (stderr readers, paho loops) is forked along with a held lock.
_MP = multiprocessing.get_context("spawn")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def publishers_from_env() -> int:
    raw = os.environ.get("BENCH_PUBLISHERS", str(DEFAULT_PUBLISHERS))
    try:
        count = int(raw)
    except ValueError:
        raise BenchError(f"BENCH_PUBLISHERS must be a whole number, not {raw!r}") from None
    if not 1 <= count <= 32:
        raise BenchError("BENCH_PUBLISHERS must be between 1 and 32")
    return count


def environment_problem() -> str | None:
    """Why the benchmark cannot run here (no mosquitto, no PostgreSQL), or None."""
    if not (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists()):
        return "mosquitto is not installed"
    if not shutil.which("mosquitto_passwd"):
        return "mosquitto_passwd is not installed"
    try:
        psycopg.connect(PG_ADMIN).close()
    except psycopg.OperationalError as exc:
        return f"PostgreSQL is not reachable on 127.0.0.1:5432: {exc}"
    return None


# --- payloads and publishers ------------------------------------------------------------------


def payload_template() -> str:
    """A valid run message (testsupport.run_payload) with a placeholder for the uuid."""
    import json

    payload = run_payload()
    payload["header"]["uuid"] = PLACEHOLDER
    return json.dumps(payload)


def new_uuids(n: int) -> list[str]:
    return [str(uuidlib.uuid4()) for _ in range(n)]


def split(items: Sequence[str], parts: int) -> list[list[str]]:
    return [list(items[i::parts]) for i in range(parts)]


@dataclass(frozen=True, slots=True)
class PublishResult:
    first: float
    last_puback: float
    sent: int
    error: str | None = None
    cpu_seconds: float = 0.0


def _connect_and_wait(client: mqtt.Client, port: int, timeout: float = 10) -> None:
    connected = threading.Event()

    def on_connect(
        client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Any
    ) -> None:
        if not reason.is_failure:
            connected.set()

    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=60)
    client.loop_start()
    if not connected.wait(timeout):
        client.loop_stop()
        raise BenchError(f"could not connect to the broker on port {port}")


def publisher_main(
    port: int,
    uuids: list[str],
    template: str,
    ready: MPEvent,
    go: MPEvent,
    results: MPQueue[PublishResult],
    timeout: float,
) -> None:
    """A publisher process: build its payloads, connect, wait for `go`, publish all at QoS 1."""
    try:
        payloads = [template.replace(PLACEHOLDER, u).encode() for u in uuids]
        acked = 0
        done = threading.Event()
        last = [0.0]

        def on_publish(
            client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
        ) -> None:
            nonlocal acked
            acked += 1
            if acked >= len(payloads):
                last[0] = time.time()
                done.set()

        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"bench-pub-{uuidlib.uuid4().hex[:10]}",
        )
        client.username_pw_set(TEST_USER, TEST_PASSWORD)
        client.max_inflight_messages_set(1000)
        client.on_publish = on_publish
        _connect_and_wait(client, port)
    except Exception as exc:
        ready.set()
        results.put(PublishResult(0.0, 0.0, 0, f"publisher setup failed: {exc!r}"))
        return
    ready.set()
    go.wait()
    first = time.time()
    cpu_before = time.process_time()
    error = None
    for payload in payloads:
        info = client.publish(RUN_TOPIC, payload, qos=1)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            error = f"publish failed: {mqtt.error_string(info.rc)}"
            break
    if error is None and not done.wait(timeout):
        error = f"only {acked} of {len(payloads)} PUBACKs within {timeout:.0f}s"
    results.put(PublishResult(first, last[0], acked, error, time.process_time() - cpu_before))
    client.disconnect()
    client.loop_stop()


@dataclass
class Publishers:
    """Publisher processes, connected and holding their payloads, waiting for `fire`."""

    port: int
    uuids: list[str]
    count: int
    timeout: float
    _go: MPEvent = field(default_factory=_MP.Event)
    _results: MPQueue[PublishResult] = field(default_factory=_MP.Queue)
    _processes: list[Any] = field(default_factory=list)

    def start(self) -> None:
        template = payload_template()
        readies = []
        for share in split(self.uuids, self.count):
            ready = _MP.Event()
            process = _MP.Process(
                target=publisher_main,
                args=(self.port, share, template, ready, self._go, self._results, self.timeout),
                daemon=True,
            )
            process.start()
            readies.append(ready)
            self._processes.append(process)
        for ready in readies:
            if not ready.wait(60):
                raise BenchError("a publisher process did not get ready within 60s")

    def fire(self) -> None:
        self._go.set()

    def results(self) -> list[PublishResult]:
        """Wait for every publisher to have all its messages acknowledged by the broker."""
        results = [self._results.get(timeout=self.timeout + 30) for _ in self._processes]
        for process in self._processes:
            process.join(10)
        errors = [r.error for r in results if r.error]
        if errors:
            raise BenchError("; ".join(errors))
        return results

    def stop(self) -> None:
        for process in self._processes:
            if process.is_alive():
                process.terminate()
                process.join(5)


# --- KneeGuard as a process -------------------------------------------------------------------


class ServiceProcess(testsupport.ServiceProcess):
    """`python -m kneeguard run --only ingest` (or other `args`), with its CPU and memory."""

    def __init__(
        self, env: dict[str, str], cwd: Path, args: Sequence[str] = ("run", "--only", "ingest")
    ) -> None:
        super().__init__(env, args, cwd)

    def wait_subscribed(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any("subscribed to" in line for line in self.lines):
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise BenchError(f"the service did not subscribe:\n{self.tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the service process so far (all threads)."""
        return sum(self.cpu_split())

    def cpu_split(self) -> tuple[float, float]:
        """User and system CPU time of the service process so far (all threads)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        return int(fields[11]) / tick, int(fields[12]) / tick

    def peak_rss_mb(self) -> float:
        """VmHWM of the service process, in MiB."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise BenchError("no VmHWM in /proc/PID/status")

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise BenchError(f"the service did not stop on SIGTERM:\n{self.tail()}") from None
        self._reader.join(5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def forget_session(port: int, client_id: str) -> None:
    """End the broker's persistent session of `client_id`, so that nothing is queued for it
    during later phases (a clean-session connect discards the session and its subscriptions)."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True
    )
    client.username_pw_set(SERVICE_USER, SERVICE_PASSWORD)
    _connect_and_wait(client, port)
    client.disconnect()
    client.loop_stop()


def service_env(db_url: str, broker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env.update(
        KNEEGUARD_DATABASE_URL=db_url,
        KNEEGUARD_MQTT_URL=broker_url,
        KNEEGUARD_TOPIC_PREFIX=PREFIX,
        KNEEGUARD_LOG_LEVEL="INFO",
        # The whole service also serves the web app: on a port of its own, never a default
        # another process may hold.
        KNEEGUARD_WEB_BIND=f"127.0.0.1:{unused_port()}",
    )
    return env


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def profiler(pid: int, name: str) -> Iterator[None]:
    """py-spy record of the service while the block runs, when BENCH_PYSPY names a directory."""
    directory = os.environ.get("BENCH_PYSPY")
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not directory:
        yield
        return
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    extra = os.environ.get("BENCH_PYSPY_ARGS", "").split()
    rate = [] if any(arg.startswith(("--rate", "-r")) for arg in extra) else ["--rate", "100"]
    process = subprocess.Popen(
        [
            binary,
            "record",
            "--pid",
            str(pid),
            *rate,
            "--threads",
            "--format",
            "raw",
            *extra,
            "--output",
            str(out / f"{name}.txt"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    try:
        yield
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# --- databases --------------------------------------------------------------------------------


def register(engine: Engine) -> None:
    registry = Registry(session_factory(engine))
    registry.add_athlete(athlete_id=ATHLETE, name="Bench Runner", email="bench@example.com")
    registry.add_device(athlete_id=ATHLETE, device_id=DEVICE)


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, migrated PostgreSQL database with the athlete and device; dropped afterwards."""
    with fresh_postgres() as url:
        engine = make_engine(url)
        register(engine)
        engine.dispose()
        yield url


def sqlite_database(directory: Path) -> str:
    url = f"sqlite:///{directory / 'kneeguard.db'}"
    engine = make_engine(url, create_dirs=True)
    upgrade(engine)
    register(engine)
    engine.dispose()
    return url


def count_runs(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Run)).scalar_one())


def exact_end(engine: Engine, db_url: str) -> float | None:
    """When the service committed last, read from the database; None when unknown."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            value = conn.execute(
                text(
                    "SELECT extract(epoch FROM max(state_change)) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                    "AND state = 'idle'"
                )
            ).scalar_one()
        return float(value) if value is not None else None
    database = Path(engine.url.database or "")
    times = [
        path.stat().st_mtime_ns / 1e9
        for path in (database, database.with_name(database.name + "-wal"))
        if path.exists()
    ]
    return max(times) if times else None


@dataclass(frozen=True, slots=True)
class PhaseResult:
    """One consumer's run of the burst."""

    name: str
    n: int
    first: float
    end: float
    publish_end: float
    lost: int = 0
    duplicated: int = 0
    peak_rss_mb: float = 0.0
    cpu_seconds: float = 0.0

    @property
    def cpu_us_per_message(self) -> float:
        """CPU time the consumer spent per message (user + system, all its threads)."""
        return self.cpu_seconds / self.n * 1e6

    @property
    def seconds(self) -> float:
        return self.end - self.first

    @property
    def rate(self) -> float:
        return self.n / self.seconds


# --- the three phases -------------------------------------------------------------------------


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot, all cores (from /proc/stat)."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def cpu_report(name: str, busy: float, seconds: float, published: Sequence[PublishResult]) -> None:
    """Where the machine's CPU went during a phase: the case that every consumer shares it."""
    publishers = sum(r.cpu_seconds for r in published)
    say(
        f"{name}: the machine was busy {busy:.1f} CPU-seconds in {seconds:.2f}s "
        f"({busy / seconds:.2f} of {os.cpu_count()} cores); the publishers used {publishers:.1f}"
    )


def timeout_for(n: int) -> float:
    return 120 + n / 200


def measure_ceiling(broker: Mosquitto, n: int, publishers: int, acks: bool = False) -> PhaseResult:
    timeout = timeout_for(n)
    name = "ceiling with acks" if acks else "ceiling"
    env = dict(os.environ, BENCH_CEILING_USER=SERVICE_USER, BENCH_CEILING_PASSWORD=SERVICE_PASSWORD)
    subscriber = subprocess.Popen(
        [sys.executable, "-m", "bench._ceiling", str(broker.port), str(n), str(timeout)]
        + [SUBSCRIPTION]
        + ([ACK_TOPIC] if acks else []),
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert subscriber.stdout is not None
    pubs = Publishers(broker.port, new_uuids(n), publishers, timeout)
    try:
        first_line = subscriber.stdout.readline().strip()
        if first_line != "READY":
            result = CeilingResult(**json.loads(first_line)) if first_line else None
            raise BenchError(
                result.error if result and result.error else "the ceiling subscriber did not start"
            )
        pubs.start()
        busy_before = machine_busy_seconds()
        pubs.fire()
        published = pubs.results()
        result = CeilingResult(**json.loads(subscriber.stdout.readline()))
        busy = machine_busy_seconds() - busy_before
        subscriber.wait(10)
    finally:
        pubs.stop()
        if subscriber.poll() is None:
            subscriber.kill()
            subscriber.wait(5)
    if result.error:
        raise BenchError(result.error)
    first = min(r.first for r in published)
    say(
        f"{name}: the subscriber used {result.cpu_seconds:.1f}s of CPU "
        f"({result.cpu_seconds / (result.last - first):.2f} cores)"
    )
    cpu_report(name, busy, result.last - first, published)
    return PhaseResult(
        name,
        n,
        first,
        result.last,
        max(r.last_puback for r in published),
        cpu_seconds=result.cpu_seconds,
    )


def measure_kneeguard(
    broker: Mosquitto,
    backend: str,
    db_url: str,
    workdir: Path,
    n: int,
    publishers: int,
    replicas: int = 1,
) -> PhaseResult:
    """KneeGuard ingest as `replicas` processes; more than one share the subscriptions
    (`$share/kneeguard/...`), each with its own client id."""
    timeout = timeout_for(n)
    uuids = new_uuids(n)
    engine = make_engine(db_url)
    services = []
    # A client id of its own for each phase: a persistent session left by an earlier phase would
    # otherwise hand this phase the messages the broker queued for it since.
    client_ids = [f"bench-{backend}-{index}" for index in range(replicas)]
    for client_id in client_ids:
        env = service_env(db_url, broker.url)
        env.update(KNEEGUARD_MQTT_CLIENT_ID=client_id)
        if replicas > 1:
            env.update(KNEEGUARD_MQTT_SHARED_GROUP="kneeguard")
        services.append(ServiceProcess(env, workdir))
    pubs = Publishers(broker.port, uuids, publishers, timeout)
    try:
        pubs.start()
        for service in services:
            service.wait_subscribed()
        with profiler(services[0].pid, f"ingest-{backend}"):
            cpu_before = sum(service.cpu_seconds() for service in services)
            split_before = services[0].cpu_split()
            busy_before = machine_busy_seconds()
            pubs.fire()
            deadline = time.monotonic() + timeout
            while True:
                time.sleep(POLL_INTERVAL)
                stored = count_runs(engine)
                if stored >= n:
                    polled = time.time()
                    cpu = sum(service.cpu_seconds() for service in services) - cpu_before
                    user, system = (
                        after - before
                        for after, before in zip(services[0].cpu_split(), split_before, strict=True)
                    )
                    busy = machine_busy_seconds() - busy_before
                    break
                for service in services:
                    if service.process.poll() is not None:
                        raise BenchError(
                            f"the service exited after {stored} rows:\n{service.tail()}"
                        )
                if time.monotonic() > deadline:
                    raise BenchError(f"only {stored} of {n} rows after {timeout:.0f}s")
            published = pubs.results()
            exact = exact_end(engine, db_url)
        rss = max(service.peak_rss_mb() for service in services)
        for service in services:
            code = service.terminate()
            if code != 0:
                raise BenchError(f"the service exited with {code}:\n{service.tail()}")
        with engine.connect() as conn:
            rows = list(conn.execute(select(Run.uuid)).scalars())
    finally:
        pubs.stop()
        for service in services:
            service.kill()
        engine.dispose()
        for client_id in client_ids:
            forget_session(broker.port, client_id)
    first = min(r.first for r in published)
    end = polled
    if exact is not None and first < exact <= polled + 0.05:
        end = exact
        say(
            f"{backend}: last commit at +{exact - first:.3f}s (from the database), "
            f"seen by polling at +{polled - first:.3f}s"
        )
    else:
        say(f"{backend}: no exact commit time ({exact}); using the poll time")
    say(
        f"{backend}: the service used {cpu:.1f}s of CPU ({cpu / (polled - first):.2f} cores); "
        f"the first process {user:.1f}s user, {system:.1f}s system"
    )
    cpu_report(backend, busy, polled - first, published)
    distinct = set(rows)
    lost = n - len(distinct & set(uuids))
    return PhaseResult(
        backend,
        n,
        first,
        end,
        max(r.last_puback for r in published),
        lost=lost,
        duplicated=len(rows) - len(distinct),
        peak_rss_mb=rss,
        cpu_seconds=cpu,
    )


def report(phase: PhaseResult) -> None:
    say(
        f"{phase.name}: {phase.n} messages in {phase.seconds:.2f}s = {phase.rate:.0f} msg/s "
        f"(publishers done after {phase.publish_end - phase.first:.2f}s), "
        f"{phase.cpu_us_per_message:.0f} µs of CPU per message"
        + (
            f"; lost {phase.lost}, duplicated {phase.duplicated}, peak RSS "
            f"{phase.peak_rss_mb:.1f} MiB"
            if not phase.name.startswith("ceiling")
            else ""
        )
    )


def run(scale: str = "full", publishers: int | None = None) -> dict[str, float]:
    """Run the three phases against one broker; returns the figures by name."""
    if scale not in SIZES:
        raise BenchError(f"unknown scale {scale!r}; use one of {', '.join(SIZES)}")
    problem = environment_problem()
    if problem:
        raise BenchError(problem)
    n = SIZES[scale]
    count = publishers if publishers is not None else publishers_from_env()
    say(f"ingest: {n} run messages, {count} publisher processes, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kneeguard-bench-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker")
        broker.start()
        try:
            ceiling = measure_ceiling(broker, n, count)
            report(ceiling)
            with_acks = measure_ceiling(broker, n, count, acks=True)
            report(with_acks)
            with postgres_database() as pg_url:
                pg = measure_kneeguard(broker, "postgresql", pg_url, workdir, n, count)
            report(pg)
            with postgres_database() as pg_url:
                pg2 = measure_kneeguard(
                    broker, "postgresql-2-replicas", pg_url, workdir, n, count, replicas=2
                )
            report(pg2)
            sqlite_dir = workdir / "sqlite"
            lite = measure_kneeguard(
                broker, "sqlite", sqlite_database(sqlite_dir), workdir, n, count
            )
            report(lite)
        finally:
            broker.stop()
    return {
        "ingest_ceiling": ceiling.rate,
        "ingest_ceiling_with_acks": with_acks.rate,
        "ingest_rate_postgresql": pg.rate,
        "ingest_rate_sqlite": lite.rate,
        "ingest_ratio_postgresql": pg.rate / ceiling.rate,
        "ingest_ratio_sqlite": lite.rate / ceiling.rate,
        "ingest_rate_postgresql_2_replicas": pg2.rate,
        "ingest_ratio_postgresql_2_replicas": pg2.rate / ceiling.rate,
        "ingest_lost": float(pg.lost + pg2.lost + lite.lost),
        "ingest_duplicated": float(pg.duplicated + pg2.duplicated + lite.duplicated),
        "ingest_peak_rss_mb": max(pg.peak_rss_mb, lite.peak_rss_mb),
        "ingest_cpu_per_message_ceiling": ceiling.cpu_us_per_message,
        "ingest_cpu_per_message_ceiling_with_acks": with_acks.cpu_us_per_message,
        "ingest_cpu_per_message_postgresql": pg.cpu_us_per_message,
        "ingest_cpu_per_message_sqlite": lite.cpu_us_per_message,
        "ingest_cpu_per_message_postgresql_2_replicas": pg2.cpu_us_per_message,
        # The figure: KneeGuard's CPU per message against the bare subscriber's.
        "ingest_cpu_ratio_postgresql": pg.cpu_us_per_message / ceiling.cpu_us_per_message,
        "ingest_cpu_ratio_sqlite": lite.cpu_us_per_message / ceiling.cpu_us_per_message,
    }


UNITS = {
    "ingest_ceiling": "msg/s",
    "ingest_ceiling_with_acks": "msg/s",
    "ingest_rate_postgresql": "msg/s",
    "ingest_rate_sqlite": "msg/s",
    "ingest_ratio_postgresql": "ratio",
    "ingest_ratio_sqlite": "ratio",
    "ingest_rate_postgresql_2_replicas": "msg/s",
    "ingest_ratio_postgresql_2_replicas": "ratio",
    "ingest_lost": "messages",
    "ingest_duplicated": "messages",
    "ingest_peak_rss_mb": "MiB",
    "ingest_cpu_per_message_ceiling": "us",
    "ingest_cpu_per_message_ceiling_with_acks": "us",
    "ingest_cpu_per_message_postgresql": "us",
    "ingest_cpu_per_message_sqlite": "us",
    "ingest_cpu_per_message_postgresql_2_replicas": "us",
    "ingest_cpu_ratio_postgresql": "x",
    "ingest_cpu_ratio_sqlite": "x",
}


def figures(scale: str) -> list[Figure]:
    results = run(scale)
    return [Figure(name, value, UNITS[name]) for name, value in results.items()]


if __name__ == "__main__":
    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
