"""The red-flag latency benchmark runs end to end at a tiny size (no timing is asserted)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.broker
@pytest.mark.postgres
def test_latency_benchmark_completes() -> None:
    from bench.latency import figures

    values = {f.name: f.value for f in figures("tiny")}
    for phase in ("normal", "overload", "overload_one_process", "overload_one_session"):
        p50, p99 = values[f"redflag_latency_{phase}_p50"], values[f"redflag_latency_{phase}_p99"]
        assert 0 < p50 <= p99 <= values[f"redflag_latency_{phase}_max"]
        assert values[f"redflag_background_{phase}"] > 0
    assert values["redflag_lost"] == 0 and values["redflag_duplicated"] == 0
    assert values["redflag_peak_rss_mb_run_process"] > 0  # the shipped service has its run process
