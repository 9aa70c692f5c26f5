"""Alert notices: one `Message` per alert, audience and reason, for every channel.

The subject leads with the severity and what to do, so that a runner who reads nothing but a
push title or a mail subject still gets the advice; the body repeats it, followed by the alert's
own text (what was seen, what to do, why with the source, "This is not a diagnosis."). Bodies
come from the Jinja2 templates in `notifier/templates/`; the HTML one is autoescaped, because
athlete names and evidence values are user input.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from functools import cache
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from notifier.base import Action, Message, NoticeLink
from rules.catalog import CATALOG
from rules.model import Recommendation
from rules.text import coach_text as coach_text_for

__all__ = [
    "AUDIENCES",
    "REASONS",
    "SEVERITIES",
    "coach_phrase",
    "hours_text",
    "render_alert",
    "subject_for",
]

SEVERITIES: Final = ("info", "warning", "urgent")
REASONS: Final = ("opened", "raised", "stronger", "repeated", "escalation")
AUDIENCES: Final = ("athlete", "coach")

_TAG: Final = {"info": "[Info]", "warning": "[Warning]", "urgent": "[URGENT]"}
_COLOUR: Final = {"info": "#2f5d8a", "warning": "#a34f00", "urgent": "#b00020"}
ESCALATION_HOURS: Final = 2.0
"""RULES.md, C: the default escalation period; the configured one (`lifecycle.escalation_hours`)
is passed to `render_alert` and stated in the text."""

# Short imperative for the athlete, a neutral phrase for the coach (it is not their knee).
_TODO: Final[Mapping[Recommendation, tuple[str, str]]] = {
    Recommendation.EMERGENCY: (
        "go to an emergency department now",
        "emergency department now",
    ),
    Recommendation.URGENT_CARE: (
        "stop running and get help today",
        "stop running, same-day help",
    ),
    Recommendation.PROFESSIONAL_ASSESSMENT: (
        "have your knee assessed",
        "professional knee assessment",
    ),
    Recommendation.REST: ("rest from running", "rest from running"),
    Recommendation.REDUCE_LOAD: ("reduce your training load", "reduce training load"),
    Recommendation.MONITOR: ("keep an eye on your knee", "keep monitoring"),
}


def render_alert(
    *,
    alert_id: int | str,
    athlete_id: str,
    athlete_name: str,
    rule_id: str,
    severity: str,
    recommendation: str,
    text: str,
    evidence: Mapping[str, Any],
    opened_at: datetime,
    reason: str = "opened",
    audience: str = "athlete",
    timezone: str = "UTC",
    link: NoticeLink | None = None,
    coach_text: str | None = None,
    athlete_email: str | None = None,
    escalation_hours: float = ESCALATION_HOURS,
) -> Message:
    """The notice of one alert for one audience.

    `severity` is info | warning | urgent, `recommendation` one of the catalog's, `reason`
    opened | raised (the severity rose) | stronger (the recommendation became stronger) |
    repeated (a red flag reported again) | escalation (urgent, unacknowledged after
    `escalation_hours`), `audience` athlete | coach. `text` is the alert's stored athlete text;
    a coach reads `coach_text` (third person, `{athlete}` filled in with the name) and the
    athlete's contact, `athlete_email`. `evidence` is shown as a details list. `timezone` (the
    recipient's IANA zone) is only used to show `opened_at`.
    Raises `ValueError` for an unknown severity, recommendation, reason or audience.
    """
    _check(severity, SEVERITIES, "severity")
    _check(reason, REASONS, "reason")
    _check(audience, AUDIENCES, "audience")
    rec = Recommendation(recommendation)
    name = _one_line(athlete_name)
    title = _title(rule_id)
    subject = subject_for(
        severity=severity,
        recommendation=rec,
        title=title,
        reason=reason,
        audience=audience,
        athlete_name=name,
        escalation_hours=escalation_hours,
    )
    phrase = _TODO[rec][0 if audience == "athlete" else 1]
    body = text
    if audience == "coach":
        body = coach_text_for(coach_text, name) if coach_text else text
        contact = _one_line(athlete_email) if athlete_email else "no email address on file"
        body = f"{body.strip()}\nContact {name}: {contact}"
    context = {
        "subject": subject,
        "intro": _intro(reason, audience, severity, name, escalation_hours),
        "headline": f"{title} ({severity})" if audience == "athlete" else f"{title}: {name}",
        "advice_label": "Recommendation" if audience == "athlete" else f"Recommendation for {name}",
        "advice": f"{phrase[0].upper()}{phrase[1:]}.",
        "text": body.strip(),
        "text_lines": [line for line in body.strip().splitlines() if line.strip()],
        "evidence": [(key.replace("_", " "), _value(v)) for key, v in evidence.items()],
        "alert_id": alert_id,
        "opened": _local(opened_at, timezone),
        "colour": _COLOUR[severity],
        "ack_url": link.url if link is not None else None,
        "ack_label": "Read and acknowledge" if audience == "athlete" else "Acknowledge",
        "footer": (
            "Sent automatically by KneeGuard; replies are not read."
            if audience == "athlete"
            else f"You receive this as {name}'s coach. Sent automatically by KneeGuard."
        ),
    }
    env = _environment()
    return Message(
        subject=subject,
        text=env.get_template("alert.txt").render(context),
        html=env.get_template("alert.html").render(context),
        severity=severity,
        tags=(severity, "knee", rule_id),
        actions=_actions(link),
        data={
            "alert_id": alert_id,
            "athlete_id": athlete_id,
            "rule_id": rule_id,
            "severity": severity,
            "recommendation": rec.value,
            "reason": reason,
            "title": title,
            "text": body if audience == "coach" else text,
            "opened_at": _utc(opened_at).isoformat(),
        },
    )


def _actions(link: NoticeLink | None) -> tuple[Action, ...]:
    if link is None:
        return ()
    actions = [Action("view", "Open", link.url)]
    if link.hook is not None:
        actions.append(Action("http", "Acknowledge", link.hook))
    return tuple(actions)


def coach_phrase(recommendation: Recommendation) -> str:
    """The coach's short phrase for a recommendation, e.g. "stop running, same-day help"."""
    return _TODO[recommendation][1]


