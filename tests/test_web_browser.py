"""The web app in a real headless Chromium: a runner on a phone and a coach, end to end.

The runner opens the check-in link from the prompt email the SMTP sink received, on a 390 × 844
viewport, reports pain 9 and swelling and sees the confirmation; the alert email arrives. The
coach signs in from the emailed link, sees that runner first, opens the chart and acknowledges
the alert; `kneeguard alerts list` shows it acknowledged by that coach. Every page is saved as a
screenshot under the test's temporary folder.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from db.engine import make_engine
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from rules.catalog import CATALOG
from testsupport import Mosquitto, SmtpSink, free_port, kneeguard, missing, wait_until
from testsupport.web import add_run, body_of, links_in, seed

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        missing("Chromium is not installed at /usr/bin/chromium (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def mails_to(smtp: SmtpSink, address: str, subject_part: str) -> list[Any]:
    return [m for m in smtp.to(address) if subject_part in str(m["Subject"])]


def test_runner_checks_in_on_a_phone_and_the_coach_acknowledges(
    browser: Any, sqlite_url: str, broker: Mosquitto, tmp_path: Path
) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    smtp = SmtpSink().start()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = Settings(
        database_url=sqlite_url,
        mqtt_url=broker.url,
        smtp_url=smtp.url,
        web_bind=f"127.0.0.1:{port}",
        public_url=base,
        _env_file=None,
    )
    engine = make_engine(sqlite_url)
    seed(engine)
    add_run(engine, "a1", datetime.now(UTC) - timedelta(hours=5), km=11.0)
    service = Service(settings, engine, first_run_delay=timedelta(hours=1), serve_web=True)
    service.start()
    try:
        assert service.web is not None and wait_until(lambda: service.web.started, 10)  # type: ignore[union-attr]
        assert wait_until(service.connection.ready.is_set, 20), "no broker connection"
        service.send_prompts()  # the scheduled job, run now
        assert wait_until(lambda: bool(mails_to(smtp, "ann@club.test", "11.0 km run")), 10)
        prompt = mails_to(smtp, "ann@club.test", "11.0 km run")[0]
        link = next(u for u in links_in(body_of(prompt)) if "/r/" in u)

        # --- the runner, on a phone ---------------------------------------------------------
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = phone.new_page()
        page.goto(link)
        page.screenshot(path=str(shots / "1-runner-checkin.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390, "sideways scroll"
        page.locator("label.pick", has_text="9").first.click()
        page.get_by_label("Swelling").check()
        page.get_by_role("button", name="Send check-in").click()
        page.wait_for_selector("text=Your check-in is saved")
        page.screenshot(path=str(shots / "2-runner-thanks.png"), full_page=True)
        urgent = "redflag.severe_pain" in CATALOG  # rules v2: pain 8 or more is urgent
        tag = "[URGENT]" if urgent else "[Warning]"
        assert wait_until(lambda: bool(mails_to(smtp, "ann@club.test", tag)), 20), "no alert email"
        alert_mail = mails_to(smtp, "ann@club.test", tag)[0]
        alert_link = next(u for u in links_in(body_of(alert_mail)) if "/r/alert/" in u)
        page.goto(alert_link)
        page.screenshot(path=str(shots / "3-runner-alert.png"), full_page=True)
        phone.close()

        # --- the coach ---------------------------------------------------------------------------
        desk = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
        page = desk.new_page()
        page.goto(f"{base}/coach")
        page.get_by_label("Your email address").fill("one@club.test")
        page.get_by_role("button", name="Email me a sign-in link").click()
        page.wait_for_selector("text=a sign-in link is on its way")
        page.screenshot(path=str(shots / "4-coach-sign-in.png"), full_page=True)
        assert wait_until(lambda: bool(mails_to(smtp, "one@club.test", "sign-in link")), 10)
        sign_in = next(
            u
            for u in links_in(body_of(mails_to(smtp, "one@club.test", "sign-in link")[0]))
            if "/coach/sign-in/" in u
        )
        page.goto(sign_in)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_selector("table.team")
        page.screenshot(path=str(shots / "5-coach-team.png"), full_page=True)
        first = page.locator("table.team tbody tr").first
        assert "Ann Runner" in first.inner_text()
        first.get_by_role("link", name="Ann Runner").click()
        page.wait_for_selector("svg.chart")
        assert page.locator("svg.chart polyline.pain").count() == 1
        page.screenshot(path=str(shots / "6-coach-athlete.png"), full_page=True)
        page.get_by_role("button", name="Acknowledge").first.click()
        page.wait_for_selector("text=acknowledged by Coach One")
        page.screenshot(path=str(shots / "7-coach-acknowledged.png"), full_page=True)
        desk.close()
    finally:
        service.stop()
        smtp.stop()
    listed = kneeguard(sqlite_url, "alerts", "list", "--status", "all", "--json")
    assert listed.returncode == 0, listed.stderr
    alerts = json.loads(listed.stdout)
    assert any(a["acknowledged_by"] == "Coach One (coach c1)" for a in alerts), alerts
    assert len(list(shots.glob("*.png"))) == 7
