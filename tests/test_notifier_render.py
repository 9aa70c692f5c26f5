"""Alert notices: subjects per severity, reason and audience; bodies that repeat the advice and
keep the alert text; HTML escaping of user input; the JSON document for in-app and webhooks."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib.resources import files
from typing import Any

import pytest

from notifier.base import Message
from notifier.render import render_alert
from rules.catalog import CATALOG, spec
from rules.text import render

OPENED = datetime(2026, 11, 2, 7, 5, tzinfo=UTC)


def notice(
    rule_id: str = "pain.high",
    severity: str = "warning",
    recommendation: str = "rest",
    *,
    reason: str = "opened",
    audience: str = "athlete",
    name: str = "Ann Runner",
    seen: str = "pain 7/10 after your run of 12.0 km.",
    coach_seen: str = "pain 7/10 after {athlete}'s run of 12.0 km.",
    **extra: Any,
) -> Message:
    texts = render(spec(rule_id), seen, coach_seen) if rule_id in CATALOG else None
    arguments: dict[str, Any] = {
        "alert_id": 42,
        "athlete_id": "ann",
        "athlete_name": name,
        "rule_id": rule_id,
        "severity": severity,
        "recommendation": recommendation,
        "text": texts.athlete if texts else f"Seen: {seen}",
        "coach_text": texts.coach if texts else None,
        "athlete_email": "ann@example.org",
        "evidence": {"pain_score": 7, "ratio": 1.3456, "swelling": False},
        "opened_at": OPENED,
        "reason": reason,
        "audience": audience,
    }
    arguments.update(extra)
    return render_alert(**arguments)


@pytest.mark.parametrize(
    ("args", "kwargs", "subject"),
    [
        (
            ("redflag.locked_knee", "urgent", "urgent_care"),
            {},
            "[URGENT] KneeGuard: stop running and get help today — locked knee",
        ),
        (
            ("redflag.infection_signs", "urgent", "emergency"),
            {},
            "[URGENT] KneeGuard: go to an emergency department now — hot or swollen knee with"
            " fever",
        ),
        (
            ("pain.high", "warning", "rest"),
            {},
            "[Warning] KneeGuard: rest from running — high pain during or after a run",
        ),
        (
            ("pain.high", "warning", "rest"),
            {"reason": "repeated"},
            "[Warning] KneeGuard: reported again — rest from running — high pain during or after"
            " a run",
        ),
        (
            ("load.single_run_spike", "warning", "rest"),
            {"reason": "stronger"},
            "[Warning] KneeGuard: new advice — rest from running — single-run distance spike",
        ),
        (
            ("pain.persistent", "warning", "professional_assessment"),
            {"audience": "coach"},
            "[Warning] KneeGuard: professional knee assessment — persistent pain for Ann Runner",
        ),
        (
            ("load.weekly_ramp", "info", "monitor"),
            {"audience": "coach"},
            "[Info] KneeGuard: keep monitoring — weekly distance ramp for Ann Runner",
        ),
        (
            ("ostrc.substantial", "warning", "reduce_load"),
            {},
            "[Warning] KneeGuard: reduce your training load — "
            "substantial problem on the OSTRC questionnaire",
        ),
        (
            ("load.single_run_spike", "warning", "rest"),
            {"reason": "raised"},
            "[Warning] KneeGuard: now warning — rest from running — single-run distance spike",
        ),
        (
            ("redflag.locked_knee", "urgent", "urgent_care"),
            {"reason": "escalation"},
            "[URGENT] KneeGuard: unacknowledged after 2 hours — stop running and get help today"
            " — locked knee",
        ),
        (
            ("redflag.locked_knee", "urgent", "urgent_care"),
            {"reason": "escalation", "audience": "coach"},
            "[URGENT] KneeGuard: unacknowledged after 2 hours — stop running, same-day help"
            " — locked knee for Ann Runner",
        ),
    ],
)
def test_subject_says_severity_what_to_do_and_the_rule(
    args: tuple[str, str, str], kwargs: dict[str, str], subject: str
) -> None:
    assert notice(*args, **kwargs).subject == subject


@pytest.mark.parametrize("audience", ["athlete", "coach"])
def test_both_bodies_lead_with_the_advice_and_keep_the_alert_text(audience: str) -> None:
    message = notice(audience=audience)
    assert message.html is not None
    whose = "your" if audience == "athlete" else "Ann Runner's"
    for body in (message.text, message.html.replace("&#39;", "'")):
        assert "Rest from running." in body
        assert f"Seen: pain 7/10 after {whose} run of 12.0 km." in body
        assert "Why: Pain during or after running should stay at 5/10 or below." in body
        assert "This is not a diagnosis." in body
        assert "Alert #42" in body
    label = "Recommendation" if audience == "athlete" else "Recommendation for Ann Runner"
    assert f"{label}: Rest from running." in message.text


def test_evidence_is_listed_readably() -> None:
    text = notice().text
    assert "  pain score: 7\n" in text
    assert "  ratio: 1.35\n" in text
    assert "  swelling: no\n" in text


def test_opened_time_is_shown_in_the_recipients_timezone() -> None:
    assert "opened 2026-11-02 08:05 CET" in notice(timezone="Europe/Berlin").text
    assert "opened 2026-11-02 07:05 UTC" in notice(timezone="Not/AZone").text


def test_html_escapes_the_athlete_name_and_the_alert_text() -> None:
    message = notice(
        audience="coach",
        name="<b>Ann</b>",
        seen="pain <script>x</script> 7/10",
        coach_seen="{athlete}: pain <script>x</script> 7/10",
    )
    assert message.html is not None
    assert "<b>Ann</b>" not in message.html
    assert "&lt;b&gt;Ann&lt;/b&gt;" in message.html
    assert "<script>" not in message.html
    assert "&lt;script&gt;" in message.html
    # Plain text and subject are not HTML: they carry the name as given.
    assert "<b>Ann</b>" in message.text
    assert message.subject.endswith("for <b>Ann</b>")


def test_a_line_break_in_a_name_never_reaches_the_subject() -> None:
    subject = notice(audience="coach", name="Ann\r\nBcc: evil@example.org").subject
    assert "\r" not in subject and "\n" not in subject
    assert subject.endswith("for Ann Bcc: evil@example.org")


def test_escalation_says_unacknowledged_after_2_hours_to_athlete_and_coach() -> None:
    athlete = notice("redflag.locked_knee", "urgent", "urgent_care", reason="escalation")
    coach = notice(
        "redflag.locked_knee", "urgent", "urgent_care", reason="escalation", audience="coach"
    )
    assert "has not been acknowledged 2 hours after it was sent" in athlete.text
    assert "letting your coach know" in athlete.text
    assert "has not been acknowledged 2 hours after it was sent" in coach.text
    assert "Please get in touch with Ann Runner." in coach.text
    assert coach.html is not None and "Please get in touch with Ann Runner." in coach.html


@pytest.mark.parametrize(
    ("hours", "said"), [(3.0, "3 hours"), (1.0, "1 hour"), (0.5, "30 minutes"), (1.5, "1.5 hours")]
)
def test_escalation_states_the_configured_period(hours: float, said: str) -> None:
    for audience in ("athlete", "coach"):
        message = notice(
            "redflag.locked_knee",
            "urgent",
            "urgent_care",
            reason="escalation",
            audience=audience,
            escalation_hours=hours,
        )
        assert f"unacknowledged after {said} —" in message.subject
        assert f"has not been acknowledged {said} after it was sent" in message.text
        assert "2 hours" not in message.text


def test_coach_notices_speak_of_the_athlete_by_name_with_contact() -> None:
    finding_texts = render(
        spec("redflag.locked_knee"),
        "Your check-in reports locking.",
        "{athlete}'s check-in reports locking.",
    )
    coach = notice(
        "redflag.locked_knee",
        "urgent",
        "urgent_care",
        audience="coach",
        text=finding_texts.athlete,
        coach_text=finding_texts.coach,
    )
    assert "Seen: Ann Runner's check-in reports locking." in coach.text
    assert "Your check-in" not in coach.text
    assert "Ann Runner should stop running and get help today" in coach.text
    assert "Contact Ann Runner: ann@example.org" in coach.text
    assert coach.html is not None and "ann@example.org" in coach.html
    athlete = notice(
        "redflag.locked_knee", "urgent", "urgent_care", text=finding_texts.athlete,
        coach_text=finding_texts.coach,
    )  # fmt: skip
    assert "Seen: Your check-in reports locking." in athlete.text
    assert "ann@example.org" not in athlete.text


def test_stronger_and_repeated_alerts_say_why_they_come_again() -> None:
    assert "advice of an open KneeGuard alert" in notice(reason="stronger").text
    assert "reports this again" in notice(reason="repeated").text
    assert "Ann Runner has reported this again" in notice(reason="repeated", audience="coach").text


def test_raised_alert_says_its_severity_rose() -> None:
    text = notice("pain.high", "urgent", "urgent_care", reason="raised").text
    assert "has been raised to urgent" in text


def test_opened_alert_is_introduced_as_new() -> None:
    assert notice().text.startswith("KneeGuard has a new alert about your knee.")
    assert notice(audience="coach").text.startswith(
        "KneeGuard has a new alert for your athlete Ann Runner."
    )


def test_data_and_tags_carry_the_alert_for_inapp_and_webhooks() -> None:
    message = notice("redflag.locked_knee", "urgent", "urgent_care", reason="escalation")
    assert dict(message.data) == {
        "alert_id": 42,
        "athlete_id": "ann",
        "rule_id": "redflag.locked_knee",
        "severity": "urgent",
        "recommendation": "urgent_care",
        "reason": "escalation",
        "title": "Locked knee",
        "text": render(
            spec("redflag.locked_knee"),
            "pain 7/10 after your run of 12.0 km.",
            "pain 7/10 after {athlete}'s run of 12.0 km.",
        ).athlete,
        "opened_at": "2026-11-02T07:05:00+00:00",
    }
    assert message.tags == ("urgent", "knee", "redflag.locked_knee")
    assert message.severity == "urgent"


def test_naive_opened_at_is_taken_as_utc() -> None:
    message = notice(opened_at=datetime(2026, 11, 2, 7, 5))
    assert message.data["opened_at"] == "2026-11-02T07:05:00+00:00"


def test_a_rule_unknown_to_the_catalog_is_still_rendered_under_its_id() -> None:
    message = notice("club.custom_rule", "warning", "reduce_load")
    assert message.subject == "[Warning] KneeGuard: reduce your training load — club.custom_rule"


@pytest.mark.parametrize(
    "override",
    [
        {"severity": "critical"},
        {"recommendation": "ice"},
        {"reason": "reminder"},
        {"audience": "parent"},
    ],
)
def test_unknown_severity_recommendation_reason_or_audience_is_refused(
    override: dict[str, str],
) -> None:
    with pytest.raises(ValueError, match=r"."):
        notice(**override)


def test_templates_ship_inside_the_package() -> None:
    templates = files("notifier") / "templates"
    assert (templates / "alert.txt").is_file()
    assert (templates / "alert.html").is_file()