def subject_for(
    *,
    severity: str,
    recommendation: Recommendation,
    title: str,
    reason: str,
    audience: str,
    athlete_name: str,
    escalation_hours: float = ESCALATION_HOURS,
) -> str:
    """E.g. `[URGENT] KneeGuard: stop running and get help today — locked knee`.

    A coach's subject ends with `for NAME`; a raised alert says `now urgent`, a stronger one
    `new advice`, a red flag reported again `reported again`, an escalation `unacknowledged
    after 2 hours` (the configured period), all before the advice.
    """
    athlete_phrase, coach_phrase = _TODO[recommendation]
    phrase = athlete_phrase if audience == "athlete" else coach_phrase
    lead = {
        "opened": "",
        "raised": f"now {severity} — ",
        "stronger": "new advice — ",
        "repeated": "reported again — ",
        "escalation": f"unacknowledged after {hours_text(escalation_hours)} — ",
    }[reason]
    topic = title[0].lower() + title[1:] if title[1:2].islower() else title
    suffix = f" for {_one_line(athlete_name)}" if audience == "coach" else ""
    return f"{_TAG[severity]} KneeGuard: {lead}{phrase} — {topic}{suffix}"


@cache
def _environment() -> Environment:
    """Built on first use, not at import (STYLE.md, Wiring)."""
    return Environment(
        loader=PackageLoader("notifier", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def hours_text(hours: float) -> str:
    """`2` → "2 hours", `1` → "1 hour", `0.5` → "30 minutes", `1.5` → "1.5 hours"."""
    if hours < 1:
        minutes = round(hours * 60)
        return f"{minutes} minute{'' if minutes == 1 else 's'}"
    shown = f"{hours:g}"
    return f"{shown} hour{'' if shown == '1' else 's'}"


def _intro(reason: str, audience: str, severity: str, name: str, escalation_hours: float) -> str:
    period = hours_text(escalation_hours)
    if audience == "athlete":
        return {
            "opened": "KneeGuard has a new alert about your knee.",
            "raised": f"An open KneeGuard alert about your knee has been raised to {severity}.",
            "stronger": "The advice of an open KneeGuard alert about your knee has changed.",
            "repeated": "Your new check-in reports this again, so KneeGuard is telling you again.",
            "escalation": (
                f"This {severity} alert about your knee has not been acknowledged {period} "
                "after it was sent, so we are sending it again and letting your coach know."
            ),
        }[reason]
    return {
        "opened": f"KneeGuard has a new alert for your athlete {name}.",
        "raised": f"An open KneeGuard alert for your athlete {name} has been raised to {severity}.",
        "stronger": f"The advice of an open KneeGuard alert for your athlete {name} has changed.",
        "repeated": f"{name} has reported this again in a new check-in.",
        "escalation": (
            f"This {severity} alert for your athlete {name} has not been acknowledged {period} "
            f"after it was sent. Please get in touch with {name}."
        ),
    }[reason]


def _check(value: str, allowed: tuple[str, ...], what: str) -> None:
    if value not in allowed:
        raise ValueError(f"{what} must be one of {', '.join(allowed)}; got {value!r}")


def _title(rule_id: str) -> str:
    """The catalog title; the bare id for a rule the catalog does not know, so that an alert
    from a newer rules configuration is still delivered rather than dropped."""
    spec = CATALOG.get(rule_id)
    return spec.title if spec is not None else rule_id


def _one_line(value: str) -> str:
    """Collapse whitespace: a line break in a name must not reach an email header."""
    return " ".join(value.split())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.2f}".rstrip("0").rstrip(".")
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_value(v) for v in value)
    return str(value)


def _utc(moment: datetime) -> datetime:
    # Naive datetimes in KneeGuard are UTC (the database stores UTC).
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _local(moment: datetime, timezone: str) -> str:
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    return _utc(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
