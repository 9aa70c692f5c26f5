"""Coach pages of the web app read the coach's text of RULES.md v2: the athlete by name, in
the third person; never the runner's second-person text."""

from __future__ import annotations

import html

from testsupport.web import WebApp, alert_of, api_token, submit, use


def test_the_coachs_pages_show_the_coach_text(web: WebApp) -> None:
    submit(web, "a1", "9", "swelling")
    alert = alert_of(web, "a1")
    assert alert.coach_message and "{athlete}" in alert.coach_message
    with web.client() as client:
        ack = client.get("/" + web.ctx.links.coach_alert("c1", alert.id).split("/", 3)[3])
        athlete_page = None
        with web.engine.begin() as conn:
            link = web.ctx.links.sign_in(conn, "c1", web.ctx.now())
        use(web, client, link)
        athlete_page = client.get("/coach/athletes/a1")
    for page in (ack.text, athlete_page.text):
        text = html.unescape(page)
        assert "Ann Runner's check-in" in text, text
        assert "Your check-in" not in text


def test_the_api_gives_the_coach_text_beside_the_runners(web: WebApp) -> None:
    submit(web, "a1", "9", "swelling")
    token = api_token(web.engine, "c1")
    with web.client() as client:
        alerts = client.get("/api/v1/alerts", headers={"Authorization": f"Bearer {token}"})
    assert alerts.status_code == 200, alerts.text
    (alert,) = alerts.json()
    assert alert["coach_text"].startswith("Seen: Ann Runner's check-in")
    assert alert["message"].startswith("Seen: Your check-in")
