"""Alert texts: what was seen, what to do, why (with the source), and that it is no diagnosis.

Every finding has two texts (RULES.md, D):

- the athlete's, in the second person, which names no condition: no pain-site associations,
  no "meniscus" or "infection" as a finding; only what was reported and what to do;
- the coach's, in the third person, where `{athlete}` (`ATHLETE`) stands for the athlete's name
  and is filled in when the notice is rendered. On warnings and information it may list the
  reported pain sites with a hedged association ("often linked with"); never on urgent alerts,
  where an association could falsely reassure.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

from rules.catalog import RuleSpec
from rules.model import PainSite, Recommendation

__all__ = [
    "ATHLETE",
    "COACH_RECOMMENDATION_TEXT",
    "NOT_A_DIAGNOSIS",
    "RECOMMENDATION_TEXT",
    "Texts",
    "coach_text",
    "km",
    "pain_site_notes",
    "ratio",
    "render",
    "site_words",
]

NOT_A_DIAGNOSIS = "This is not a diagnosis."
ATHLETE = "{athlete}"
"""Stands for the athlete's name in coach texts; `coach_text` fills it in."""

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
            "Do not increase your training, and have the knee assessed by a physiotherapist or "
            "doctor within the next few days."
        ),
        Recommendation.URGENT_CARE: (
            "Stop running and get help today: ask your GP surgery for a same-day appointment, "
            "go to an urgent treatment centre, or call NHS 111."
        ),
        Recommendation.EMERGENCY: (
            "Go to an emergency department now (A&E; call 999 if you cannot get there "
            "safely). Do not run."
        ),
    }
)
"""Plain-words advice to the athlete for each recommendation of the catalog."""

COACH_RECOMMENDATION_TEXT: Mapping[Recommendation, str] = MappingProxyType(
    {
        Recommendation.MONITOR: (
            f"No change is needed for now; keep an eye on how {ATHLETE}'s knee responds."
        ),
        Recommendation.REDUCE_LOAD: (
            f"{ATHLETE} should reduce the training load for the next few days (shorter, easier "
            "runs) and build back up gradually once the knee has settled."
        ),
        Recommendation.REST: (
            f"{ATHLETE} should rest from running until the pain has settled, and have the knee "
            "assessed if it has not settled within a few days."
        ),
        Recommendation.PROFESSIONAL_ASSESSMENT: (
            f"{ATHLETE} should not increase training and should have the knee assessed by a "
            "physiotherapist or doctor within the next few days."
        ),
        Recommendation.URGENT_CARE: (
            f"{ATHLETE} should stop running and get help today (a same-day GP appointment, an "
            f"urgent treatment centre or NHS 111). Please check that {ATHLETE} has seen this."
        ),
        Recommendation.EMERGENCY: (
            f"{ATHLETE} should go to an emergency department now (A&E, or 999). Please make "
            f"sure {ATHLETE} has seen this."
        ),
    }
)
"""The same advice told to the coach, in the third person."""

_ASPECT_WORDS: Mapping[str, str] = MappingProxyType(
    {
        "anterior": "front of the knee",
        "lateral": "outside of the knee",
        "medial": "inside of the knee",
        "posterior": "back of the knee",
        "diffuse": "all over the knee",
    }
)
_ASSOCIATION: Mapping[str, str] = MappingProxyType(
    {
        "anterior": "often linked with patellofemoral pain",
        "lateral": "often linked with the iliotibial band",
    }
)
_JOINT_LINE = "with swelling, sometimes linked with a meniscus problem"


def site_words(sites: Iterable[PainSite]) -> list[str]:
    """Reported pain sites in words, e.g. "left outside of the knee", in a stable order."""
    seen: dict[tuple[str, str], str] = {}
    for site in sites:
        side = "both knees:" if site.side == "both" else site.side
        seen.setdefault((site.aspect, site.side), f"{side} {_ASPECT_WORDS[site.aspect]}")
    order = list(_ASPECT_WORDS)
    return [seen[key] for key in sorted(seen, key=lambda k: (order.index(k[0]), k[1]))]


def pain_site_notes(sites: Iterable[PainSite], *, swelling: bool = False) -> tuple[str, ...]:
    """Hedged sentences for the coach about the reported pain sites (knee pain source article).

    Front → patellofemoral pain; outside → iliotibial band; inside or outside with swelling →
    meniscus. Possibilities only, never a finding, and never for the athlete or on an urgent
    alert (the caller leaves them out there).
    """
    items: list[str] = []
    for site in dict.fromkeys(sites):
        side = "both knees," if site.side == "both" else site.side
        words = f"{side} {_ASPECT_WORDS[site.aspect]}"
        hedges = [_ASSOCIATION[site.aspect]] if site.aspect in _ASSOCIATION else []
        if swelling and site.aspect in {"medial", "lateral"}:
            hedges.append(_JOINT_LINE)
        items.append(f"{words} — {'; '.join(hedges)}" if hedges else words)
    if not items:
        return ()
    return ("Pain sites reported: " + ", ".join(items) + ".",)


def km(metres: float) -> str:
    """A distance for a message: kilometres with one decimal."""
    return f"{metres / 1000.0:.1f} km"


def ratio(value: float) -> str:
    """A ratio for a message: two decimals and a multiplication sign."""
    return f"{value:.2f}×"


@dataclass(frozen=True, slots=True)
class Texts:
    athlete: str
    coach: str


def render(
    spec: RuleSpec,
    seen: str,
    coach_seen: str,
    *,
    recommendation: Recommendation | None = None,
    advice: str | None = None,
    coach_advice: str | None = None,
    notes: Sequence[str] = (),
) -> Texts:
    """The athlete's and the coach's text of one finding, one statement per line.

    `seen` / `coach_seen` state the evidence with its numbers and units (the coach's with
    `{athlete}` for the name). `recommendation` defaults to the rule's own; `advice` /
    `coach_advice` add a rule-specific sentence to what to do; `notes` (from `pain_site_notes`)
    go into the coach's text only. Both end with "This is not a diagnosis."
    """
    rec = recommendation or spec.recommendation
    why = f"Why: {spec.why} Source: {spec.source}."
    todo = RECOMMENDATION_TEXT[rec] + (f" {advice}" if advice else "")
    coach_todo = COACH_RECOMMENDATION_TEXT[rec] + (f" {coach_advice}" if coach_advice else "")
    athlete = [f"Seen: {seen}", f"What to do: {todo}", why, NOT_A_DIAGNOSIS]
    coach = [f"Seen: {coach_seen}", f"What to do: {coach_todo}", why, *notes, NOT_A_DIAGNOSIS]
    return Texts("\n".join(athlete), "\n".join(coach))


def coach_text(text: str, athlete_name: str) -> str:
    """A stored coach text with the athlete's name filled in."""
    return text.replace(ATHLETE, athlete_name)
