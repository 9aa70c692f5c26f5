"""Red-flag latency: publishing a locked-knee check-in → the athlete's email at the SMTP server,
while runs arrive in the background at a rate derived from what the service ingests in the same
run.

One broker (the deploy config), one PostgreSQL database, a real SMTP server (aiosmtpd, in this
process). The whole service runs as `kneeguard run` as shipped under compose: check-ins on a broker
session of their own (KNEEGUARD_MQTT_CHECKIN_URL), runs in a process of their own
(KNEEGUARD_RUN_LANE_PROCESS). In order:

1. ingest rate R: a burst of runs published as fast as two publisher processes can, and the time
   until the service has stored them all (as in bench/ingest.py);
2. normal load: two processes publish runs at R/2 in total; after 2 s, one red flag every 50 ms,
   each for a different athlete (so each opens a new urgent alert);
3. overload: the same at 1.5 R, so that runs pile up at the broker;
4. for comparison, the same overload with runs stored in the service's own process
   (KNEEGUARD_RUN_LANE_PROCESS unset), as before the run process existed;
5. and with one session for runs and check-ins (KNEEGUARD_MQTT_CHECKIN_URL unset too), as before
   the check-in session existed.

Latency is from the `publish()` call to the SMTP server receiving the athlete's email, both on
this process's monotonic clock. Two stages on the way are reported per red flag too, from the
database and the wall clock of the same machine: until the service received the check-in
(`checkins.received_at`: the broker's queue and the network thread) and until its deliveries were
queued (`deliveries.created_at`: stored, rules run, alert opened); the rest is the outbox. After
each phase the benchmark waits until every run it published is stored; lost and duplicated count
the runs and check-ins in the database against what was published, over all phases. Peak RSS is
each service process's VmHWM, the run process's apart. BENCH_PYSPY=DIR records a py-spy profile
of the service during each phase (`latency-PHASE.txt`), as bench/ingest.py does; with
BENCH_PYSPY_ARGS=--subprocesses, the run process's too.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
import uuid as uuidlib
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Event as MPEvent
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from bench import BenchError, Figure
from bench._db import fresh_postgres
from bench._smtp import SinkProcess
from bench.ingest import (
    ATHLETE,
    DEVICE,
    RUN_TOPIC,
    Publishers,
    ServiceProcess,
    forget_session,
    new_uuids,
    payload_template,
    profiler,
    unused_port,
)
from db.engine import make_engine, session_factory
from db.models import Checkin, Delivery, Run
from kneeguard.admin.registry import Registry
from testsupport import (
    TEST_PASSWORD,
    TEST_USER,
    Mosquitto,
    checkin_payload,
    wait_until,
)

# (red flags per phase, runs in the burst that measures the ingest rate)
SIZES = {"tiny": (10, 1_000), "small": (200, 10_000), "full": (200, 20_000)}
PREFIX = "kneeguard/v1"
FLAG_GAP = 0.05
WARMUP = 2.0
BACKGROUND_PROCESSES = 2
# How long a phase waits for its red flags' emails before it fails.
EMAIL_WAIT = 300.0
PHASES = ("normal", "overload", "overload_one_process", "overload_one_session")
_MP = multiprocessing.get_context("spawn")


def say(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True, slots=True)
class Sent:
    """What one background process published: every uuid, all acknowledged by the broker."""

    uuids: list[str]
    seconds: float
    error: str | None = None


def background(
    port: int, rate: float, ready: MPEvent, stop: MPEvent, results: MPQueue[Sent]
) -> None:
    """Once connected, say so, then publish valid runs at `rate` per second until told to stop;
    report what was published once the broker has acknowledged all of it."""
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"bench-bg-{uuidlib.uuid4().hex[:10]}",
    )
    client.username_pw_set(TEST_USER, TEST_PASSWORD)
    client.max_inflight_messages_set(1000)
    client.connect("127.0.0.1", port)
    client.loop_start()
    template = payload_template()
    placeholder = json.loads(template)["header"]["uuid"]
    uuids: list[str] = []
    infos = []
    ready.set()
    tick = 0.01
    per_tick = rate * tick
    owed = 0.0
    started = time.monotonic()
    next_at = started
    while not stop.is_set():
        owed += per_tick
        while owed >= 1:
            owed -= 1
            uuid = str(uuidlib.uuid4())
            uuids.append(uuid)
            infos.append(client.publish(RUN_TOPIC, template.replace(placeholder, uuid), qos=1))
        next_at += tick
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    seconds = time.monotonic() - started
    error = None
    for info in infos:
        info.wait_for_publish(60)
        if not info.is_published():
            error = "a background run was not acknowledged by the broker within 60 s"
            break
    results.put(Sent(uuids, seconds, error))
    client.disconnect()
    client.loop_stop()


def send_flags(
    client: mqtt.Client, names: list[str], sent: dict[str, float], published: dict[str, float]
) -> None:
    """One locked-knee check-in per athlete, FLAG_GAP apart; notes when each was published
    (monotonic, by email address; wall clock, by athlete)."""
    for athlete in names:
        payload = checkin_payload(pain_score=2, symptoms={"locking": True})
        payload["body"]["effective_time_frame"]["date_time"] = datetime.now(UTC).isoformat()
        sent[f"{athlete}@example.com"] = time.monotonic()
        published[athlete] = time.time()
        client.publish(f"{PREFIX}/{athlete}/watch/checkin", json.dumps(payload), qos=1)
        time.sleep(FLAG_GAP)


def arrived(smtp: SinkProcess) -> set[str]:
    # Envelope recipients, not parsed headers: this process also runs the SMTP server.
    return {to for _, recipients in smtp.received for to in recipients}


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    latencies: list[float]
    background_rate: float
    uuids: list[str]
    received: list[float]
    queued: list[float]

    def figures(self) -> list[Figure]:
        ordered = sorted(self.latencies)
        p99 = ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]
        return [
            Figure(f"redflag_background_{self.name}", self.background_rate, "msg/s"),
            Figure(f"redflag_latency_{self.name}_p50", statistics.median(ordered), "ms"),
            Figure(f"redflag_latency_{self.name}_p99", p99, "ms"),
            Figure(f"redflag_latency_{self.name}_max", ordered[-1], "ms"),
            Figure(f"redflag_received_{self.name}_p99", percentile99(self.received), "ms"),
            Figure(f"redflag_queued_{self.name}_p99", percentile99(self.queued), "ms"),
        ]


def percentile99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * len(ordered)) - 1)]


def stages(engine: Engine, published: dict[str, float]) -> tuple[list[float], list[float]]:
    """Per red flag, in ms from its publication (wall clock, same machine): until the service
    received the check-in (`checkins.received_at`), and until its deliveries were queued
    (`deliveries.created_at`: stored, rules run, alert opened)."""
    names = list(published)
    with engine.connect() as conn:
        got: dict[str, datetime] = {
            athlete: at
            for athlete, at in conn.execute(
                select(Checkin.athlete_id, Checkin.received_at).where(Checkin.athlete_id.in_(names))
            )
        }
        queued: dict[str, datetime] = {
            athlete: at
            for athlete, at in conn.execute(
                select(Delivery.recipient_id, func.min(Delivery.created_at))
                .where(Delivery.recipient_kind == "athlete", Delivery.recipient_id.in_(names))
                .group_by(Delivery.recipient_id)
            )
        }
    return (
        [(got[a].timestamp() - published[a]) * 1000 for a in names if a in got],
        [(queued[a].timestamp() - published[a]) * 1000 for a in names if a in queued],
    )


def count(engine: Engine, model: type[Run] | type[Checkin]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(model)).scalar_one())


def athletes(phase: str, flags: int) -> list[str]:
    """The athletes whose red flags a phase sends: new ones, so each opens a new alert."""
    letters = {"normal": "n", "overload": "o", "overload_one_process": "p"}
    letter = letters.get(phase, "s")
    return [f"{letter}{i:04d}" for i in range(flags)]


def prepare(url: str, flags: int) -> None:
    engine = make_engine(url)
    registry = Registry(session_factory(engine))
    registry.add_coach(coach_id="cora", name="Cora", email="cora@example.com")
    registry.add_athlete(athlete_id=ATHLETE, name="Bench Runner", email="bench@example.com")
    registry.add_device(athlete_id=ATHLETE, device_id=DEVICE)
    for phase in PHASES:
        for athlete in athletes(phase, flags):
            registry.add_athlete(
                athlete_id=athlete,
                name=athlete,
                email=f"{athlete}@example.com",
                coach_id="cora",
                quiet_hours="off",
            )
            registry.add_device(athlete_id=athlete, device_id="watch")
    engine.dispose()


def wait_stored(engine: Engine, expected: int, service: ServiceProcess, timeout: float) -> float:
    """Poll until `expected` runs are stored; the time they were all seen."""
    deadline = time.monotonic() + timeout
    while True:
        stored = count(engine, Run)
        if stored >= expected:
            return time.time()
        if service.process.poll() is not None:
            raise BenchError(f"the service exited after {stored} runs:\n{service.tail()}")
        if time.monotonic() > deadline:
            raise BenchError(
                f"only {stored} of {expected} runs after {timeout:.0f}s:\n{service.tail(40)}"
            )
        time.sleep(0.1)


def ingest_rate(
    broker: Mosquitto, engine: Engine, service: ServiceProcess, n: int
) -> tuple[float, list[str]]:
    before = count(engine, Run)
    uuids = new_uuids(n)
    pubs = Publishers(broker.port, uuids, 2, 120 + n / 200)
    try:
        pubs.start()
        pubs.fire()
        end = wait_stored(engine, before + n, service, 120 + n / 200)
        first = min(r.first for r in pubs.results())
    finally:
        pubs.stop()
    rate = n / (end - first)
    say(f"ingest rate: {n} runs stored in {end - first:.2f}s = {rate:.0f} msg/s")
    return rate, uuids


def phase(
    name: str,
    broker: Mosquitto,
    engine: Engine,
    smtp: SinkProcess,
    service: ServiceProcess,
    rate: float,
    flags: int,
) -> Phase:
    stop = _MP.Event()
    results: MPQueue[Sent] = _MP.Queue()
    readies = [_MP.Event() for _ in range(BACKGROUND_PROCESSES)]
    processes = [
        _MP.Process(
            target=background,
            args=(broker.port, rate / BACKGROUND_PROCESSES, ready, stop, results),
            daemon=True,
        )
        for ready in readies
    ]
    before = count(engine, Run)
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.username_pw_set(TEST_USER, TEST_PASSWORD)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    sent: dict[str, float] = {}
    published: dict[str, float] = {}
    try:
        for process in processes:
            process.start()
        if not all(ready.wait(60) for ready in readies):
            raise BenchError(f"{name}: a background publisher did not connect within 60 s")
        time.sleep(WARMUP)
        lane = run_process(service)
        pids = [service.pid] if lane is None else [service.pid, lane]
        cpu_before, flags_started = [cpu_seconds(pid) for pid in pids], time.monotonic()
        with profiler(service.pid, f"latency-{name}"):
            send_flags(client, athletes(name, flags), sent, published)
            # The controls hold red flags behind a backlog for minutes on a slow day.
            done = wait_until(lambda: set(sent) <= arrived(smtp), EMAIL_WAIT, interval=0.1)
            missing = len(set(sent) - arrived(smtp))
        cpu = [cpu_seconds(pid) - before for pid, before in zip(pids, cpu_before, strict=True)]
        took = time.monotonic() - flags_started
        say(
            f"{name}: from the first red flag to the last email ({took:.1f} s) "
            f"the service used {cpu[0]:.1f} CPU-s"
            + (f", its run process {cpu[1]:.1f} CPU-s" if len(cpu) > 1 else "")
        )
        stop.set()
        outcomes = [results.get(timeout=120) for _ in processes]
        for process in processes:
            process.join(30)
        if not done:
            raise BenchError(
                f"{name}: {missing} of {flags} emails had not arrived after "
                f"{EMAIL_WAIT:.0f} s:\n"
                f"{service.tail()}"
            )
        errors = [o.error for o in outcomes if o.error]
        if errors:
            raise BenchError("; ".join(errors))
    finally:
        stop.set()
        for process in processes:
            if process.is_alive():
                process.terminate()
        client.disconnect()
        client.loop_stop()
    uuids = [u for o in outcomes for u in o.uuids]
    achieved = len(uuids) / max(o.seconds for o in outcomes)
    latencies = []
    for received_at, recipients in smtp.received:
        for address in recipients:
            if address in sent:
                latencies.append((received_at - sent.pop(address)) * 1000)
    drain_started = time.monotonic()
    wait_stored(engine, before + len(uuids), service, 300)
    received, queued = stages(engine, published)
    say(
        f"{name}: publish -> received by the service p50 {statistics.median(received):.0f} ms, "
        f"max {max(received):.0f} ms; publish -> deliveries queued (stored, rules run) p50 "
        f"{statistics.median(queued):.0f} ms, max {max(queued):.0f} ms"
    )
    say(
        f"{name}: {flags} red flags, background {achieved:.0f} runs/s (asked {rate:.0f}); "
        f"p50 {statistics.median(latencies):.0f} ms, max {max(latencies):.0f} ms; the runs "
        f"left at the end were stored {time.monotonic() - drain_started:.1f}s later"
    )
    return Phase(name, latencies, achieved, uuids, received, queued)


def wait_sessions(service: ServiceProcess, sessions: int) -> None:
    service.wait_subscribed()

    def subscribed() -> bool:
        return sum("subscribed to" in line for line in service.lines) == sessions

    if not wait_until(subscribed, 30):
        raise BenchError(f"not all {sessions} broker sessions subscribed:\n{service.tail()}")


def stop(service: ServiceProcess, port: int) -> None:
    """SIGTERM, and end the service's two broker sessions for the phases after it."""
    if service.terminate() != 0:
        raise BenchError(f"the service did not stop cleanly:\n{service.tail()}")
    for client_id in ("kneeguard-ingest", "kneeguard-ingest-checkin"):
        forget_session(port, client_id)


