"""The web app's server and the runner's pages, against the real server and databases."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from db.engine import make_engine
from db.models import Alert, Checkin, Delivery, WebSecret
from ingest.schemas import Symptoms
from kneeguard.settings import Settings
from kneeguard.web.security import Signer, load_secret_key, revoke_links
from testsupport import free_port, wait_until
from testsupport.web import (
    SECRET,
    WebApp,
    alert_of,
    checkin_link,
    hidden,
    open_form,
    path_of,
    seed,
    serve,
    submit,
)


@pytest.fixture
def web_sqlite(sqlite_url: str) -> Iterator[WebApp]:
    with serve(sqlite_url) as app:
        seed(app.engine)
        yield app


def checkins(app: WebApp) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(Checkin)).scalar_one())


# --- the server ----------------------------------------------------------------------------------


def test_healthz_and_the_openapi_document_are_served(web_sqlite: WebApp) -> None:
    with web_sqlite.client() as client:
        assert client.get("/healthz").json() == {"status": "alive"}
        doc = client.get("/openapi.json").json()
    assert "/api/v1/alerts" in doc["paths"]
    assert not any(path.startswith(("/r/", "/coach")) for path in doc["paths"])


def test_kneeguard_run_only_web_serves_and_stops_on_sigterm(
    sqlite_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "KNEEGUARD_DATABASE_URL": sqlite_url,
        "KNEEGUARD_WEB_BIND": f"127.0.0.1:{port}",
        "KNEEGUARD_MQTT_URL": f"mqtt://127.0.0.1:{free_port()}",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "kneeguard", "run", "--only", "web"],
        env=env,
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def alive() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(alive, 30, 0.2), "the web app did not come up"
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert process.stderr is not None
    log = process.stderr.read()
    assert "Traceback" not in log
    assert not wait_until(alive, 0.5)


def test_a_port_in_use_is_a_clear_error(sqlite_url: str, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **os.environ,
            "KNEEGUARD_DATABASE_URL": sqlite_url,
            "KNEEGUARD_WEB_BIND": f"127.0.0.1:{port}",
        }
        result = subprocess.run(
            [sys.executable, "-m", "kneeguard", "run", "--only", "web"],
            env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert result.returncode == 1
    assert f"could not serve on 127.0.0.1:{port}" in result.stderr


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KNEEGUARD_WEB_BIND", "8080", "KNEEGUARD_WEB_BIND"),
        ("KNEEGUARD_PUBLIC_URL", "ftp://x", "KNEEGUARD_PUBLIC_URL"),
        ("KNEEGUARD_SECRET_KEY", "short", "at least 32 characters"),
        ("KNEEGUARD_SECRET_KEY_FILE", "/nonexistent/key", "cannot read KNEEGUARD_SECRET_KEY_FILE"),
    ],
)
def test_bad_web_settings_are_one_line_errors(
    sqlite_url: str, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    env = {**os.environ, "KNEEGUARD_DATABASE_URL": sqlite_url, variable: value}
    result = subprocess.run(
        [sys.executable, "-m", "kneeguard", "run", "--only", "web"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert value not in result.stderr or variable != "KNEEGUARD_SECRET_KEY"


def test_the_secret_key_is_generated_once_and_kept(db_url: str, tmp_path: Path) -> None:
    engine = make_engine(db_url)
    now = Settings().model_construct  # noqa: F841 - settings without env influence below
    settings = Settings(database_url=db_url)
    from datetime import UTC, datetime

    first = load_secret_key(settings, engine, datetime.now(UTC))
    second = load_secret_key(settings, engine, datetime.now(UTC))
    assert first == second and len(first) >= 32
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(WebSecret)).scalar_one() == 1
    keyfile = tmp_path / "key"
    keyfile.write_text("k" * 40 + "\n")
    from_file = Settings(database_url=db_url, secret_key_file=keyfile)
    assert load_secret_key(from_file, engine, datetime.now(UTC)) == "k" * 40
    engine.dispose()


def test_tokens_are_scoped_to_their_purpose() -> None:
    from datetime import timedelta

    from kneeguard.web.security import LinkError

    signer = Signer(SECRET)
    token = signer.sign("checkin", {"a": "a1", "g": 0})
    assert signer.check("checkin", token, timedelta(days=7)) == {"a": "a1", "g": 0}
    with pytest.raises(LinkError, match="not valid"):
        signer.check("ack", token, timedelta(days=30))
    with pytest.raises(LinkError, match="not valid"):
        Signer(SECRET + "x").check("checkin", token, timedelta(days=7))


# --- the check-in ---------------------------------------------------------------------------------


def test_a_web_checkin_is_stored_once_and_runs_the_red_flag_rules(web: WebApp) -> None:
    path = path_of(checkin_link(web))
    with web.client() as client:
        page, fields = open_form(client, path)
        for name in Symptoms.model_fields:
            assert f'value="{name}"' in page, f"symptom {name} missing from the form"
        form = {**fields, "pain_score": "9", "symptom": ["swelling"], "site": ["left:medial"]}
        first = client.post(path, data=form)
        assert first.status_code == 303
        again = client.post(path, data=form)
        assert again.status_code == 303
        thanks = client.get(first.headers["location"])
    assert "Your check-in is saved" in thanks.text
    with web.engine.connect() as conn:
        rows = conn.execute(select(Checkin)).all()
        alerts = conn.execute(select(Alert)).all()
        deliveries = conn.execute(select(Delivery)).all()
    assert len(rows) == 1
    assert rows[0].device_id == "web" and rows[0].pain_score == 9 and rows[0].swelling
    assert rows[0].pain_sites == [{"side": "left", "aspect": "medial"}]
    assert alerts, "no alert was opened"
    assert {a.athlete_id for a in alerts} == {"a1"}
    assert deliveries and {d.athlete_id for d in deliveries} == {"a1"}
    assert "Please read" in thanks.text


def test_both_knees_become_side_both(web_sqlite: WebApp) -> None:
    path = path_of(checkin_link(web_sqlite))
    with web_sqlite.client() as client:
        _, fields = open_form(client, path)
        sites = ["left:anterior", "right:anterior", "right:lateral"]
        assert (
            client.post(path, data={**fields, "pain_score": "2", "site": sites}).status_code == 303
        )
    with web_sqlite.engine.connect() as conn:
        stored = conn.execute(select(Checkin.pain_sites)).scalar_one()
    assert stored == [
        {"side": "both", "aspect": "anterior"},
        {"side": "right", "aspect": "lateral"},
    ]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({}, "pain_score", "Please choose a pain score"),
        ({"pain_score": "11"}, "pain_score", "less than or equal to 10"),
        ({"pain_score": "ten"}, "pain_score", "valid integer"),
        ({"pain_score": "3", "note": "x" * 1001}, "note", "at most 1000 characters"),
        ({"pain_score": "3", "site": ["left:sideways"]}, "pain_sites", "Input should be"),
        ({"pain_score": "3", "ostrc_q1": "7"}, "ostrc_q1", "less than or equal to 3"),
    ],
)
def test_bad_answers_are_shown_next_to_the_field_and_nothing_is_stored(
    web_sqlite: WebApp, changes: dict[str, object], field: str, message: str
) -> None:
    path = path_of(checkin_link(web_sqlite))
    with web_sqlite.client() as client:
        _, fields = open_form(client, path)
        reply = client.post(path, data={**fields, **changes})
    assert reply.status_code == 400
    assert "Please check the answers marked below" in reply.text
    assert message in reply.text
    # The message sits inside the field's own fieldset or question block.
    start = reply.text.index(message)
    block = max(
        reply.text.rfind("<fieldset", 0, start), reply.text.rfind('<div class="question', 0, start)
    )
    assert "invalid" in reply.text[block : block + 60]
    assert checkins(web_sqlite) == 0


def test_a_form_without_its_csrf_token_is_refused(web_sqlite: WebApp) -> None:
    path = path_of(checkin_link(web_sqlite))
    with web_sqlite.client() as client:
        _, fields = open_form(client, path)
        no_token = client.post(path, data={"form_token": fields["form_token"], "pain_score": "9"})
        wrong = client.post(path, data={**fields, "csrf_token": "0" * 64, "pain_score": "9"})
    with web_sqlite.client() as other_browser:
        replayed = other_browser.post(path, data={**fields, "pain_score": "9"})
    assert no_token.status_code == wrong.status_code == replayed.status_code == 403
    assert checkins(web_sqlite) == 0


def old_token(purpose: str, data: object, age_days: float) -> str:
    class Past(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time() - age_days * 86400)

    return str(URLSafeTimedSerializer(SECRET, salt=f"kneeguard.{purpose}", signer=Past).dumps(data))


def test_checkin_links_expire_after_seven_days_and_ack_links_after_thirty(web: WebApp) -> None:
    with web.client() as client:
        fresh = client.get(f"/r/{old_token('checkin', {'a': 'a1', 'g': 0, 'r': None}, 6.9)}")
        stale = client.get(f"/r/{old_token('checkin', {'a': 'a1', 'g': 0, 'r': None}, 7.1)}")
        ack_stale = client.get(f"/r/alert/{old_token('ack', {'a': 'a1', 'g': 0, 'al': 1}, 30.1)}")
    assert fresh.status_code == 200
    assert stale.status_code == 410 and "expired" in stale.text
    assert ack_stale.status_code == 410 and "expired" in ack_stale.text


def test_revoked_links_stop_working(web_sqlite: WebApp) -> None:
    path = path_of(checkin_link(web_sqlite))
    with web_sqlite.client() as client:
        _, fields = open_form(client, path)
        with web_sqlite.engine.begin() as conn:
            revoke_links(conn, "a1", web_sqlite.ctx.now())
        assert client.get(path).status_code == 410
        refused = client.post(path, data={**fields, "pain_score": "9"})
        assert refused.status_code == 410
        new_path = path_of(checkin_link(web_sqlite))
        assert client.get(new_path).status_code == 200
    assert checkins(web_sqlite) == 0


def test_a_form_of_one_athlete_cannot_be_sent_with_another_athletes_link(
    web_sqlite: WebApp,
) -> None:
    mine, theirs = path_of(checkin_link(web_sqlite, "a1")), path_of(checkin_link(web_sqlite, "b1"))
    with web_sqlite.client() as client:
        _, fields = open_form(client, mine)
        reply = client.post(theirs, data={**fields, "pain_score": "9"})
    assert reply.status_code == 400
    assert checkins(web_sqlite) == 0


def test_the_alert_page_gives_advice_and_records_ive_read_this(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "a1", "9", "swelling")
    alert = alert_of(web_sqlite, "a1")
    with web_sqlite.engine.connect() as conn:
        url = web_sqlite.ctx.links.athlete_links(conn, "a1").alert(alert.id)
    with web_sqlite.client() as client:
        page = client.get(path_of(url))
        assert page.status_code == 200
        assert "What to do" in page.text and "I've read this" in page.text
        done = client.post(path_of(url), data={"csrf_token": hidden(page.text, "csrf_token")})
    assert done.status_code == 200 and "you have read this alert" in done.text
    after = alert_of(web_sqlite, "a1")
    assert after.status == "acknowledged" and after.acknowledged_by == "Ann Runner (athlete)"


def test_an_ack_link_reaches_only_its_own_athletes_alert(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "b1", "9", "swelling")
    other = alert_of(web_sqlite, "b1")
    forged = web_sqlite.ctx.links.alert("a1", 0, other.id)
    with web_sqlite.client() as client:
        assert client.get(path_of(forged)).status_code == 404
        assert (
            client.post(path_of(web_sqlite.ctx.links.alert_hook("a1", 0, other.id))).status_code
            == 404
        )
    assert alert_of(web_sqlite, "b1").status == "open"


def test_the_ntfy_acknowledge_action_acknowledges(web_sqlite: WebApp) -> None:
    submit(web_sqlite, "a1", "9", "swelling")
    alert = alert_of(web_sqlite, "a1")
    hook = web_sqlite.ctx.links.alert_hook("a1", 0, alert.id)
    reply = httpx.post(hook, timeout=10)
    assert reply.status_code == 200 and reply.json()["status"] == "acknowledged"
    assert alert_of(web_sqlite, "a1").status == "acknowledged"
    assert httpx.post(hook + "x", timeout=10).status_code == 410


def test_a_runner_uploads_an_activity_file_once(web_sqlite: WebApp) -> None:
    from datetime import UTC, datetime, timedelta

    from db.models import Run
    from testsupport.fitfiles import Leg, fit_bytes

    data = fit_bytes([Leg(start=datetime.now(UTC) - timedelta(hours=3), distance_m=7000.0)])
    path = path_of(checkin_link(web_sqlite)) + "/upload"
    with web_sqlite.client() as client:
        page = client.get(path)
        csrf = {"csrf_token": hidden(page.text, "csrf_token")}
        first = client.post(path, data=csrf, files={"file": ("morning.fit", data)})
        again = client.post(path, data=csrf, files={"file": ("morning.fit", data)})
        junk = client.post(path, data=csrf, files={"file": ("notes.gpx", b"<gpx>not really")})
        empty = client.post(path, data=csrf)
        forged = client.post(path, files={"file": ("morning.fit", data)})
    assert first.status_code == 200 and "imported" in first.text and "7.00 km" in first.text
    assert again.status_code == 200 and "already imported" in again.text
    assert junk.status_code == 400 and "could not be imported" in junk.text
    assert empty.status_code == 400 and "Please choose" in empty.text
    assert forged.status_code == 403
    with web_sqlite.engine.connect() as conn:
        runs = conn.execute(select(Run.athlete_id, Run.distance_m)).all()
    assert [tuple(row) for row in runs] == [("a1", 7000.0)]
