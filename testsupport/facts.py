"""Builders for the rules' pure tests: runs, check-ins and histories relative to a fixed `NOW`,
a rules configuration with overrides, and checks on findings."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rules.catalog import CATALOG
from rules.config import RulesConfig
from rules.evaluate import evaluate_history
from rules.model import (
    AthleteHistory,
    CheckinFact,
    Finding,
    Recommendation,
    RunFact,
    Severity,
)
from rules.text import NOT_A_DIAGNOSIS, RECOMMENDATION_TEXT

DEFAULTS = RulesConfig()
# A Monday evening; most scenarios live in UTC so that "day n" is plain arithmetic.
NOW = datetime(2025, 6, 30, 20, 0, tzinfo=UTC)

_ids = itertools.count(1)


def day(days_ago: int, hour: int = 7, minute: int = 0) -> datetime:
    """An instant `days_ago` UTC days before NOW's day, at the given time."""
    return datetime.combine(
        NOW.date() - timedelta(days=days_ago), datetime.min.time(), UTC
    ).replace(hour=hour, minute=minute)


def run(
    start: datetime,
    km: float,
    *,
    minutes: float | None = None,
    rpe: float | None = None,
    cadence: float | None = None,
    uuid: str | None = None,
) -> RunFact:
    n = next(_ids)
    return RunFact(
        id=n,
        uuid=uuid or f"run-{n}",
        start=start.astimezone(UTC),
        distance_m=km * 1000.0,
        duration_s=(minutes if minutes is not None else km * 6.0) * 60.0,
        rpe=rpe,
        cadence_spm=cadence,
    )


def checkin(at: datetime, pain: int, context: str = "daily", /, **fields: Any) -> CheckinFact:
    n = next(_ids)
    return CheckinFact(
        id=n,
        uuid=f"checkin-{n}",
        recorded_at=at.astimezone(UTC),
        context=context,
        pain_score=pain,
        **fields,
    )


def history(
    runs: Iterable[RunFact] = (), checkins: Iterable[CheckinFact] = (), tz: str = "UTC"
) -> AthleteHistory:
    return AthleteHistory(athlete_id="ann", timezone=tz, runs=list(runs), checkins=list(checkins))


def config(**overrides: dict[str, Any]) -> RulesConfig:
    """Defaults with some rule tables overridden, e.g. config(**{"pain.high": {...}})."""
    return RulesConfig.model_validate({"rules": overrides})


def by_rule(findings: Sequence[Finding]) -> dict[str, Finding]:
    result = {f.rule_id: f for f in findings}
    assert len(result) == len(findings), "two findings with the same rule id"
    return result


def fires(
    rule_id: str, h: AthleteHistory, now: datetime = NOW, cfg: RulesConfig = DEFAULTS
) -> Finding:
    found = by_rule(evaluate_history(h, now, cfg))
    assert rule_id in found, f"{rule_id} did not fire; fired: {sorted(found)}"
    return found[rule_id]


def silent(
    rule_id: str, h: AthleteHistory, now: datetime = NOW, cfg: RulesConfig = DEFAULTS
) -> None:
    found = by_rule(evaluate_history(h, now, cfg))
    assert rule_id not in found, found.get(rule_id)


def assert_well_formed(finding: Finding) -> None:
    spec = CATALOG[finding.rule_id]
    lines = finding.message.split("\n")
    assert lines[0].startswith("Seen: ")
    assert lines[1] == f"What to do: {RECOMMENDATION_TEXT[finding.recommendation]}" or lines[
        1
    ].startswith(f"What to do: {RECOMMENDATION_TEXT[finding.recommendation]} ")
    assert lines[2] == f"Why: {spec.why} Source: {spec.source}."
    assert lines[-1] == NOT_A_DIAGNOSIS
    assert "you have" not in finding.message.lower()
    if spec.weak_evidence:
        assert finding.recommendation is not Recommendation.REST
        assert finding.severity is Severity.INFO


# --- Section A: red flags and pain.high ------------------------------------------------------