def run_process(service: ServiceProcess) -> int | None:
    """The pid of the service's run process, from its log; None when it has none."""
    marker = "runs are stored by a process of their own (pid "
    for line in service.lines:
        if marker in line:
            return int(line.split(marker, 1)[1].split(")", 1)[0])
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (all threads)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for process {pid}")


def figures(scale: str) -> list[Figure]:
    flags, burst = SIZES[scale]
    results: list[Figure] = []
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres() as url:
        prepare(url, flags)
        engine = make_engine(url)
        broker = Mosquitto(Path(tmp) / "broker")
        broker.start()
        smtp = SinkProcess().start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
        env.update(
            KNEEGUARD_DATABASE_URL=url,
            KNEEGUARD_MQTT_URL=broker.url,
            KNEEGUARD_SMTP_URL=smtp.url,
            KNEEGUARD_LOG_LEVEL="INFO",
            KNEEGUARD_WEB_BIND=f"127.0.0.1:{unused_port()}",
        )
        services: list[ServiceProcess] = []
        phases: list[Phase] = []
        lanes = {"KNEEGUARD_MQTT_CHECKIN_URL": broker.checkin_url}
        try:
            # As shipped: check-ins on a session of their own, runs in a process of their own.
            shipped = ServiceProcess(
                {**env, **lanes, "KNEEGUARD_RUN_LANE_PROCESS": "true"}, Path(tmp), args=("run",)
            )
            services.append(shipped)
            wait_sessions(shipped, 2)
            rate, published = ingest_rate(broker, engine, shipped, burst)
            for name, factor in (("normal", 0.5), ("overload", 1.5)):
                phases.append(phase(name, broker, engine, smtp, shipped, rate * factor, flags))
            rss = shipped.peak_rss_mb()
            lane = run_process(shipped)
            if lane is None:
                raise BenchError(f"the service started no run process:\n{shipped.tail()}")
            rss_runs = peak_rss_mb(lane)
            stop(shipped, broker.port)
            # For comparison, at the same overload: runs in the service's own process ...
            one_process = ServiceProcess({**env, **lanes}, Path(tmp), args=("run",))
            services.append(one_process)
            wait_sessions(one_process, 2)
            phases.append(
                phase("overload_one_process", broker, engine, smtp, one_process, rate * 1.5, flags)
            )
            rss_one_process = one_process.peak_rss_mb()
            stop(one_process, broker.port)
            # ... and on one session for runs and check-ins, as before the check-in session.
            one = ServiceProcess(
                {**env, "KNEEGUARD_MQTT_CLIENT_ID": "bench-one-session"}, Path(tmp), args=("run",)
            )
            services.append(one)
            one.wait_subscribed()
            phases.append(
                phase("overload_one_session", broker, engine, smtp, one, rate * 1.5, flags)
            )
            rss_one = one.peak_rss_mb()
            if one.terminate() != 0:
                raise BenchError(f"the service did not stop cleanly:\n{one.tail()}")
            published += [u for p in phases for u in p.uuids]
            with engine.connect() as conn:
                rows = list(conn.execute(select(Run.uuid)).scalars())
                checkins = int(conn.execute(select(func.count()).select_from(Checkin)).scalar_one())
        finally:
            for service in services:
                service.kill()
            smtp.stop()
            broker.stop()
            engine.dispose()
    distinct = set(rows)
    expected_checkins = flags * len(PHASES)
    lost = len(set(published) - distinct) + max(0, expected_checkins - checkins)
    duplicated = len(rows) - len(distinct) + max(0, checkins - expected_checkins)
    results.append(Figure("redflag_ingest_rate", rate, "msg/s"))
    for item in phases:
        results.extend(item.figures())
    results += [
        Figure("redflag_lost", float(lost), "messages"),
        Figure("redflag_duplicated", float(duplicated), "messages"),
        Figure("redflag_peak_rss_mb", rss, "MiB"),
        Figure("redflag_peak_rss_mb_run_process", rss_runs, "MiB"),
        Figure("redflag_peak_rss_mb_one_process", rss_one_process, "MiB"),
        Figure("redflag_peak_rss_mb_one_session", rss_one, "MiB"),
    ]
    return results


if __name__ == "__main__":
    from bench import scale_from_env

    for figure in figures(scale_from_env()):
        print(figure.line(), flush=True)
