"""Passwords that are not percent-encoded never reach an error message or a traceback.

Reproduction: database, SMTP and MQTT URLs whose password holds a raw `/`, `#` or `@` were cut
by the URL parser at that character, and the rest of the password was printed as a path, a
fragment, a host or a port. The password is now found and redacted before anything parses the
URL, and such a URL is refused at start-up, naming the variable and how to encode it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from db.engine import DatabaseError, make_engine
from db.urls import password_misread, redact_url
from ingest.mqtt import BrokerAddress, BrokerConfigError
from kneeguard.settings import Settings
from notifier.email import SmtpSettings
from notifier.ntfy import NtfyTransport
from testsupport import assert_user_error, kneeguard

# Each fragment of the password is distinctive, so finding either in an output is a leak.
HEAD, TAIL = "Zq7k", "Xv9w"
PASSWORDS = [f"{HEAD}{sep}{TAIL}" for sep in ("/", "#", "@", "?")]
URLS = {
    "DATABASE_URL": "postgresql+psycopg://kg:{}@127.0.0.1:5432/kg",
    "MQTT_URL": "mqtt://kneeguard:{}@127.0.0.1:1883",
    "SMTP_URL": "smtp://mailer:{}@127.0.0.1:25?starttls=true",
    "NTFY_URL": "https://pusher:{}@ntfy.example.org/base",
}


def leaks(text: str) -> bool:
    return HEAD in text or TAIL in text


@pytest.mark.timeout(60)  # before the fix, `run` started with a misread broker URL
@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("name", sorted(URLS))
def test_commands_refuse_an_unencoded_password_without_showing_it(
    sqlite_url: str, name: str, password: str
) -> None:
    env = {f"KNEEGUARD_{name}": URLS[name].format(password)}
    db_url = env.pop("KNEEGUARD_DATABASE_URL", sqlite_url)
    for command in (("run",), ("alerts", "list"), ("digest", "send")):
        result = kneeguard(db_url, *command, **env)
        assert_user_error(result, 2, f"KNEEGUARD_{name}")
        assert "percent-encoded" in result.stderr
        assert not leaks(result.stdout + result.stderr), result


@pytest.mark.parametrize("password", PASSWORDS)
def test_every_parser_refuses_it_without_showing_it(password: str) -> None:
    failures: list[str] = []
    attempts: list[tuple[type[Exception], Callable[[], object]]] = [
        (DatabaseError, lambda: make_engine(URLS["DATABASE_URL"].format(password))),
        (BrokerConfigError, lambda: BrokerAddress.from_url(URLS["MQTT_URL"].format(password))),
        (ValueError, lambda: SmtpSettings.from_url(URLS["SMTP_URL"].format(password))),
        (ValueError, lambda: NtfyTransport(URLS["NTFY_URL"].format(password))),
    ]
    for error, attempt in attempts:
        with pytest.raises(error) as caught:
            attempt()
        failures.append(str(caught.value))
    # The compose health check builds Settings directly: its traceback must not show it either.
    for name, template in URLS.items():
        with pytest.raises(ValidationError) as invalid:
            Settings(_env_file=None, **{name.lower(): template.format(password)})  # type: ignore[arg-type]
        failures.append(str(invalid.value))
    for text in failures:
        assert "percent-encoded" in text
        assert not leaks(text), text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql+psycopg://kg:Sec/ret@db:5432/kg", "postgresql+psycopg://kg:***@db:5432/kg"),
        ("postgresql+psycopg://kg:Sec#ret@db/kg", "postgresql+psycopg://kg:***@db/kg"),
        ("postgresql+psycopg://kg:Sec@ret@db/kg", "postgresql+psycopg://kg:***@db/kg"),
        ("mqtt://svc:Sec?ret@broker:1883", "mqtt://svc:***@broker:1883"),
        ("mqtt://svc:Sec:ret@broker", "mqtt://svc:***@broker"),
        ("smtp://mail:25?starttls=true", "smtp://mail:25?starttls=true"),
        ("smtp://user@mail:25", "smtp://user@mail:25"),
        ("sqlite:///var/with@sign.db", "sqlite:///var/with@sign.db"),
        ("http://[::1]:8080/a@b", "http://[::1]:8080/a@b"),
        ("not a url Sec@ret", "not a url Sec@ret"),
    ],
)
def test_redaction_finds_the_password_the_way_a_reader_does(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_encoded_passwords_are_accepted_and_still_redacted(sqlite_url: str) -> None:
    encoded = f"{HEAD}%2F{TAIL}%40%23"
    url = f"postgresql+psycopg://kg:{encoded}@127.0.0.1:1/kg"
    assert not password_misread(url)
    result = kneeguard(url, "alerts", "list")
    assert_user_error(result, 1, "cannot use database postgresql+psycopg://kg:***@127.0.0.1:1/kg")
    assert not leaks(result.stderr)
    address = BrokerAddress.from_url(f"mqtt://svc:{encoded}@127.0.0.1:1883")
    assert address.password == f"{HEAD}/{TAIL}@#"
    assert not leaks(address.describe())
