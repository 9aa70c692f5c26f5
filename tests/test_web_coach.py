"""Coach pages and the API: sign-in, sessions, scoping to one's own athletes, actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from db.models import Alert, CoachSignIn
from testsupport import kneeguard, wait_until
from testsupport.web import (
    SECRET,
    WebApp,
    add_run,
    alert_of,
    api_token,
    body_of,
    hidden,
    links_in,
    seed,
    serve,
    submit,
    use,
)


def request_link(app: WebApp, client: httpx.Client, email: str) -> httpx.Response:
    page = client.get("/coach/sign-in")
    return client.post(
        "/coach/sign-in", data={"csrf_token": hidden(page.text, "csrf_token"), "email": email}
    )


def emailed_link(app: WebApp, address: str, count: int = 1) -> str:
    assert wait_until(lambda: len(app.smtp.to(address)) >= count, 10), "no sign-in email"
    links = [u for u in links_in(body_of(app.smtp.to(address)[-1])) if "/coach/sign-in/" in u]
    assert links
    return links[0]


def sign_in(app: WebApp, client: httpx.Client, coach_id: str = "c1") -> None:
    with app.engine.begin() as conn:
        link = app.ctx.links.sign_in(conn, coach_id, app.ctx.now())
    use(app, client, link)


def test_a_coach_signs_in_from_the_emailed_one_time_link(web: WebApp) -> None:
    with web.client() as client:
        assert client.get("/coach").status_code == 303
        sent = request_link(web, client, "ONE@club.test")
        assert "a sign-in link is on its way" in sent.text
        link = emailed_link(web, "one@club.test")
        reply = use(web, client, link)
        assert reply.status_code == 303 and reply.headers["location"] == "/coach"
        cookie = reply.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie.replace("Lax", "lax")
        assert "Secure" not in cookie  # plain http here
        team = client.get("/coach")
        assert team.status_code == 200 and "Ann Runner" in team.text
        assert "Cy Other" not in team.text
    with web.client() as again:
        assert use(web, again, link).status_code == 410, "a sign-in link works once"
    with web.engine.connect() as conn:
        stored = conn.execute(select(CoachSignIn.token_hash)).scalars().all()
    secret = link.rsplit("/", 1)[1]
    assert secret not in stored and len(stored) == 1 and len(stored[0]) == 64


def test_sign_in_links_expire_after_fifteen_minutes(web_sqlite: WebApp) -> None:
    with web_sqlite.engine.begin() as conn:
        link = web_sqlite.ctx.links.sign_in(conn, "c1", web_sqlite.ctx.now())
        past = datetime.now(UTC) - timedelta(seconds=1)
        conn.execute(update(CoachSignIn).values(expires_at=past))
    with web_sqlite.client() as client:
        assert use(web_sqlite, client, link).status_code == 410
        assert client.get("/coach").status_code == 303


def test_the_sign_in_request_does_not_reveal_whether_an_email_exists(web_sqlite: WebApp) -> None:
    with web_sqlite.client() as client:
        known = request_link(web_sqlite, client, "one@club.test")
        unknown = request_link(web_sqlite, client, "nobody@club.test")
    assert known.status_code == unknown.status_code == 200
    strip = hidden(known.text, "csrf_token"), hidden(unknown.text, "csrf_token")
    assert known.text.replace(strip[0], "") == unknown.text.replace(strip[1], "")
    assert wait_until(lambda: len(web_sqlite.smtp.to("one@club.test")) == 1, 10)
    assert not web_sqlite.smtp.to("nobody@club.test")


def test_sign_in_requests_are_rate_limited(web_sqlite: WebApp) -> None:
    with web_sqlite.client() as client:
        for _ in range(6):
            request_link(web_sqlite, client, "one@club.test")
    assert wait_until(lambda: len(web_sqlite.smtp.to("one@club.test")) >= 3, 10)
    assert not wait_until(lambda: len(web_sqlite.smtp.to("one@club.test")) > 3, 1)
    limited = web_sqlite.ctx.sign_in_per_client
    limited.limit = 0
    with web_sqlite.client() as client:
        assert request_link(web_sqlite, client, "two@club.test").status_code == 429


def test_secure_cookie_behind_https(sqlite_url: str) -> None:
    with serve(sqlite_url, secret_key=SECRET, public_url="https://kneeguard.example") as app:
        seed(app.engine)
        with app.engine.begin() as conn:
            link = app.ctx.links.sign_in(conn, "c1", app.ctx.now())
        local = link.replace("https://kneeguard.example", app.base)
        with app.client() as client:
            reply = use(app, client, local)
    assert "Secure" in reply.headers["set-cookie"]


def test_the_team_is_sorted_by_risk_with_last_run_and_response_rate(web: WebApp) -> None:
    now = datetime.now(UTC)
    for days in (3, 2, 1):
        add_run(web.engine, "a2", now - timedelta(days=days))
    submit(web, "a2", "1")
    submit(web, "a1", "9", "swelling")
    with web.client() as client:
        sign_in(web, client)
        page = client.get("/coach").text
    assert page.index("Ann Runner") < page.index("Bo Runner")
    assert "level-urgent" in page or "level-warning" in page
    assert "33%" in page and "(1/3)" in page


def test_the_athlete_page_has_the_chart_and_the_alert_actions(web: WebApp) -> None:
    now = datetime.now(UTC)
    for week in range(6):
        add_run(web.engine, "a1", now - timedelta(weeks=week, days=1), km=10 + 10 * (week == 0))
    submit(web, "a1", "9", "swelling")
    alert = alert_of(web, "a1")
    with web.client() as client:
        sign_in(web, client)
        page = client.get("/coach/athletes/a1")
        assert page.status_code == 200
        assert "<svg" in page.text and 'class="spike"' in page.text
        assert 'class="alert-mark"' in page.text and 'class="pain"' in page.text
        chart = client.get("/coach/athletes/a1/chart.svg")
        assert chart.headers["content-type"].startswith("image/svg+xml")
        csrf = hidden(page.text, "csrf_token")
        done = client.post(
            f"/coach/alerts/{alert.id}/acknowledge",
            data={"csrf_token": csrf, "note": "called her", "next": "//evil.example/"},
        )
        assert done.status_code == 303 and done.headers["location"] == "/coach/athletes/a1"
        assert alert_of(web, "a1").acknowledged_by == "Coach One (coach c1)"
        resolved = client.post(
            f"/coach/alerts/{alert.id}/resolve", data={"csrf_token": csrf, "note": "seen by physio"}
        )
        assert resolved.status_code == 303
        assert alert_of(web, "a1").status == "resolved"
        csv = client.get("/coach/athletes/a1/export.csv")
    assert csv.headers["content-type"].startswith("text/csv")
    lines = csv.text.splitlines()
    assert lines[0].startswith("kind,uuid,time")
    assert sum(line.startswith("run,") for line in lines) == 6
    assert sum(line.startswith("checkin,") for line in lines) == 1


def test_alert_actions_need_the_csrf_token(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "a1", "9", "swelling")
    alert = alert_of(web_sqlite, "a1")
    with web_sqlite.client() as client:
        sign_in(web_sqlite, client)
        reply = client.post(f"/coach/alerts/{alert.id}/acknowledge", data={"note": "x"})
    assert reply.status_code == 403
    assert alert_of(web_sqlite, "a1").status == "open"


def test_a_coach_cannot_reach_another_coachs_athletes(web: WebApp) -> None:
    submit(web, "b1", "9", "swelling")
    theirs = alert_of(web, "b1")
    token = api_token(web.engine, "c1")
    with web.client() as client:
        sign_in(web, client, "c1")
        csrf = hidden(client.get("/coach").text, "csrf_token")
        for path in (
            "/coach/athletes/b1",
            "/coach/athletes/b1/chart.svg",
            "/coach/athletes/b1/export.csv",
        ):
            assert client.get(path).status_code == 404, path
        assert "Cy Other" not in client.get("/coach/alerts?status=all&athlete=b1").text
        for action in ("acknowledge", "resolve"):
            reply = client.post(f"/coach/alerts/{theirs.id}/{action}", data={"csrf_token": csrf})
            assert reply.status_code == 404
        coach_link = web.ctx.links.coach_alert("c1", theirs.id)
        assert client.get("/" + coach_link.split("/", 3)[3]).status_code == 404
    api = {"Authorization": f"Bearer {token}"}
    with web.client(headers=api) as client:
        for path in (
            "/api/v1/athletes/b1",
            "/api/v1/athletes/b1/runs",
            "/api/v1/athletes/b1/checkins",
            "/api/v1/athletes/b1/export.csv",
        ):
            assert client.get(path).status_code == 404, path
        assert client.post(f"/api/v1/alerts/{theirs.id}/acknowledge").status_code == 404
        assert all(a["athlete_id"] != "b1" for a in client.get("/api/v1/alerts?status=all").json())
        assert {a["id"] for a in client.get("/api/v1/athletes").json()} == {"a1", "a2"}
    assert alert_of(web, "b1").status == "open"


def test_the_coach_acknowledges_from_the_email_link(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "a1", "9", "swelling")
    alert = alert_of(web_sqlite, "a1")
    link = web_sqlite.ctx.links.coach_alert("c1", alert.id)
    with web_sqlite.client() as client:
        reply = use(web_sqlite, client, link)
    assert reply.status_code == 200 and "acknowledged" in reply.text
    assert alert_of(web_sqlite, "a1").acknowledged_by == "Coach One (coach c1)"


def test_the_api_needs_a_valid_bearer_token(web_sqlite: WebApp) -> None:
    token = api_token(web_sqlite.engine, "c1")
    submit(web_sqlite, "a1", "9", "swelling")
    with web_sqlite.client() as client:
        assert client.get("/api/v1/athletes").status_code == 401
        bad = client.get("/api/v1/athletes", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        good = client.get("/api/v1/athletes", headers={"Authorization": f"Bearer {token}"})
        assert good.status_code == 200
        assert good.json()[0]["id"] == "a1" and good.json()[0]["risk"] in ("urgent", "warning")
        alerts: list[dict[str, Any]] = client.get(
            "/api/v1/alerts", headers={"Authorization": f"Bearer {token}"}
        ).json()
        assert alerts and alerts[0]["title"] and alerts[0]["athlete_name"] == "Ann Runner"
        ack = client.post(
            f"/api/v1/alerts/{alerts[0]['id']}/acknowledge",
            headers={"Authorization": f"Bearer {token}"},
        )
    assert ack.json() == {"id": alerts[0]["id"], "status": "acknowledged"}
    with web_sqlite.engine.connect() as conn:
        assert conn.execute(select(Alert.status)).scalars().all()[0] == "acknowledged"


def test_the_link_and_token_commands(web_sqlite: WebApp, sqlite_url: str) -> None:

    env = {"KNEEGUARD_SECRET_KEY": SECRET, "KNEEGUARD_PUBLIC_URL": web_sqlite.base}
    url = str(web_sqlite.service.settings.database_url)
    personal = kneeguard(url, "athlete", "link", "--id", "a1", **env)
    assert personal.returncode == 0, personal.stderr
    link = personal.stdout.strip()
    assert link.startswith(web_sqlite.base + "/r/")
    with web_sqlite.client() as client:
        assert "How is your knee, Ann Runner?" in client.get(link).text
        revoked = kneeguard(url, "athlete", "link", "--id", "a1", "--revoke", **env)
        assert revoked.returncode == 0 and "revoked" in revoked.stdout
        assert client.get(link).status_code == 410
        coach = kneeguard(url, "coach", "link", "--id", "c1", **env)
        assert coach.returncode == 0
        assert use(web_sqlite, client, coach.stdout.strip()).status_code == 303
        assert "Ann Runner" in client.get("/coach").text
    token = kneeguard(url, "coach", "token", "--id", "c2", **env)
    assert token.returncode == 0
    api = {"Authorization": f"Bearer {token.stdout.strip()}"}
    with web_sqlite.client(headers=api) as client:
        assert [a["id"] for a in client.get("/api/v1/athletes").json()] == ["b1"]
    for args in (("athlete", "link", "--id", "zz"), ("coach", "link", "--id", "zz"),
                 ("coach", "token", "--id", "zz")):  # fmt: skip
        result = kneeguard(url, *args, **env)
        assert result.returncode == 2 and "unknown" in result.stderr


def test_forged_sessions_and_forms_without_csrf_get_nothing(web_sqlite: WebApp) -> None:
    from kneeguard.web.security import Signer

    with web_sqlite.client() as client:
        client.get("/coach/sign-in")
        refused = client.post("/coach/sign-in", data={"email": "one@club.test"})
        assert refused.status_code == 403
    assert not wait_until(lambda: bool(web_sqlite.smtp.to("one@club.test")), 1)
    forged = Signer("another-key-that-is-long-enough-0123456789").sign("session", {"c": "c1"})
    wrong_purpose = Signer(SECRET).sign("checkin", {"c": "c1"})
    for cookie in (forged, wrong_purpose, "garbage"):
        with web_sqlite.client(cookies={"kg_session": cookie}) as client:
            assert client.get("/coach").status_code == 303
            assert client.get("/coach/athletes/a1").status_code == 303


def test_the_alerts_page_filters_by_status_severity_and_athlete(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "a1", "3", "locking")  # urgent for Ann
    submit(web_sqlite, "a2", "2", "swelling")  # a warning for Bo
    with web_sqlite.client() as client:
        sign_in(web_sqlite, client)
        everything = client.get("/coach/alerts").text
        urgent = client.get("/coach/alerts", params={"severity": "urgent"}).text
        bo = client.get("/coach/alerts", params={"athlete": "a2"}).text
        resolved = client.get("/coach/alerts", params={"status": "resolved"}).text
        odd = client.get("/coach/alerts", params={"status": "bogus", "severity": "<b>"})
    assert everything.index("Ann Runner") < everything.index("Bo Runner")  # urgent first
    assert 'href="/coach/athletes/a1"' in urgent and 'href="/coach/athletes/a2"' not in urgent
    assert 'href="/coach/athletes/a2"' in bo and 'href="/coach/athletes/a1"' not in bo
    assert "No alerts match." in resolved
    assert odd.status_code == 200 and "<b>" not in odd.text


def test_a_coach_uploads_an_athletes_activity_file(web_sqlite: WebApp) -> None:
    """The upload on the coach's athlete page: the same import as the runner's upload and
    `kneeguard import`, for the coach's own athletes only."""
    from datetime import UTC, datetime, timedelta

    from db.models import Run
    from testsupport.fitfiles import Leg, fit_bytes

    data = fit_bytes([Leg(start=datetime.now(UTC) - timedelta(hours=5), distance_m=8000.0)])
    path = "/coach/athletes/a1/upload"
    with web_sqlite.client() as client:
        sign_in(web_sqlite, client, "c1")
        page = client.get("/coach/athletes/a1")
        assert f'action="{path}"' in page.text
        csrf = {"csrf_token": hidden(page.text, "csrf_token")}
        first = client.post(path, data=csrf, files={"file": ("long.fit", data)})
        again = client.post(path, data=csrf, files={"file": ("long.fit", data)})
        junk = client.post(path, data=csrf, files={"file": ("notes.tcx", b"<tcx>no")})
        empty = client.post(path, data=csrf)
        forged = client.post(path, files={"file": ("long.fit", data)})
        theirs = client.post(
            "/coach/athletes/b1/upload", data=csrf, files={"file": ("long.fit", data)}
        )
    assert first.status_code == 200 and "imported" in first.text and "8.00 km" in first.text
    assert "Ann Runner" in first.text  # back on the athlete's page
    assert again.status_code == 200 and "already imported" in again.text
    assert junk.status_code == 400 and "could not be imported" in junk.text
    assert empty.status_code == 400 and "Please choose" in empty.text
    assert forged.status_code == 403
    assert theirs.status_code == 404
    with web_sqlite.engine.connect() as conn:
        runs = conn.execute(select(Run.athlete_id, Run.distance_m)).all()
    assert [tuple(row) for row in runs] == [("a1", 8000.0)]
