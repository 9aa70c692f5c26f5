"""The default rule catalog: one `RuleSpec` per rule of shared/RULES.md, sections A and B.

Rule ids, default severities and recommendations are part of the public contract (alerts,
digests and tests name rules by id), so they live here as data rather than inside the
evaluation code. Thresholds are not here: they are operator-tunable and live in
`rules.config.RulesConfig`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from rules.model import Recommendation, Severity

__all__ = ["CATALOG", "RED_FLAG_RULES", "WEAK_EVIDENCE_RULES", "RuleSpec", "spec"]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule is, independent of any data.

    `severity` and `recommendation` are the defaults of RULES.md; a few rules change them at
    evaluation time (load.single_run_spike: reduce_load → rest on pain; ostrc.substantial:
    reduce_load → professional_assessment after consecutive weeks).
    `source` is the one-line citation and `why` the one-line reason shown in alert texts.
    `weak_evidence` rules are information for the coach only and never recommend rest.
    """

    rule_id: str
    title: str
    severity: Severity
    recommendation: Recommendation
    source: str
    why: str
    weak_evidence: bool
    section: Literal["A", "B"]


_NHS = "NHS knee pain guidance"
_NHS_INJURY = "NHS traumatic knee injury pathways"
_PAIN_MODEL = "pain-monitoring model, Silbernagel et al. 2007"
_FRANDSEN = "Frandsen et al., BJSM 2025;59:1203 (5,205 runners, 588,071 sessions)"

# `why` lines are read by athletes: they say why the advice is given, never what the athlete
# may have (RULES.md, D). docs/RULES.md explains the possibilities behind each rule.
_SPECS: tuple[RuleSpec, ...] = (
    # --- A. Red flags: evaluated the moment a check-in is stored, first match wins -------------
    RuleSpec(
        rule_id="redflag.infection_signs",
        title="Hot or swollen knee with fever",
        severity=Severity.URGENT,
        recommendation=Recommendation.EMERGENCY,
        source=f"{_NHS} (a hot, swollen knee with a high temperature is an emergency)",
        why="A swollen, red or warm knee together with a fever needs emergency care.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.acute_injury",
        title="Injury with swelling, instability, numbness or no weight-bearing",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS_INJURY}; Ottawa knee rules, Stiell et al. 1995/1996",
        why=(
            "An injury followed by swelling, giving way, numbness or being unable to take "
            "weight needs a same-day assessment."
        ),
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.locked_knee",
        title="Locked knee",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS} (a knee that locks: same-day help); knee pain source article",
        why="A knee that locks or cannot fully straighten needs help the same day.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.cannot_bear_weight",
        title="Cannot bear weight",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS} (cannot put weight on the leg: same-day help)",
        why="Not being able to put weight on the leg needs help the same day.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.severe_pain",
        title="Severe knee pain",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS} (a very painful knee: same-day help)",
        why="A very painful knee needs help the same day.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.professional_signs",
        title="Swelling, giving way, night pain, numbness or redness",
        severity=Severity.WARNING,
        recommendation=Recommendation.PROFESSIONAL_ASSESSMENT,
        source=f"knee pain source article; {_NHS} (night or rest pain, numbness)",
        why=(
            "Swelling, a knee that gives way, pain at night, numbness or a red, warm knee "
            "should be seen by a professional."
        ),
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="pain.high",
        title="High pain during or after a run",
        severity=Severity.WARNING,
        recommendation=Recommendation.REST,
        source=_PAIN_MODEL,
        why="Pain during or after running should stay at 5/10 or below.",
        weak_evidence=False,
        section="A",
    ),
    # --- B. Scheduled: evaluated by the rule sweep -------------------------------------------
    RuleSpec(
        rule_id="pain.not_settled",
        title="Pain not settled the next morning",
        severity=Severity.WARNING,
        recommendation=Recommendation.REDUCE_LOAD,
        source=_PAIN_MODEL,
        why="Pain caused by a run should have settled by the next morning.",
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="pain.rising",
        title="Pain rising week on week",
        severity=Severity.WARNING,
        recommendation=Recommendation.REDUCE_LOAD,
        source=_PAIN_MODEL,
        why="Pain should not increase from one week to the next.",
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="pain.persistent",
        title="Persistent pain",
        severity=Severity.WARNING,
        recommendation=Recommendation.PROFESSIONAL_ASSESSMENT,
        source=f"knee pain source article; {_NHS} (see a GP if not better after 2 weeks)",
        why="Pain that has not improved over two weeks should be reviewed by a professional.",
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="load.single_run_spike",
        title="Single-run distance spike",
        severity=Severity.WARNING,
        recommendation=Recommendation.REDUCE_LOAD,
        source=_FRANDSEN,
        why=(
            "Runs more than 10 % longer than the longest run of the previous 30 days "
            "came with a higher injury rate."
        ),
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="load.return_after_break",
        title="First run after a break",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source="no reference run exists after a break (information only)",
        why="After a break there is no recent run to compare with; the coach sees the run.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="load.weekly_ramp",
        title="Weekly distance ramp",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source=(
            "Nielsen et al., JOSPT 2014 (novice runners); Frandsen 2025 found no relation "
            "(information only)"
        ),
        why="Increasing weekly distance by more than 30 % was weakly linked to injury in novices.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="load.acwr",
        title="High acute:chronic load ratio",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source=(
            "Williams et al., BJSM 2017; Gabbett, BJSM 2016; criticised by Impellizzeri et al., "
            "Sports Med 2020/2021 (information only)"
        ),
        why="A recent load well above the longer-term load is a disputed marker of injury risk.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="load.monotony",
        title="Monotonous training week",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source="Foster 1998/2001 (threshold is convention)",
        why="Training with little day-to-day variation in load has been linked to overtraining.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="form.cadence_drop",
        title="Cadence drop with pain",
        severity=Severity.INFO,
        recommendation=Recommendation.PROFESSIONAL_ASSESSMENT,
        source="Heiderscheit et al. 2011 (mechanistic only)",
        why="A lower step rate puts more load on the knee with each step; a gait review can help.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="ostrc.substantial",
        title="Substantial problem on the OSTRC questionnaire",
        severity=Severity.WARNING,
        recommendation=Recommendation.REDUCE_LOAD,
        source="Clarsen et al., BJSM 2013/2020 (OSTRC-O2)",
        why=(
            "Not being able to take part, or a moderate or greater reduction in training or "
            "performance, is a substantial problem."
        ),
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="engagement.quiet",
        title="No news from an athlete with an open alert",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source="not clinical: a prompt for the coach to check in",
        why="An athlete with an open alert has sent nothing for a week.",
        weak_evidence=True,
        section="B",
    ),
)

CATALOG: Mapping[str, RuleSpec] = MappingProxyType({s.rule_id: s for s in _SPECS})
"""Every rule of RULES.md sections A and B, by rule id, in the order of RULES.md (section A's
order is the order in which a check-in's red flags are tried)."""

WEAK_EVIDENCE_RULES: frozenset[str] = frozenset(s.rule_id for s in _SPECS if s.weak_evidence)

RED_FLAG_RULES: tuple[str, ...] = tuple(s.rule_id for s in _SPECS if s.section == "A")
"""Section A, in order: one check-in fires at most the first that matches, and a red flag
notifies on every new check-in that fires it (RULES.md, C)."""


def spec(rule_id: str) -> RuleSpec:
    """The catalog entry of `rule_id`; raises `KeyError` naming the id if there is none."""
    try:
        return CATALOG[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r}") from None
