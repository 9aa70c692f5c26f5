"""Each benchmark runs end to end at a tiny size (no timing is asserted). The two longest, ingest
and red-flag latency, have files of their own so that test workers run them side by side."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.mark.postgres
def test_sweep_benchmark_completes() -> None:
    from bench.sweep import figures

    values = {f.name: f.value for f in figures("tiny")}
    assert values["sweep_seconds_50"] > 0
    assert values["sweep_scan_seconds_50"] > 0
    assert values["sweep_scan_ratio_50"] > 0


@pytest.mark.postgres
def test_digest_benchmark_completes() -> None:
    from bench.digests import figures

    values = {f.name: f.value for f in figures("tiny")}
    assert values["digest_total_seconds_10"] > 0
    assert values["digest_bare_scan_seconds_10"] > 0
    assert values["digest_build_scan_ratio_10"] > 0
    assert values["email_handoff_bare_sendmail_ms"] > 0 and values["email_handoff_ratio"] > 0


@pytest.mark.postgres
def test_outbox_benchmark_completes() -> None:
    from bench.outbox import figures

    values = {f.name: f.value for f in figures("tiny")}
    for phase in ("paced", "backlog"):
        p50, p99 = values[f"outbox_redflag_{phase}_p50"], values[f"outbox_redflag_{phase}_p99"]
        assert 0 < p50 <= p99
    assert values["outbox_deliveries_per_s"] > 0 and values["outbox_bare_smtplib_ms"] > 0


@pytest.mark.broker
@pytest.mark.postgres
def test_scaleout_benchmark_completes_without_losing_or_doubling() -> None:
    from bench.scaleout import figures

    values = {f.name: f.value for f in figures("tiny")}
    assert values["scaleout_lost"] == 0 and values["scaleout_duplicated"] == 0
    assert values["scaleout_rate_1"] > 0 and values["scaleout_rate_2"] > 0


def test_cli_startup_benchmark_completes() -> None:
    from bench.cli_startup import figures

    values = {f.name: f.value for f in figures("tiny")}
    assert values["cli_help_seconds"] > 0 and values["import_click_rich_seconds"] > 0
    assert values["cli_help_ratio"] > 0


def test_import_benchmark_imports_and_decodes_every_file() -> None:
    from bench.imports import BARE_OPTIONS, figures
    from ingest.files.fit import DECODE_OPTIONS

    assert BARE_OPTIONS == DECODE_OPTIONS

    values = {f.name: f.value for f in figures("tiny")}
    assert values["import_fit_files_per_s"] > 0
    assert values["import_bare_decode_files_per_s"] > 0
    assert values["import_peak_rss_mb"] > 0


@pytest.mark.postgres
def test_web_benchmark_completes() -> None:
    from bench.web import figures

    values = {f.name: f.value for f in figures("tiny")}
    assert values["web_team_p95"] > 0 and values["web_athlete_p95"] > 0
    # A fixed number of statements per page, whatever the team size (no N+1).
    assert values["web_team_sql"] <= 6 and values["web_athlete_sql"] <= 10
