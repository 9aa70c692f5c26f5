"""Rule thresholds: every number of shared/RULES.md as a validated, operator-overridable default.

The file is TOML (or YAML when PyYAML is installed). Every table is optional and every key in
it is optional; what is left out keeps its default. One table per rule, named by the rule id::

    [rules.load.single_run_spike]      # or, equivalently, [rules."load.single_run_spike"]
    ratio = 1.1
    moderate_ratio = 1.3

    [rules.load.acwr]
    enabled = false

    [lifecycle]
    auto_resolve_quiet_days = 7

    [prompts]
    checkin_delay_hours = 3

    [sweep]
    interval_minutes = 60

Both spellings of a rule table give the same dotted key (``rules.load.acwr.ratio``), and that
key is what an error names. Unknown keys, values of the wrong type and values out of range are
errors at start-up (`RulesConfigError`), never silently ignored: a typo in a threshold must not
leave an athlete unprotected.
"""

from __future__ import annotations

import difflib
import importlib
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import annotated_types
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

__all__ = [
    "AcwrConfig",
    "CadenceDropConfig",
    "EngagementQuietConfig",
    "LifecycleConfig",
    "MonotonyConfig",
    "OstrcSubstantialConfig",
    "PainHighConfig",
    "PainNotSettledConfig",
    "PainPersistentConfig",
    "PainRisingConfig",
    "PromptsConfig",
    "RedFlagConfig",
    "ReturnAfterBreakConfig",
    "RuleConfig",
    "RulesConfig",
    "RulesConfigError",
    "SeverePainConfig",
    "SingleRunSpikeConfig",
    "SweepConfig",
    "WeeklyRampConfig",
    "load_rules_config",
]


class RulesConfigError(ValueError):
    """A rules file that cannot be used; the message is one line naming the file and the key."""


class _Strict(BaseModel):
    # Strict: a TOML string "1.5" or a YAML "no" is a mistake in a health-rule threshold,
    # not something to coerce. Frozen: a config is shared by every evaluation.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


def _pain(default: int, description: str) -> Any:
    return Field(default=default, ge=0, le=10, description=description)


class RuleConfig(_Strict):
    """Settings every rule has."""

    enabled: bool = Field(default=True, description="Whether the rule is evaluated at all.")


class RedFlagConfig(RuleConfig):
    """A red flag has no threshold: its trigger is a symptom the athlete ticked."""


class SeverePainConfig(RuleConfig):
    min_pain: int = _pain(8, "redflag.severe_pain fires on a score at least this, any context.")


class PainHighConfig(RuleConfig):
    max_post_run_pain: int = _pain(
        5,
        "pain.high fires when a post_run pain score is above this (0-10); scores from "
        "redflag.severe_pain's min_pain up are that rule's, as it comes first.",
    )


class PainNotSettledConfig(RuleConfig):
    min_pain: int = _pain(3, "Lowest next_morning pain score that can fire (0-10).")
    baseline_days: int = Field(
        default=7,
        ge=1,
        le=30,
        description="The baseline is the latest daily/next_morning score this many days "
        "before the run (0 if none).",
    )
    lookback_days: int = Field(
        default=7,
        ge=1,
        le=30,
        description="next_morning check-ins of the last this many local days are examined.",
    )


class PainRisingConfig(RuleConfig):
    min_rise_points: float = Field(
        default=1.0,
        ge=0.1,
        le=10.0,
        description="Least rise of the weekly mean pain (points on 0-10) that fires.",
    )
    min_scored_days_per_week: int = Field(
        default=3, ge=1, le=28, description="Scored days (one score per day) each week needs."
    )
    week_days: int = Field(
        default=7, ge=3, le=28, description="Length in local days of each compared week."
    )


