"""Scale-out: two `kneeguard run --only ingest` processes sharing one MQTT shared subscription
(`$share/kneeguard/...`) against PostgreSQL, beside one process, in the same run and through
the same broker. Lost and duplicated are counted in the database afterwards."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from bench import BenchError, Figure
from bench.ingest import (
    SIZES,
    environment_problem,
    measure_kneeguard,
    postgres_database,
    publishers_from_env,
    report,
    say,
)
from testsupport import Mosquitto


def figures(scale: str) -> list[Figure]:
    problem = environment_problem()
    if problem:
        raise BenchError(problem)
    n = SIZES[scale]
    publishers = publishers_from_env()
    say(f"scale-out: {n} run messages, {publishers} publishers, {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="kneeguard-scaleout-") as tmp:
        workdir = Path(tmp)
        broker = Mosquitto(workdir / "broker")
        broker.start()
        try:
            with postgres_database() as url:
                one = measure_kneeguard(broker, "postgresql-1", url, workdir, n, publishers)
            report(one)
            with postgres_database() as url:
                two = measure_kneeguard(
                    broker, "postgresql-2", url, workdir, n, publishers, replicas=2
                )
            report(two)
        finally:
            broker.stop()
    return [
        Figure("scaleout_rate_1", one.rate, "msg/s"),
        Figure("scaleout_rate_2", two.rate, "msg/s"),
        Figure("scaleout_ratio", two.rate / one.rate, "ratio"),
        Figure("scaleout_lost", float(one.lost + two.lost), "messages"),
        Figure("scaleout_duplicated", float(one.duplicated + two.duplicated), "messages"),
    ]
