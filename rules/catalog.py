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

__all__ = ["CATALOG", "WEAK_EVIDENCE_RULES", "RuleSpec", "spec"]


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """What a rule is, independent of any data.

    `severity` and `recommendation` are the defaults of RULES.md; a few rules change them at
    evaluation time (load.single_run_spike: info → warning, reduce_load → rest on pain;
    ostrc.substantial: reduce_load → professional_assessment after consecutive weeks).
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


_NHS = "NHS knee pain referral pathways"
_PAIN_MODEL = "pain-monitoring model, Silbernagel et al. 2007"

_SPECS: tuple[RuleSpec, ...] = (
    # --- A. Red flags: evaluated the moment a check-in is stored -------------------------
    RuleSpec(
        rule_id="redflag.locked_knee",
        title="Locked knee",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS} (a locked knee is an urgent referral)",
        why="A knee that locks needs a same-day assessment; locking can come from a torn meniscus.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.infection_signs",
        title="Swollen knee with fever",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source=f"{_NHS} (hot swollen joint with fever: emergency referral)",
        why="A swollen knee together with a fever can be a joint infection, which is an emergency.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.acute_injury",
        title="Injury and unable to bear weight",
        severity=Severity.URGENT,
        recommendation=Recommendation.URGENT_CARE,
        source="Ottawa knee rules, Stiell et al. 1995/1996",
        why="Being unable to take four steps after an injury calls for an X-ray.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="redflag.professional_signs",
        title="Swelling, giving way or night pain",
        severity=Severity.WARNING,
        recommendation=Recommendation.PROFESSIONAL_ASSESSMENT,
        source=f"knee pain source article; {_NHS} (night or rest pain)",
        why="Swelling, a knee that gives way, or pain at night should be seen by a professional.",
        weak_evidence=False,
        section="A",
    ),
    RuleSpec(
        rule_id="pain.high",
        title="High pain after a run",
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
        source=f"knee pain source article; {_NHS} (review at 2 weeks)",
        why="Pain that persists for two weeks should be reviewed by a professional.",
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="load.single_run_spike",
        title="Single-run distance spike",
        severity=Severity.INFO,
        recommendation=Recommendation.REDUCE_LOAD,
        source="Frandsen et al., BJSM 2025;59:1203 (5,205 runners)",
        why=(
            "Runs more than 10 % longer than the longest run of the previous 30 days "
            "came with a higher injury rate."
        ),
        weak_evidence=False,
        section="B",
    ),
    RuleSpec(
        rule_id="load.weekly_ramp",
        title="Weekly distance ramp",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source="Nielsen et al., JOSPT 2014 (weak evidence, information only)",
        why="Increasing weekly distance by more than 30 % was weakly linked to injury.",
        weak_evidence=True,
        section="B",
    ),
    RuleSpec(
        rule_id="load.acwr",
        title="High acute:chronic load ratio",
        severity=Severity.INFO,
        recommendation=Recommendation.MONITOR,
        source=(
            "Williams et al., BJSM 2017; Gabbett, BJSM 2016; "
            "criticised by Impellizzeri et al. 2021 (information only)"
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
        why="A moderate or greater reduction in training or performance is a substantial problem.",
        weak_evidence=False,
        section="B",
    ),
)

CATALOG: Mapping[str, RuleSpec] = MappingProxyType({s.rule_id: s for s in _SPECS})
"""Every rule of RULES.md sections A and B, by rule id, in the order of RULES.md."""

WEAK_EVIDENCE_RULES: frozenset[str] = frozenset(s.rule_id for s in _SPECS if s.weak_evidence)


def spec(rule_id: str) -> RuleSpec:
    """The catalog entry of `rule_id`; raises `KeyError` naming the id if there is none."""
    try:
        return CATALOG[rule_id]
    except KeyError:
        raise KeyError(f"unknown rule id {rule_id!r}") from None