class PainPersistentConfig(RuleConfig):
    min_pain: int = _pain(3, "A day is painful when its highest score is at least this.")
    window_days: int = Field(
        default=14, ge=1, le=90, description="Length of the window in local days."
    )
    min_scored_days: int = Field(
        default=5, ge=1, le=90, description="Days with a score the window needs."
    )
    min_span_days: int = Field(
        default=10,
        ge=1,
        le=90,
        description="First to last scored day, both counted, must span at least this.",
    )
    painful_fraction: float = Field(
        default=0.8,
        ge=0.1,
        le=1.0,
        description="Share of the scored days that must be painful.",
    )

    @model_validator(mode="after")
    def _days_fit_window(self) -> Self:
        for name in ("min_scored_days", "min_span_days"):
            if getattr(self, name) > self.window_days:
                raise ValueError(
                    f"{name} ({getattr(self, name)}) must not exceed "
                    f"window_days ({self.window_days})"
                )
        return self


class SingleRunSpikeConfig(RuleConfig):
    ratio: float = Field(
        default=1.10,
        ge=1.0,
        le=5.0,
        description="Fires (warning) when a run is longer than this × the longest run before it.",
    )
    moderate_ratio: float = Field(
        default=1.30,
        ge=1.0,
        le=10.0,
        description="Above this × the reference the band is moderate (below: small).",
    )
    large_ratio: float = Field(
        default=2.00,
        ge=1.0,
        le=10.0,
        description="Above this × the reference the band is large.",
    )
    window_days: int = Field(
        default=30,
        ge=7,
        le=90,
        description="Local calendar days before the run searched for its longest run.",
    )
    min_history_days: int = Field(
        default=30,
        ge=0,
        le=365,
        description="Days between the athlete's first run and the judged run's day for the "
        "window reference.",
    )
    min_extrapolation_days: int = Field(
        default=14,
        ge=0,
        le=365,
        description="With this many days of history but fewer than min_history_days, the "
        "longest run so far is the reference (an extrapolation).",
    )
    lookback_days: int = Field(
        default=7, ge=1, le=30, description="Runs of the last this many local days are judged."
    )
    pain_upgrade_score: int = _pain(
        3, "A check-in this painful soon after the spike upgrades it to warning/rest."
    )
    pain_upgrade_hours: float = Field(
        default=24.0,
        ge=1.0,
        le=72.0,
        description="Hours after the run's end in which a painful check-in upgrades the spike.",
    )

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if not self.ratio <= self.moderate_ratio <= self.large_ratio:
            raise ValueError(
                f"ratio ({self.ratio}), moderate_ratio ({self.moderate_ratio}) and "
                f"large_ratio ({self.large_ratio}) must be in increasing order"
            )
        if self.min_extrapolation_days > self.min_history_days:
            raise ValueError(
                f"min_extrapolation_days ({self.min_extrapolation_days}) must not exceed "
                f"min_history_days ({self.min_history_days})"
            )
        return self


class ReturnAfterBreakConfig(RuleConfig):
    break_days: int = Field(
        default=21,
        ge=7,
        le=365,
        description="A run after at least this many local days without one is a return.",
    )
    lookback_days: int = Field(
        default=7, ge=1, le=30, description="Runs of the last this many local days are judged."
    )


class EngagementQuietConfig(RuleConfig):
    quiet_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="Days without a run or check-in from an athlete with an open alert.",
    )


class WeeklyRampConfig(RuleConfig):
    ratio: float = Field(
        default=1.30,
        ge=1.0,
        le=5.0,
        description="Fires when the last 7 days' distance is above this × the 7 days before.",
    )
    min_earlier_week_km: float = Field(
        default=10.0,
        ge=0.0,
        le=1000.0,
        description="The earlier week must have at least this many km to compare against.",
    )


