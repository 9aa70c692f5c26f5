"""`kneeguard demo`, shortened, as a newcomer runs it: with a configured development broker, and
with nothing listening there or the service's broker account configured (the embedded broker);
plus its mail folder and broker probe."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from click.testing import CliRunner, Result
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import select

from db.engine import make_engine
from db.models import Alert, Checkin, Run
from kneeguard.cli.demo import demo
from kneeguard.simulation.demo_support import MailFolder, probe_broker
from kneeguard.simulation.simulator import SCENARIO_RULES
from rules.catalog import CATALOG
from testsupport import (
    SERVICE_PASSWORD,
    SERVICE_USER,
    DeviceClient,
    Mosquitto,
    free_port,
    held_for,
    missing,
    open_session,
    wait_until,
)

# The shortened demo: five weeks (the spike needs 30 days of history), one runner per story
# (runner-01 spike, -02 rising pain, -03 locked knee, -04 lateral pain, -05 cannot bear weight
# on a rest day, -06 a knee that gives way twice) and one healthy runner.
ARGS = ["--weeks", "5", "--athletes", "7", "--seconds", "0"]
STORIES = {
    "runner-01": "long_run_spike",
    "runner-02": "rising_pain",
    "runner-03": "locked_knee",
    "runner-04": "lateral_pain",
    "runner-05": "no_weight_bearing",
    "runner-06": "gives_way_twice",
    "runner-07": "healthy",
}


def run_demo(out: Path, mqtt_url: str) -> Result:
    env = {"KNEEGUARD_MQTT_URL": mqtt_url, "KNEEGUARD_TOPIC_PREFIX": "kneeguard/v1"}
    result = CliRunner().invoke(demo, [*ARGS, "--out", str(out)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def alerts(out: Path) -> dict[str, dict[str, Any]]:
    engine = make_engine(f"sqlite:///{out / 'demo' / 'kneeguard.db'}")
    try:
        with engine.connect() as conn:
            found: dict[str, dict[str, Any]] = {}
            for alert in conn.execute(select(Alert)):
                found.setdefault(alert.athlete_id, {})[alert.rule_id] = alert
            runs = conn.execute(select(Run.id)).all()
            checkins = conn.execute(select(Checkin.id)).all()
            assert runs and checkins
        return found
    finally:
        engine.dispose()


def emails(out: Path) -> list[tuple[Path, str, str, str]]:
    """(path, to, subject, plain text) of every .eml in the mail folder."""
    found = []
    for path in sorted((out / "mail").glob("*.eml")):
        parsed = message_from_bytes(path.read_bytes(), policy=policy.default)
        body = parsed.get_body(("plain",))
        assert body is not None
        found.append((path, str(parsed["To"]), str(parsed["Subject"]), body.get_content()))
    return found


def assert_the_story_was_told(out: Path, output: str) -> None:
    raised = alerts(out)
    for athlete, story in STORIES.items():
        assert SCENARIO_RULES[story] <= set(raised.get(athlete, {})), (athlete, raised)
    assert "runner-07" not in raised  # the healthy runner gets nothing
    assert raised["runner-03"]["redflag.locked_knee"].severity == "urgent"
    weight = raised["runner-05"]["redflag.cannot_bear_weight"]
    assert (weight.severity, weight.recommendation) == ("urgent", "urgent_care")
    mails = emails(out)
    to = [t for _, t, _, _ in mails]
    for athlete in ("runner-01", "runner-02", "runner-03", "runner-04", "runner-05"):
        assert sum(f"{athlete}@example.com" in t for t in to) == 1, to
    # A red flag reported twice notifies twice: the first notice, then "reported again".
    twice = [(s, text) for _, t, s, text in mails if "runner-06@example.com" in t]
    assert len(twice) == 2, twice
    # The outbox sends side by side, so the two may be written in either order.
    again = [(s, text) for s, text in twice if "reported again" in s]
    assert len(again) == 1 and "reports this again" in again[0][1], twice
    assert not any("runner-07" in t for t in to)
    coach = [(p, s, text) for p, t, s, text in mails if "coach@example.com" in t]
    digests = [(p, s, text) for p, s, text in coach if s.startswith("KneeGuard digest")]
    # The digest and the two urgent alerts (locked knee, cannot bear weight).
    assert len(digests) == 1 and len(coach) == 3
    _, subject, text = digests[0]
    assert "6 open alerts (2 urgent)" in subject
    assert "Opened in this period: 6" in text
    for rule in (
        "redflag.locked_knee",
        "redflag.cannot_bear_weight",
        "redflag.professional_signs",
        "pain.rising",
        "pain.high",
        "load.single_run_spike",
    ):
        # The digest names the rule in words; the demo's table shows its id.
        assert CATALOG[rule].title in text and rule in output
    index = (out / "mail" / "index.html").read_text()
    for path, *_ in mails:
        assert path.name in index and str(path) in output
    assert f"{digests[0][0]}  (coach digest)" in output and "Alerts raised" in output
    assert "does not diagnose" in output


@contextmanager
def anonymous_mosquitto(directory: Path) -> Iterator[int]:
    """A development mosquitto that lets anyone in (no user names), on a free port."""
    if shutil.which("mosquitto") is None:
        missing("mosquitto is not installed")
    port = free_port()
    directory.mkdir(parents=True, exist_ok=True)
    config = directory / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(
        ["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        assert wait_until(lambda: probe_broker(f"mqtt://127.0.0.1:{port}", 1) is None, 10)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def anonymous_client(port: int, topic: str) -> mqtt.Client:
    received: list[bytes] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"watch-{free_port()}")
    client.user_data_set(received)
    client.on_message = lambda c, userdata, msg: userdata.append(bytes(msg.payload))
    client.connect("127.0.0.1", port)
    client.subscribe(topic, 1)
    client.loop_start()
    return client


def test_a_shortened_demo_on_the_configured_broker_tells_the_story_in_alerts_and_emails(
    tmp_path: Path,
) -> None:
    out = tmp_path / "var"
    with anonymous_mosquitto(tmp_path / "broker") as port:
        # On a shared broker the demo keeps to its own topics, under {prefix}/demo/: a real
        # deployment's subscription never sees its messages.
        service = anonymous_client(port, "kneeguard/v1/+/+/run")
        watcher = anonymous_client(port, "kneeguard/v1/demo/+/+/run")
        try:
            result = run_demo(out, f"mqtt://127.0.0.1:{port}")
        finally:
            for client in (service, watcher):
                client.disconnect()
                client.loop_stop()
    assert "answered; using it" in result.output and "embedded" not in result.output
    assert_the_story_was_told(out, result.output)
    assert service.user_data_get() == [] and len(watcher.user_data_get()) > 100


def test_the_demo_never_connects_as_the_services_broker_user(
    tmp_path: Path, bound_broker: Mosquitto
) -> None:
    """Reproduction: with the production KNEEGUARD_MQTT_URL the demo connected as the service's
    user, which the shipped broker turns into the service's own session: it took the running
    service's place, and its clean-up (a clean session) dropped what was queued for it."""
    open_session(bound_broker.port, SERVICE_USER, SERVICE_PASSWORD, "kneeguard/v1/+/+/checkin")
    device = DeviceClient(bound_broker.port)
    try:
        device.publish("kneeguard/v1/ann/watch/checkin", b"waiting for the service")
    finally:
        device.close()

    result = run_demo(tmp_path / "var", bound_broker.url)
    assert "Not using the broker" in result.output and "names the broker user" in result.output
    assert "embedded amqtt broker" in result.output
    assert_the_story_was_told(tmp_path / "var", result.output)

    # The service's session, and what was queued for it, are as they were.
    held = held_for(bound_broker.port, SERVICE_USER, SERVICE_PASSWORD)
    assert held == [b"waiting for the service"], held


