"""The rule catalog matches shared/RULES.md, and rules files are validated strictly."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
from pydantic import BaseModel

from kneeguard.settings import Settings
from rules.catalog import CATALOG, WEAK_EVIDENCE_RULES, spec
from rules.config import (
    RuleConfig,
    RulesConfig,
    RulesConfigError,
    load_rules_config,
)
from rules.model import Recommendation, Severity

# Transcribed from shared/RULES.md, sections A and B, in its order:
# rule id → (section, default severity, default recommendation, weak evidence).
EXPECTED: dict[str, tuple[str, Severity, Recommendation, bool]] = {
    "redflag.infection_signs": ("A", Severity.URGENT, Recommendation.EMERGENCY, False),
    "redflag.acute_injury": ("A", Severity.URGENT, Recommendation.URGENT_CARE, False),
    "redflag.locked_knee": ("A", Severity.URGENT, Recommendation.URGENT_CARE, False),
    "redflag.cannot_bear_weight": ("A", Severity.URGENT, Recommendation.URGENT_CARE, False),
    "redflag.severe_pain": ("A", Severity.URGENT, Recommendation.URGENT_CARE, False),
    "redflag.professional_signs": (
        "A",
        Severity.WARNING,
        Recommendation.PROFESSIONAL_ASSESSMENT,
        False,
    ),
    "pain.high": ("A", Severity.WARNING, Recommendation.REST, False),
    "pain.not_settled": ("B", Severity.WARNING, Recommendation.REDUCE_LOAD, False),
    "pain.rising": ("B", Severity.WARNING, Recommendation.REDUCE_LOAD, False),
    "pain.persistent": ("B", Severity.WARNING, Recommendation.PROFESSIONAL_ASSESSMENT, False),
    "load.single_run_spike": ("B", Severity.WARNING, Recommendation.REDUCE_LOAD, False),
    "load.return_after_break": ("B", Severity.INFO, Recommendation.MONITOR, True),
    "load.weekly_ramp": ("B", Severity.INFO, Recommendation.MONITOR, True),
    "load.acwr": ("B", Severity.INFO, Recommendation.MONITOR, True),
    "load.monotony": ("B", Severity.INFO, Recommendation.MONITOR, True),
    "form.cadence_drop": ("B", Severity.INFO, Recommendation.PROFESSIONAL_ASSESSMENT, True),
    "ostrc.substantial": ("B", Severity.WARNING, Recommendation.REDUCE_LOAD, False),
    "engagement.quiet": ("B", Severity.INFO, Recommendation.MONITOR, True),
}


# --- catalog ---------------------------------------------------------------------------------


def test_catalog_has_exactly_the_rules_of_sections_a_and_b_in_order() -> None:
    assert list(CATALOG) == list(EXPECTED)


@pytest.mark.parametrize("rule_id", list(EXPECTED))
def test_catalog_entry_matches_rules_md(rule_id: str) -> None:
    section, severity, recommendation, weak = EXPECTED[rule_id]
    entry = CATALOG[rule_id]
    assert entry.rule_id == rule_id
    assert (entry.section, entry.severity, entry.recommendation, entry.weak_evidence) == (
        section,
        severity,
        recommendation,
        weak,
    )
    # Alert texts print these on one line each.
    for text in (entry.title, entry.source, entry.why):
        assert text.strip() and "\n" not in text


def test_weak_evidence_rules_are_info_and_never_recommend_rest() -> None:
    expected = {rule_id for rule_id, row in EXPECTED.items() if row[3]}
    assert expected == {
        "load.weekly_ramp",
        "load.acwr",
        "load.monotony",
        "form.cadence_drop",
        "load.return_after_break",
        "engagement.quiet",
    }
    assert expected == WEAK_EVIDENCE_RULES
    for rule_id in WEAK_EVIDENCE_RULES:
        assert CATALOG[rule_id].recommendation is not Recommendation.REST
        assert CATALOG[rule_id].severity is Severity.INFO


def test_catalog_cannot_be_changed_at_runtime() -> None:
    with pytest.raises(TypeError):
        CATALOG["pain.high"] = CATALOG["pain.rising"]  # type: ignore[index]


def test_spec_of_unknown_rule_names_it() -> None:
    with pytest.raises(KeyError, match=r"pain\.hgh"):
        spec("pain.hgh")
    assert spec("load.acwr") is CATALOG["load.acwr"]


# --- configuration: defaults -----------------------------------------------------------------


def test_every_catalog_rule_has_settings_enabled_by_default() -> None:
    config = RulesConfig()
    for rule_id in CATALOG:
        assert config.rule(rule_id).enabled, rule_id
    with pytest.raises(KeyError):
        config.rule("load.nothing")


def test_every_rule_setting_belongs_to_a_catalog_rule() -> None:
    config = RulesConfig()
    ids = {
        f"{group}.{name}"
        for group in type(config.rules).model_fields
        for name in type(getattr(config.rules, group)).model_fields
    }
    assert ids == set(CATALOG)


def test_defaults_are_the_thresholds_of_rules_md() -> None:
    rules = RulesConfig().rules
    assert rules.pain.high.max_post_run_pain == 5
    assert rules.pain.not_settled.min_pain == 3
    assert rules.pain.not_settled.baseline_days == 7
    assert rules.redflag.severe_pain.min_pain == 8
    rising = rules.pain.rising
    assert (rising.min_rise_points, rising.min_scored_days_per_week) == (1.0, 3)
    persistent = rules.pain.persistent
    assert (persistent.min_pain, persistent.min_scored_days, persistent.window_days) == (3, 5, 14)
    assert (persistent.min_span_days, persistent.painful_fraction) == (10, 0.8)
    spike = rules.load.single_run_spike
    assert (spike.ratio, spike.moderate_ratio, spike.large_ratio) == (1.10, 1.30, 2.00)
    assert (spike.window_days, spike.min_history_days, spike.lookback_days) == (30, 30, 7)
    assert spike.min_extrapolation_days == 14
    assert rules.load.return_after_break.break_days == 21
    assert rules.load.acwr.seed_days == 7
    assert rules.engagement.quiet.quiet_days == 7
    assert (spike.pain_upgrade_score, spike.pain_upgrade_hours) == (3, 24.0)
    assert (rules.load.weekly_ramp.ratio, rules.load.weekly_ramp.min_earlier_week_km) == (1.3, 10)
    acwr = rules.load.acwr
    assert (acwr.ratio, acwr.acute_days, acwr.chronic_days, acwr.min_history_days) == (
        1.5,
        7,
        28,
        28,
    )
    assert rules.load.monotony.max_monotony == 2.0
    cadence = rules.form.cadence_drop
    assert (cadence.drop_percent, cadence.recent_runs, cadence.min_dropped) == (5.0, 3, 2)
    assert (cadence.median_days, cadence.pain_score, cadence.window_days) == (28, 3, 7)
    ostrc = rules.ostrc.substantial
    assert (ostrc.substantial_score, ostrc.consecutive_weeks, ostrc.week_days) == (17, 2, 7)
    config = RulesConfig()
    assert config.lifecycle.auto_resolve_quiet_days == 7
    assert config.lifecycle.escalation_hours == 2.0
    assert config.prompts.checkin_delay_hours == 3.0
    assert config.sweep.interval_minutes == 60


def test_defaults_pass_their_own_validation() -> None:
    # pydantic does not validate defaults; a round trip through validation does.
    config = RulesConfig()
    assert RulesConfig.model_validate(config.model_dump()) == config
    assert load_rules_config(None) == config


def _walk(model: type[BaseModel], prefix: str = "") -> list[tuple[str, type[BaseModel], str]]:
    fields: list[tuple[str, type[BaseModel], str]] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        fields.append((f"{prefix}{name}", model, name))
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            fields.extend(_walk(annotation, f"{prefix}{name}."))
    return fields


def test_every_setting_is_described_and_every_number_bounded() -> None:
    fields = _walk(RulesConfig)
    assert len(fields) > 50
    for key, model, name in fields:
        info = model.model_fields[name]
        assert info.description, key
        if info.annotation in (int, float):
            bounds = {type(item).__name__ for item in info.metadata}
            assert {"Ge", "Le"} <= bounds, key
        assert model.model_config.get("extra") == "forbid", key


# --- configuration: files ----------------------------------------------------------------------


def _write(tmp_path: Path, text: str, name: str = "rules.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_overrides_one_value_and_keeps_every_other_default(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        '[rules."load.single_run_spike"]\n'
        "ratio = 1.2\n"
        "moderate_ratio = 1.5\n"
        "[rules.load.acwr]\n"
        "enabled = false\n"
        "[rules.pain.high]\n"
        "max_post_run_pain = 4\n"
        "[lifecycle]\n"
        "escalation_hours = 1\n",
    )
    config = load_rules_config(path)
    assert config.rules.load.single_run_spike.ratio == 1.2
    assert config.rules.load.single_run_spike.moderate_ratio == 1.5
    assert config.rules.load.single_run_spike.window_days == 30
    assert not config.is_enabled("load.acwr")
    assert config.rules.load.acwr.ratio == 1.5
    assert config.rules.pain.high.max_post_run_pain == 4
    assert config.lifecycle.escalation_hours == 1.0
    assert config.rules.load.weekly_ramp == RulesConfig().rules.load.weekly_ramp


def test_quoted_and_nested_rule_tables_are_the_same(tmp_path: Path) -> None:
    quoted = load_rules_config(_write(tmp_path, '[rules."pain.rising"]\nmin_rise_points = 2\n'))
    nested = load_rules_config(
        _write(tmp_path, "[rules.pain.rising]\nmin_rise_points = 2\n", "b.toml")
    )
    assert quoted == nested
    assert quoted.rules.pain.rising.min_rise_points == 2.0


def test_a_typo_key_names_file_and_full_dotted_key(tmp_path: Path) -> None:
    path = _write(tmp_path, "[rules.load.acwr]\ntreshold = 1.2\n")
    with pytest.raises(RulesConfigError) as caught:
        load_rules_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert '"rules.load.acwr.treshold"' in message
    assert "unknown key" in message
    assert "\n" not in message


def test_a_typo_in_a_quoted_rule_id_names_it(tmp_path: Path) -> None:
    path = _write(tmp_path, '[rules."load.acwrr"]\nratio = 1.2\n')
    with pytest.raises(RulesConfigError, match=r'unknown key "rules\.load\.acwrr"'):
        load_rules_config(path)


def test_an_out_of_range_value_names_key_value_and_allowed_range(tmp_path: Path) -> None:
    path = _write(tmp_path, '[rules."load.acwr"]\nratio = 0.5\n')
    with pytest.raises(RulesConfigError) as caught:
        load_rules_config(path)
    message = str(caught.value)
    assert str(path) in message
    assert '"rules.load.acwr.ratio" = 0.5' in message
    assert "allowed 1.0 to 5.0" in message
    assert "\n" not in message


def test_a_value_of_the_wrong_type_is_not_coerced(tmp_path: Path) -> None:
    path = _write(tmp_path, '[rules.pain.high]\nmax_post_run_pain = "5"\nenabled = "no"\n')
    with pytest.raises(RulesConfigError) as caught:
        load_rules_config(path)
    message = str(caught.value)
    assert "rules.pain.high.max_post_run_pain" in message
    assert "rules.pain.high.enabled" in message


def test_inconsistent_values_are_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "[rules.load.single_run_spike]\nmoderate_ratio = 1.05\n")
    with pytest.raises(RulesConfigError, match=r"rules\.load\.single_run_spike.*moderate_ratio"):
        load_rules_config(path)
    path = _write(tmp_path, "[rules.load.acwr]\nacute_days = 28\n", "b.toml")
    with pytest.raises(RulesConfigError, match="acute_days"):
        load_rules_config(path)


def test_the_same_rule_given_twice_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, '[rules."load.acwr"]\nratio = 2\n[rules.load.acwr]\nenabled = false\n')
    with pytest.raises(RulesConfigError, match=r"load\.acwr.*twice"):
        load_rules_config(path)


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("rules.toml", "[rules\n", "invalid TOML"),
        ("rules.json", "{}", "unsupported"),
        ("missing.toml", None, "cannot read"),
    ],
)
def test_unusable_files_give_one_line_errors(
    tmp_path: Path, name: str, content: str | None, problem: str
) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(RulesConfigError) as caught:
        load_rules_config(path)
    assert problem in str(caught.value)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)


def test_yaml_without_pyyaml_says_to_install_it_or_use_toml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # None in sys.modules makes `import yaml` fail even where PyYAML is installed.
    monkeypatch.setitem(sys.modules, "yaml", None)
    path = _write(tmp_path, "rules:\n  load.acwr:\n    ratio: 2\n", "rules.yaml")
    with pytest.raises(RulesConfigError) as caught:
        load_rules_config(path)
    message = str(caught.value)
    assert str(path) in message and "PyYAML" in message and ".toml" in message


def test_yaml_is_validated_like_toml_when_pyyaml_is_present(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JSON is a subset of YAML, so json.loads stands in for PyYAML's safe_load here: this
    # tests KneeGuard's side (reading, validation, error keys), not PyYAML's parser.
    fake = types.ModuleType("yaml")
    fake.safe_load = lambda raw: json.loads(raw)  # type: ignore[attr-defined]
    fake.YAMLError = ValueError  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "yaml", fake)
    good = _write(tmp_path, '{"rules": {"load.acwr": {"ratio": 2.0}}}', "rules.yml")
    assert load_rules_config(good).rules.load.acwr.ratio == 2.0
    bad = _write(tmp_path, '{"rules": {"load": {"acwr": {"ratoi": 2.0}}}}', "bad.yaml")
    with pytest.raises(RulesConfigError, match=r'unknown key "rules\.load\.acwr\.ratoi"'):
        load_rules_config(bad)
    not_a_mapping = _write(tmp_path, "[1, 2]", "list.yaml")
    with pytest.raises(RulesConfigError, match="mapping"):
        load_rules_config(not_a_mapping)
    empty = _write(tmp_path, "null", "empty.yaml")
    assert load_rules_config(empty) == RulesConfig()


def test_rules_file_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KNEEGUARD_RULES_FILE reaches the rules through the settings, as `kneeguard run` reads it."""

    def from_env() -> RulesConfig:
        return load_rules_config(Settings(_env_file=None).rules_file)

    monkeypatch.delenv("KNEEGUARD_RULES_FILE", raising=False)
    assert from_env() == RulesConfig()
    path = _write(tmp_path, "[rules.load.monotony]\nmax_monotony = 2.5\n")
    monkeypatch.setenv("KNEEGUARD_RULES_FILE", str(path))
    assert from_env().rules.load.monotony.max_monotony == 2.5
    monkeypatch.setenv("KNEEGUARD_RULES_FILE", str(tmp_path / "nope.toml"))
    with pytest.raises(RulesConfigError, match=r"nope\.toml"):
        from_env()


def test_config_is_immutable() -> None:
    config = RulesConfig()
    with pytest.raises(ValueError, match="frozen"):
        config.rules.load.acwr.ratio = 3.0  # type: ignore[misc]
    assert isinstance(config.rule("pain.high"), RuleConfig)