class AcwrConfig(RuleConfig):
    ratio: float = Field(
        default=1.5, ge=1.0, le=5.0, description="Fires when the EWMA ACWR is at least this."
    )
    acute_days: int = Field(default=7, ge=1, le=28, description="EWMA span N of the acute load.")
    chronic_days: int = Field(
        default=28, ge=7, le=90, description="EWMA span N of the chronic load."
    )
    min_history_days: int = Field(
        default=28,
        ge=0,
        le=365,
        description="Days between the athlete's first run and today needed before it can fire.",
    )
    seed_days: int = Field(
        default=7,
        ge=1,
        le=28,
        description="Both averages start from the mean daily distance of this many first days.",
    )

    @model_validator(mode="after")
    def _acute_shorter(self) -> Self:
        if self.acute_days >= self.chronic_days:
            raise ValueError(
                f"acute_days ({self.acute_days}) must be below chronic_days ({self.chronic_days})"
            )
        return self


class MonotonyConfig(RuleConfig):
    max_monotony: float = Field(
        default=2.0,
        ge=0.5,
        le=10.0,
        description="Fires when mean ÷ SD of the daily load is above this.",
    )
    window_days: int = Field(
        default=7, ge=3, le=28, description="Local days whose daily loads are compared."
    )


class CadenceDropConfig(RuleConfig):
    drop_percent: float = Field(
        default=5.0,
        ge=0.5,
        le=50.0,
        description="A run counts as dropped at least this many percent below the median.",
    )
    recent_runs: int = Field(
        default=3, ge=1, le=10, description="How many of the latest runs are examined."
    )
    min_dropped: int = Field(
        default=2, ge=1, le=10, description="Dropped runs among the recent ones that fire."
    )
    median_days: int = Field(
        default=28, ge=7, le=90, description="Days before the recent runs forming the median."
    )
    min_baseline_runs: int = Field(
        default=3, ge=1, le=50, description="Runs with a cadence the median needs."
    )
    pain_score: int = _pain(3, "A check-in at least this painful must be in the same window.")
    window_days: int = Field(
        default=7,
        ge=1,
        le=28,
        description="Local days in which the dropped runs and the painful check-in must fall.",
    )

    @model_validator(mode="after")
    def _dropped_fit_recent(self) -> Self:
        if self.min_dropped > self.recent_runs:
            raise ValueError(
                f"min_dropped ({self.min_dropped}) must not exceed recent_runs ({self.recent_runs})"
            )
        return self


class OstrcSubstantialConfig(RuleConfig):
    substantial_score: int = Field(
        default=17,
        ge=1,
        le=25,
        description="Q2 or Q3 scored at least this (0/8/17/25) is a substantial problem.",
    )
    consecutive_weeks: int = Field(
        default=2,
        ge=2,
        le=8,
        description="Substantial weeks in a row that raise the advice to a professional.",
    )
    week_days: int = Field(
        default=7, ge=1, le=14, description="Length in local days of one questionnaire week."
    )


class RedFlagRules(_Strict):
    locked_knee: RedFlagConfig = Field(
        default_factory=RedFlagConfig, description="redflag.locked_knee"
    )
    infection_signs: RedFlagConfig = Field(
        default_factory=RedFlagConfig, description="redflag.infection_signs"
    )
    acute_injury: RedFlagConfig = Field(
        default_factory=RedFlagConfig, description="redflag.acute_injury"
    )
    cannot_bear_weight: RedFlagConfig = Field(
        default_factory=RedFlagConfig, description="redflag.cannot_bear_weight"
    )
    severe_pain: SeverePainConfig = Field(
        default_factory=SeverePainConfig, description="redflag.severe_pain"
    )
    professional_signs: RedFlagConfig = Field(
        default_factory=RedFlagConfig, description="redflag.professional_signs"
    )


class PainRules(_Strict):
    high: PainHighConfig = Field(default_factory=PainHighConfig, description="pain.high")
    not_settled: PainNotSettledConfig = Field(
        default_factory=PainNotSettledConfig, description="pain.not_settled"
    )
    rising: PainRisingConfig = Field(default_factory=PainRisingConfig, description="pain.rising")
    persistent: PainPersistentConfig = Field(
        default_factory=PainPersistentConfig, description="pain.persistent"
    )