def test_the_demo_falls_back_to_an_embedded_broker_when_nothing_listens(tmp_path: Path) -> None:
    out = tmp_path / "var"
    (out / "mail").mkdir(parents=True)
    (out / "mail" / "001-old-demo.eml").write_text("From an earlier demo")
    (out / "mail" / "notes.txt").write_text("mine")
    nothing = f"mqtt://127.0.0.1:{free_port()}"
    result = run_demo(out, nothing)
    assert "No MQTT broker answered at" in result.output
    assert "embedded amqtt broker" in result.output and "for demos" in result.output
    assert_the_story_was_told(out, result.output)
    assert not (out / "mail" / "001-old-demo.eml").exists()  # an earlier demo's mail is gone
    assert (out / "mail" / "notes.txt").read_text() == "mine"  # nothing else is touched


def test_the_mail_folder_writes_each_email_and_an_index(tmp_path: Path) -> None:
    import smtplib
    from email.message import EmailMessage

    folder = MailFolder(tmp_path / "mail").start()
    try:
        message = EmailMessage()
        message["From"] = "KneeGuard <kneeguard@example.com>"
        message["To"] = "Ann <ann@example.com>"
        message["Subject"] = "Rest from running <today>"
        message.set_content("plain")
        message.add_alternative("<p>rich</p>", subtype="html")
        with smtplib.SMTP("127.0.0.1", folder.port) as smtp:
            smtp.send_message(message)
    finally:
        folder.stop()
    (mail,) = folder.files
    assert mail.path.name == "001-ann-rest-from-running-today.eml"
    assert mail.to == "ann@example.com" and mail.subject == "Rest from running <today>"
    assert mail.view is not None and mail.view.read_text() == "<p>rich</p>\n"
    index = folder.index.read_text()
    assert "Rest from running &lt;today&gt;" in index and mail.path.name in index


