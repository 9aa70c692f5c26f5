"""Alert texts: what was seen, what to do, why (with the source), and that it is no diagnosis.

Shared by rule evaluation (which stores the text as `Finding.message`) and, later, the notifier
(which may re-render it for another channel). Texts name possibilities only as hedged, general
statements ("is often linked to"); they never tell the athlete what they have (RULES.md, D).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from rules.catalog import RuleSpec
from rules.model import PainSite, Recommendation

__all__ = [
    "NOT_A_DIAGNOSIS",
    "RECOMMENDATION_TEXT",
    "km",
    "pain_site_notes",
    "ratio",
    "render",
]

NOT_A_DIAGNOSIS = "This is not a diagnosis."

RECOMMENDATION_TEXT: Mapping[Recommendation, str] = MappingProxyType(
    {
        Recommendation.MONITOR: (
            "No change is needed for now: keep training as planned and keep an eye on how "
            "the knee responds."
        ),
        Recommendation.REDUCE_LOAD: (
            "Reduce your training load for the next few days (shorter, easier runs) and build "
            "back up gradually once the knee has settled."
        ),
        Recommendation.REST: (
            "Rest from running until the pain has settled; if it has not settled within a few "
            "days, have the knee assessed."
        ),
        Recommendation.PROFESSIONAL_ASSESSMENT: (
            "Have the knee assessed by a physiotherapist or doctor before you increase your "
            "training."
        ),
        Recommendation.URGENT_CARE: (
            "Stop running and have the knee assessed today: contact your doctor or an urgent "
            "care service now."
        ),
    }
)
"""Plain-words advice for each recommendation of the catalog."""

_ANTERIOR = (
    "Pain around or behind the kneecap is often linked to patellofemoral pain (runner's knee)."
)
_LATERAL = "Pain on the outside of the knee is often linked to the iliotibial band."
_MENISCUS = (
    "Pain along the joint line together with swelling or locking can be linked to a meniscus "
    "problem."
)


def pain_site_notes(
    sites: Iterable[PainSite], *, swelling: bool = False, locking: bool = False
) -> tuple[str, ...]:
    """Hedged sentences for the pain sites of a check-in, from the knee pain source article.

    Anterior → patellofemoral pain; lateral → iliotibial band; medial or lateral (joint line)
    together with swelling or locking → meniscus. Possibilities only, never a finding.
    """
    aspects = {site.aspect for site in sites}
    notes: list[str] = []
    if "anterior" in aspects:
        notes.append(_ANTERIOR)
    if "lateral" in aspects:
        notes.append(_LATERAL)
    if aspects & {"medial", "lateral"} and (swelling or locking):
        notes.append(_MENISCUS)
    return tuple(notes)


def km(metres: float) -> str:
    """A distance for a message: kilometres with one decimal."""
    return f"{metres / 1000.0:.1f} km"


def ratio(value: float) -> str:
    """A ratio for a message: two decimals and a multiplication sign."""
    return f"{value:.2f}×"


def render(
    spec: RuleSpec,
    seen: str,
    *,
    recommendation: Recommendation | None = None,
    advice: str | None = None,
    notes: Sequence[str] = (),
) -> str:
    """The alert text of one finding, one statement per line.

    `seen` states the evidence with its numbers and units. `recommendation` defaults to the
    rule's own; `advice` adds a rule-specific sentence to what to do (e.g. a gait review);
    `notes` are hedged pain-site sentences from `pain_site_notes`. The text always ends with
    "This is not a diagnosis."
    """
    todo = RECOMMENDATION_TEXT[recommendation or spec.recommendation]
    if advice:
        todo = f"{todo} {advice}"
    lines = [
        f"Seen: {seen}",
        f"What to do: {todo}",
        f"Why: {spec.why} Source: {spec.source}.",
    ]
    if notes:
        lines.append("Possibly relevant: " + " ".join(notes))
    lines.append(NOT_A_DIAGNOSIS)
    return "\n".join(lines)