class LoadRules(_Strict):
    single_run_spike: SingleRunSpikeConfig = Field(
        default_factory=SingleRunSpikeConfig, description="load.single_run_spike"
    )
    return_after_break: ReturnAfterBreakConfig = Field(
        default_factory=ReturnAfterBreakConfig, description="load.return_after_break"
    )
    weekly_ramp: WeeklyRampConfig = Field(
        default_factory=WeeklyRampConfig, description="load.weekly_ramp"
    )
    acwr: AcwrConfig = Field(default_factory=AcwrConfig, description="load.acwr")
    monotony: MonotonyConfig = Field(default_factory=MonotonyConfig, description="load.monotony")


class FormRules(_Strict):
    cadence_drop: CadenceDropConfig = Field(
        default_factory=CadenceDropConfig, description="form.cadence_drop"
    )


class OstrcRules(_Strict):
    substantial: OstrcSubstantialConfig = Field(
        default_factory=OstrcSubstantialConfig, description="ostrc.substantial"
    )


class EngagementRules(_Strict):
    quiet: EngagementQuietConfig = Field(
        default_factory=EngagementQuietConfig, description="engagement.quiet"
    )


class RuleSettings(_Strict):
    """One table per rule, grouped by the part of the rule id before the dot."""

    redflag: RedFlagRules = Field(default_factory=RedFlagRules, description="Red-flag rules.")
    pain: PainRules = Field(default_factory=PainRules, description="Pain rules.")
    load: LoadRules = Field(default_factory=LoadRules, description="Training-load rules.")
    form: FormRules = Field(default_factory=FormRules, description="Running-form rules.")
    ostrc: OstrcRules = Field(default_factory=OstrcRules, description="OSTRC-O2 rules.")
    engagement: EngagementRules = Field(
        default_factory=EngagementRules, description="Engagement rules."
    )

    @model_validator(mode="before")
    @classmethod
    def _split_quoted_rule_ids(cls, data: Any) -> Any:
        # `[rules."load.acwr"]` arrives as the key "load.acwr"; nest it like `[rules.load.acwr]`
        # so both spellings validate, and name keys in errors, identically.
        if not isinstance(data, Mapping):
            return data
        nested: dict[str, Any] = {}
        for key, value in data.items():
            group, dot, name = str(key).partition(".")
            entries = {name: value} if dot else value
            if group not in nested:
                nested[group] = dict(entries) if isinstance(entries, Mapping) else entries
                continue
            target = nested[group]
            if not (isinstance(target, dict) and isinstance(entries, Mapping)):
                raise ValueError(f'"{group}" is given both as a value and as a table')
            for rule_name, rule_value in entries.items():
                if rule_name in target:
                    raise ValueError(f'"{group}.{rule_name}" is given twice')
                target[rule_name] = rule_value
        return nested


class LifecycleConfig(_Strict):
    auto_resolve_quiet_days: int = Field(
        default=7,
        ge=1,
        le=90,
        description="An alert whose rule has not fired for this many days resolves itself.",
    )
    escalation_hours: float = Field(
        default=2.0,
        ge=0.25,
        le=48.0,
        description="An urgent alert unacknowledged this long is re-sent and escalated.",
    )


class PromptsConfig(_Strict):
    checkin_delay_hours: float = Field(
        default=3.0,
        ge=0.25,
        le=48.0,
        description="A run with no post_run check-in after this long gets one prompt.",
    )


class SweepConfig(_Strict):
    interval_minutes: int = Field(
        default=60, ge=1, le=1440, description="How often the scheduled rule sweep runs."
    )


