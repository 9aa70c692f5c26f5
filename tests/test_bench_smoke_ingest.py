"""The ingest benchmark runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench.ingest import environment_problem, run
from testsupport import missing

pytestmark = pytest.mark.slow


@pytest.mark.broker
@pytest.mark.postgres
def test_ingest_benchmark_completes_without_losing_or_doubling_messages() -> None:
    problem = environment_problem()
    if problem:
        missing(problem)
    figures = run(scale="tiny", publishers=2)
    assert figures["ingest_lost"] == 0
    assert figures["ingest_duplicated"] == 0
    for name in (
        "ingest_ceiling",
        "ingest_rate_postgresql",
        "ingest_rate_sqlite",
        "ingest_ratio_postgresql",
        "ingest_ratio_sqlite",
        "ingest_peak_rss_mb",
        "ingest_ceiling_with_acks",
        "ingest_cpu_per_message_ceiling",
        "ingest_cpu_per_message_postgresql",
        "ingest_cpu_per_message_sqlite",
        "ingest_cpu_per_message_postgresql_2_replicas",
        "ingest_cpu_ratio_postgresql",
        "ingest_cpu_ratio_sqlite",
    ):
        assert figures[name] > 0, name