def test_the_broker_probe_says_why_a_broker_is_not_usable(tmp_path: Path) -> None:
    reason = probe_broker(f"mqtt://127.0.0.1:{free_port()}", timeout=1)
    assert reason is not None and "cannot reach" in reason
    mosq = Mosquitto(tmp_path / "broker")
    mosq.start()
    try:
        assert probe_broker(mosq.url) is None
        refused = probe_broker(f"mqtt://nobody:wrong@127.0.0.1:{mosq.port}", timeout=2)
        assert refused is not None and "did not accept" in refused
    finally:
        mosq.stop()


def test_the_demo_ends_with_web_links_and_serves_them_until_stopped(
    tmp_path: Path, broker: Mosquitto
) -> None:
    import os
    import re
    import signal
    import subprocess
    import sys
    import threading

    import httpx

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")},
        "KNEEGUARD_MQTT_URL": broker.url,
        "KNEEGUARD_WEB_BIND": f"127.0.0.1:{port}",
        "KNEEGUARD_PUBLIC_URL": base,
        "COLUMNS": "400",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "kneeguard", "demo", *ARGS, "--out", str(tmp_path), "--serve"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    serving = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C to stop" in line:
                serving.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert serving.wait(120), "".join(lines)
        output = "".join(lines)
        coach = re.search(
            rf"coach sign-in \(once, within 15 minutes\): ({base}/coach/sign-in/\S+)", output
        )
        runner = re.search(rf"check-in link: ({base}/r/\S+)", output)
        assert coach and runner, output
        with httpx.Client(timeout=10) as client:
            form = client.get(runner.group(1))
            assert form.status_code == 200 and "How is your knee" in form.text
            page = client.get(coach.group(1))
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert csrf
            signed_in = client.post(coach.group(1), data={"csrf_token": csrf.group(1)})
            assert signed_in.status_code == 303
            team = client.get(f"{base}/coach")
            assert team.status_code == 200
            assert team.text.index("level-urgent") < team.text.index("level-ok")  # locked knee
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        reader.join(5)