class RulesConfig(_Strict):
    """Every threshold of shared/RULES.md; the defaults are the catalog's."""

    rules: RuleSettings = Field(default_factory=RuleSettings, description="Per-rule settings.")
    lifecycle: LifecycleConfig = Field(
        default_factory=LifecycleConfig, description="Alert lifecycle timings."
    )
    prompts: PromptsConfig = Field(
        default_factory=PromptsConfig, description="Check-in prompts after runs."
    )
    sweep: SweepConfig = Field(default_factory=SweepConfig, description="The rule sweep.")

    def rule(self, rule_id: str) -> RuleConfig:
        """The settings of `rule_id` ("load.acwr" → `rules.load.acwr`)."""
        group, dot, name = rule_id.partition(".")
        section = getattr(self.rules, group, None) if dot else None
        settings = getattr(section, name, None) if isinstance(section, BaseModel) else None
        if not isinstance(settings, RuleConfig):
            raise KeyError(f"no settings for rule id {rule_id!r}")
        return settings

    def is_enabled(self, rule_id: str) -> bool:
        return self.rule(rule_id).enabled


# --- loading --------------------------------------------------------------------------------


def load_rules_config(path: Path | None) -> RulesConfig:
    """Read and validate a rules file; `None` gives the defaults.

    `.toml` files are read with tomllib. `.yaml`/`.yml` files need PyYAML, which KneeGuard does
    not depend on; without it they are refused with a clear error rather than misread.
    Raises `RulesConfigError` with a one-line message naming the file, the dotted key and the
    problem.
    """
    if path is None:
        return RulesConfig()
    data = _read(path)
    try:
        return RulesConfig.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(_describe(error) for error in exc.errors(include_url=False))
        raise RulesConfigError(f"{path}: {problems}") from None


def _read(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in {".toml", ".yaml", ".yml"}:
        raise RulesConfigError(f"{path}: unsupported rules file type {suffix!r}; use .toml")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RulesConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if suffix == ".toml":
        try:
            return tomllib.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise RulesConfigError(f"{path}: invalid TOML: {_one_line(str(exc))}") from None
    return _read_yaml(path, raw)


def _read_yaml(path: Path, raw: bytes) -> Any:
    try:
        # Optional: KneeGuard does not depend on PyYAML, so it is looked up only when needed.
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise RulesConfigError(
            f"{path}: YAML rules files need PyYAML, which is not installed; "
            "install it or write the rules file as TOML (.toml)"
        ) from None
    try:
        data: Any = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise RulesConfigError(f"{path}: invalid YAML: {_one_line(str(exc))}") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise RulesConfigError(f"{path}: the top level must be a mapping of tables")
    return data


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        hint = _did_you_mean(loc)
        return f'unknown key "{key}"{hint}'
    if kind in {"greater_than_equal", "less_than_equal", "greater_than", "less_than"}:
        low, high = _bounds(loc)
        return f'"{key}" = {value!r} is out of range: allowed {low} to {high}'
    if kind in {"model_type", "dict_type"}:
        return f'"{key}" = {value!r}: must be a table'
    message = str(error["msg"]).removeprefix("Value error, ")
    if kind in {"value_error", "assertion_error"}:
        return f'"{key}": {message}'
    return f'"{key}" = {value!r}: {message}'


def _model_at(loc: tuple[str, ...]) -> type[BaseModel] | None:
    """The config model a location points into, following nested tables from the top."""
    model: type[BaseModel] = RulesConfig
    for part in loc:
        info = model.model_fields.get(part)
        annotation = info.annotation if info is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _bounds(loc: tuple[str, ...]) -> tuple[object, object]:
    model = _model_at(loc[:-1])
    info = model.model_fields.get(loc[-1]) if model is not None and loc else None
    low: object = "?"
    high: object = "?"
    for item in info.metadata if info is not None else ():
        if isinstance(item, annotated_types.Ge):
            low = item.ge
        elif isinstance(item, annotated_types.Le):
            high = item.le
    return low, high


def _did_you_mean(loc: tuple[str, ...]) -> str:
    model = _model_at(loc[:-1])
    if model is None or not loc:
        return ""
    close = difflib.get_close_matches(loc[-1], list(model.model_fields), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""
