"""Links in what KneeGuard sends: alert notices carry their acknowledge link (email) and
buttons (ntfy); check-in prompts go by email and push with the check-in link."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from db.models import Alert
from kneeguard.admin.registry import Registry
from testsupport import HttpSink
from testsupport.web import (
    SECRET,
    WebApp,
    add_run,
    alert_of,
    body_of,
    links_in,
    seed,
    serve,
    submit,
    use,
)


@pytest.fixture
def ntfy() -> Iterator[HttpSink]:
    sink = HttpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def web(sqlite_url: str, ntfy: HttpSink) -> Iterator[WebApp]:
    with serve(sqlite_url, secret_key=SECRET, ntfy_url=ntfy.url) as app:
        reg: Registry = seed(app.engine)
        reg.update_athlete("a1", ntfy_topic="ann-knee", channels="email,push")
        yield app


def pushes(sink: HttpSink) -> list[dict[str, Any]]:
    return [request.json() for request in sink.requests]


def test_alert_emails_carry_their_acknowledge_links(web: WebApp) -> None:
    submit(web, "a1", "3", "locking")
    web.drain_outbox()
    athlete_mail = body_of(web.smtp.to("ann@club.test")[0])
    coach_mail = body_of(web.smtp.to("one@club.test")[0])
    athlete_link = next(u for u in links_in(athlete_mail) if "/r/alert/" in u)
    coach_link = next(u for u in links_in(coach_mail) if "/coach/ack/" in u)
    with web.client() as client:
        page = client.get("/" + athlete_link.split("/", 3)[3])
        assert page.status_code == 200 and "I've read this" in page.text
        assert use(web, client, coach_link).status_code == 200
    alert = alert_of(web, "a1")
    assert alert.status == "acknowledged" and alert.acknowledged_by == "Coach One (coach c1)"
    html = web.smtp.to("ann@club.test")[0].get_body(preferencelist=("html",)).get_content()
    assert "Read and acknowledge" in html


def test_ntfy_alerts_have_an_acknowledge_button_that_works(web: WebApp, ntfy: HttpSink) -> None:
    submit(web, "a1", "3", "locking")
    web.drain_outbox()
    (push,) = [p for p in pushes(ntfy) if p["topic"] == "ann-knee"]
    actions = {a["label"]: a for a in push["actions"]}
    assert actions["Open"]["action"] == "view" and "/r/alert/" in actions["Open"]["url"]
    ack = actions["Acknowledge"]
    assert ack["action"] == "http" and ack["method"] == "POST"
    reply = httpx.post(ack["url"], timeout=10)
    assert reply.status_code == 200 and reply.json()["status"] == "acknowledged"
    assert alert_of(web, "a1").acknowledged_by == "Ann Runner (athlete)"


def test_the_checkin_prompt_goes_by_email_and_push_with_the_link(
    web: WebApp, ntfy: HttpSink
) -> None:
    now = datetime.now(UTC)
    run_uuid = add_run(web.engine, "a1", now - timedelta(hours=5), km=12.0)
    add_run(web.engine, "a2", now - timedelta(hours=5), km=8.0)  # a2's channels lack push
    published: list[tuple[str, bytes]] = []
    service = web.service
    assert service.prompt_sender is not None
    sent = service.rules.send_prompts(
        now, lambda t, p: published.append((t, p)), "kneeguard/v1", service.prompt_sender.send
    )
    assert sent == 2
    mail = web.smtp.to("ann@club.test")
    assert mail and "12.0 km" in mail[0]["Subject"]
    link = next(u for u in links_in(body_of(mail[0])) if "/r/" in u)
    (push,) = [p for p in pushes(ntfy) if p["topic"] == "ann-knee"]
    assert push["actions"][0] == {"action": "view", "label": "Check in", "url": link, "clear": True}
    assert web.smtp.to("bo@club.test") and not [p for p in pushes(ntfy) if p["topic"] != "ann-knee"]
    with web.client() as client:
        page = client.get("/" + link.split("/", 3)[3])
    assert "After your 12.0 km run" in page.text
    # The form is tied to the run it asks about.
    assert run_uuid not in link  # opaque: no data readable in the link's path as plain text
    with web.engine.connect() as conn:
        assert conn.execute(select(Alert)).first() is None
