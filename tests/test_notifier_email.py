"""Email delivery against a real SMTP server (aiosmtpd) on a free port: plain, AUTH, STARTTLS
and SMTPS with a certificate made by the test, and how each kind of failure is classified."""

from __future__ import annotations

import email
import logging
import shlex
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.headerregistry import HeaderRegistry
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notifier.base import DeliveryError, Message, Recipient
from notifier.email import _WIRE, EmailTransport, SmtpSettings, build_email
from notifier.render import render_alert
from rules.catalog import spec
from rules.text import render
from testsupport import free_port, missing, wait_until

MAIL_FROM = "KneeGuard <alerts@kneeguard.example>"
USER = "kneeguard"
PASSWORD = "s3cret-p@ss:word-4e1b"
ANN = Recipient(
    kind="athlete",
    id="ann",
    name="Ann Rünner",
    email="ann@example.org",
    timezone="Europe/Berlin",
    athlete_id="ann",
)


def alert_message() -> Message:
    text = render(
        spec("pain.high"),
        "pain 7/10 after your run of 12.0 km.",
        "pain 7/10 after your run of 12.0 km.",
    ).athlete
    return render_alert(
        alert_id=17,
        athlete_id="ann",
        athlete_name=ANN.name,
        rule_id="pain.high",
        severity="warning",
        recommendation="rest",
        text=text,
        evidence={"pain_score": 7},
        opened_at=datetime(2026, 11, 2, 7, 5, tzinfo=UTC),
    )


class Inbox:
    """aiosmtpd handler: keeps what it accepts, or answers RCPT/DATA with a set reply."""

    def __init__(self, rcpt_reply: str | None = None, data_reply: str | None = None) -> None:
        self.rcpt_reply = rcpt_reply
        self.data_reply = data_reply
        self.envelopes: list[Envelope] = []

    async def handle_RCPT(  # noqa: N802 - the name aiosmtpd calls
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def only_message(self) -> EmailMessage:
        assert len(self.envelopes) == 1, self.envelopes
        content = self.envelopes[0].content
        assert isinstance(content, bytes)
        parsed = email.message_from_bytes(content, policy=default_policy)
        assert isinstance(parsed, EmailMessage)
        return parsed


def check_password(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login == USER.encode()
        and auth_data.password == PASSWORD.encode()
    )
    return AuthResult(success=ok, handled=False)


@contextmanager
def smtp_server(handler: Inbox, **kwargs: Any) -> Iterator[int]:
    """An aiosmtpd server on a free port for the duration of the block; yields the port."""
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=5,
        server_hostname="mx.test",
        **kwargs,
    )
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (it is its own CA), made with openssl."""
    if shutil.which("openssl") is None:
        missing("openssl is not installed")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    command = shlex.split(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2"
        " -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
    )
    subprocess.run(
        [*command, "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


def server_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)
    return context


def transport(url: str) -> EmailTransport:
    return EmailTransport(SmtpSettings.from_url(url), MAIL_FROM)


# --- URL parsing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "host", "port", "security"),
    [
        ("smtp://mail.example", "mail.example", 25, "none"),
        ("smtp://mail.example:2525", "mail.example", 2525, "none"),
        ("smtps://mail.example", "mail.example", 465, "tls"),
        ("smtp://mail.example:587?starttls=true", "mail.example", 587, "starttls"),
        ("smtp://mail.example?starttls=false", "mail.example", 25, "none"),
    ],
)
def test_smtp_url_gives_host_port_and_tls_mode(
    url: str, host: str, port: int, security: str
) -> None:
    settings = SmtpSettings.from_url(url)
    assert (settings.host, settings.port, settings.security) == (host, port, security)
    assert settings.username is None and settings.password is None


def test_smtp_url_credentials_cafile_and_timeout_are_decoded() -> None:
    settings = SmtpSettings.from_url(
        "smtp://us%40er:p%3Ass%40w@mail.example:587?starttls=true&cafile=/etc/ca.pem&timeout=2.5"
    )
    assert settings.username == "us@er"
    assert settings.password == "p:ss@w"
    assert settings.cafile == Path("/etc/ca.pem")
    assert settings.timeout == 2.5


@pytest.mark.parametrize(
    "url",
    [
        "http://user:hunter2@mail.example",
        "smtp://user:hunter2@mail.example?startls=true",  # typo must not mean clear text
        "smtps://user:hunter2@mail.example?starttls=true",
        "smtp://user:hunter2@mail.example?starttls=maybe",
        "smtp://user:hunter2@mail.example?timeout=0",
        "smtp://user:hunter2@",
        "smtp://user:hunter2ä@mail.example",  # smtplib can only send ASCII credentials
    ],
)
def test_bad_smtp_url_is_refused_without_showing_the_password(url: str) -> None:
    with pytest.raises(ValueError, match=r".") as caught:
        SmtpSettings.from_url(url)
    assert "hunter2" not in str(caught.value)


def test_describe_and_repr_never_show_the_password() -> None:
    settings = SmtpSettings.from_url("smtp://bob:hunter2@mail.example:587?starttls=true")
    assert settings.describe() == "smtp://bob@mail.example:587?starttls=true"
    assert "hunter2" not in repr(settings)
    assert "hunter2" not in repr(EmailTransport(settings, MAIL_FROM))


# --- delivery -------------------------------------------------------------------------------


def test_folding_a_header_makes_no_new_header_classes() -> None:
    """The standard header registry made a class per header parsed, for every email: a sixth of
    building one. Headers that need folding still go through it; the same header name has the
    same class from one email to the next."""
    registry = _WIRE.header_factory
    assert isinstance(registry, HeaderRegistry)
    assert registry["Subject"] is registry["subject"] is registry["Subject"]
    assert build_email(ANN, alert_message(), MAIL_FROM).count(b"\r\n") > 10


def test_delivers_multipart_alternative_with_alert_headers() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(ANN, alert_message())

    envelope = inbox.envelopes[0]
    assert envelope.mail_from == "alerts@kneeguard.example"
    assert envelope.rcpt_tos == ["ann@example.org"]
    received = inbox.only_message()
    assert received.get_content_type() == "multipart/alternative"
    assert (
        received["Subject"]
        == "[Warning] KneeGuard: rest from running — high pain during or after a run"
    )
    assert received["From"] == MAIL_FROM
    to = received["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Ann Rünner", "ann@example.org")
    assert received["Auto-Submitted"] == "auto-generated"
    assert received["Message-ID"].endswith("@kneeguard.example>")
    assert received["Date"].datetime is not None
    text = received.get_body(("plain",))
    html = received.get_body(("html",))
    assert text is not None and html is not None
    assert isinstance(text, EmailMessage) and isinstance(html, EmailMessage)
    assert "Rest from running." in text.get_content()
    assert "Rest from running." in html.get_content()
    assert "This is not a diagnosis." in text.get_content()


def test_text_only_message_is_a_single_plain_part() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(
            ANN, Message(subject="Digest", text="Nothing to report.")
        )
    received = inbox.only_message()
    assert received.get_content_type() == "text/plain"
    assert received.get_content().strip() == "Nothing to report."


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_login_with_the_right_password_delivers() -> None:
    inbox = Inbox()
    with smtp_server(
        inbox, authenticator=check_password, auth_required=True, auth_require_tls=False
    ) as port:
        transport(f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}?timeout=5").send(
            ANN, alert_message()
        )
    assert len(inbox.envelopes) == 1


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_wrong_password_is_permanent_and_never_shown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Pa55word-x9"
    inbox = Inbox()
    with (
        smtp_server(
            inbox, authenticator=check_password, auth_required=True, auth_require_tls=False
        ) as port,
        pytest.raises(DeliveryError) as caught,
    ):
        transport(f"smtp://{USER}:{wrong}@127.0.0.1:{port}?timeout=5").send(ANN, alert_message())
    assert caught.value.permanent
    assert "535" in str(caught.value)
    assert wrong not in str(caught.value) and wrong not in repr(caught.value)
    assert wrong not in caplog.text
    assert inbox.envelopes == []


def test_starttls_with_private_ca_protects_the_login(certificate: tuple[Path, Path]) -> None:
    inbox = Inbox()
    with smtp_server(
        inbox,
        tls_context=server_tls(certificate),
        require_starttls=True,
        authenticator=check_password,
        auth_required=True,
        auth_require_tls=True,  # AUTH is only offered after STARTTLS
    ) as port:
        transport(
            f"smtp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{port}"
            f"?starttls=true&cafile={certificate[0]}&timeout=5"
        ).send(ANN, alert_message())
    assert len(inbox.envelopes) == 1


def test_smtps_with_private_ca_delivers(certificate: tuple[Path, Path]) -> None:
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=port, ready_timeout=5, ssl_context=server_tls(certificate)
    )
    controller.start()
    try:
        transport(f"smtps://127.0.0.1:{port}?cafile={certificate[0]}&timeout=5").send(
            ANN, alert_message()
        )
    finally:
        controller.stop()
    assert len(inbox.envelopes) == 1


def test_untrusted_certificate_is_not_accepted(certificate: tuple[Path, Path]) -> None:
    """Without ?cafile= the self-signed certificate fails verification: nothing is sent.
    Transient, because a certificate problem is fixed on the server and the retry delivers."""
    inbox = Inbox()
    with (
        smtp_server(inbox, tls_context=server_tls(certificate), require_starttls=True) as port,
        pytest.raises(DeliveryError) as caught,
    ):
        transport(f"smtp://127.0.0.1:{port}?starttls=true&timeout=5").send(ANN, alert_message())
    assert not caught.value.permanent
    assert "CERTIFICATE_VERIFY_FAILED" in str(caught.value)
    assert inbox.envelopes == []


def test_starttls_required_but_not_offered_is_permanent() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port, pytest.raises(DeliveryError) as caught:
        transport(f"smtp://127.0.0.1:{port}?starttls=true&timeout=5").send(ANN, alert_message())
    assert caught.value.permanent
    assert "STARTTLS" in str(caught.value)
    assert inbox.envelopes == []


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage", "reply", "permanent"),
    [
        ("rcpt", "550 5.1.1 mailbox unavailable", True),
        ("rcpt", "451 4.3.0 try later", False),
        ("data", "550 5.7.1 message refused", True),
        ("data", "451 4.3.0 try later", False),
    ],
)
def test_smtp_5xx_is_permanent_and_4xx_transient(stage: str, reply: str, permanent: bool) -> None:
    inbox = Inbox(**{f"{stage}_reply": reply})
    with smtp_server(inbox) as port, pytest.raises(DeliveryError) as caught:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(ANN, alert_message())
    assert caught.value.permanent is permanent
    assert reply.split()[0] in str(caught.value)


class GrumpyQuit(Inbox):
    async def handle_QUIT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        return "451 4.3.0 goodbye went wrong"


def test_failed_quit_after_accepted_message_still_counts_as_delivered() -> None:
    """Raising here would retry, and send the alert twice."""
    inbox = GrumpyQuit()
    with smtp_server(inbox) as port:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(ANN, alert_message())
    assert len(inbox.envelopes) == 1


def test_nothing_listening_is_transient() -> None:
    port = free_port()  # bound and released: nothing listens there
    with pytest.raises(DeliveryError) as caught:
        transport(f"smtp://127.0.0.1:{port}?timeout=2").send(ANN, alert_message())
    assert not caught.value.permanent


def test_server_that_never_greets_times_out_as_transient() -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel accepts the connection; nobody ever answers
        port = silent.getsockname()[1]
        with pytest.raises(DeliveryError) as caught:
            transport(f"smtp://127.0.0.1:{port}?timeout=0.3").send(ANN, alert_message())
    assert not caught.value.permanent


def test_address_with_a_line_break_is_permanent() -> None:
    bad = Recipient(
        kind="athlete", id="x", name="X", email="x@example.org\r\nBcc: y@evil", timezone="UTC"
    )
    with pytest.raises(DeliveryError) as caught:
        transport("smtp://127.0.0.1:9?timeout=1").send(bad, alert_message())
    assert caught.value.permanent


def test_subject_with_a_line_break_is_permanent_and_nothing_is_sent() -> None:
    inbox = Inbox()
    with smtp_server(inbox) as port, pytest.raises(DeliveryError) as caught:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(
            ANN, Message(subject="Hi\r\nBcc: victim@example.org", text="x")
        )
    assert caught.value.permanent
    assert "cannot build email" in str(caught.value)
    assert inbox.envelopes == []


def test_internationalized_address_goes_out_with_smtputf8() -> None:
    """As smtplib's `send_message` did: a non-ASCII domain needs a server that offers SMTPUTF8,
    and the To header then carries the address as it is."""
    jorg = Recipient(
        kind="athlete", id="jorg", name="Jörg", email="jorg@exämple.org", timezone="UTC"
    )
    inbox = Inbox()
    with smtp_server(inbox, enable_SMTPUTF8=True) as port:
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(jorg, alert_message())
    assert inbox.envelopes[0].rcpt_tos == ["jorg@exämple.org"]
    assert "SMTPUTF8" in inbox.envelopes[0].mail_options
    content = inbox.envelopes[0].original_content
    assert isinstance(content, bytes)
    received = email.message_from_string(content.decode("utf-8"), policy=default_policy)
    to = received["To"].addresses[0]
    assert (to.display_name, to.addr_spec) == ("Jörg", "jorg@exämple.org")

    refusing = Inbox()
    with (
        smtp_server(refusing, enable_SMTPUTF8=False) as port,
        pytest.raises(DeliveryError) as caught,
    ):
        transport(f"smtp://127.0.0.1:{port}?timeout=5").send(jorg, alert_message())
    assert caught.value.permanent
    assert "SMTPUTF8" in str(caught.value)
    assert refusing.envelopes == []


# --- connections kept from one send to the next ---------------------------------------------


class Counting(Inbox):
    """Counts connections (each starts with EHLO), the QUITs that end them and RSETs."""

    def __init__(self) -> None:
        super().__init__()
        self.ehlo = 0
        self.quit = 0
        self.rset = 0

    async def handle_RSET(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.rset += 1
        return "250 OK"

    async def handle_EHLO(  # noqa: N802 - the name aiosmtpd calls
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        self.ehlo += 1
        session.host_name = hostname  # what aiosmtpd does when no hook is set
        return responses

    async def handle_QUIT(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.quit += 1
        return "221 Bye"


def test_sends_share_one_connection_until_close_idle() -> None:
    inbox = Counting()
    with smtp_server(inbox) as port:
        sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
        for _ in range(5):
            sender.send(ANN, alert_message())
        # One connection, and no round trip to check it between messages.
        assert (len(inbox.envelopes), inbox.ehlo, inbox.quit, inbox.rset) == (5, 1, 0, 0)
        sender.close_idle()
        assert wait_until(lambda: inbox.quit == 1, 5)
        sender.send(ANN, alert_message())
        sender.close_idle()
        assert wait_until(lambda: inbox.quit == 2, 5)
    assert (len(inbox.envelopes), inbox.ehlo) == (6, 2)
    assert all(e.rcpt_tos == [ANN.email] for e in inbox.envelopes)


def test_a_kept_connection_the_server_dropped_costs_a_new_connection_not_a_delivery() -> None:
    port = free_port()
    first, second = Counting(), Counting()
    sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
    controller = Controller(first, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    sender.send(ANN, alert_message())
    controller.stop()  # the server goes away, and with it the kept connection
    controller = Controller(second, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        sender.send(ANN, alert_message())
    finally:
        sender.close_idle()
        controller.stop()
    assert (len(first.envelopes), len(second.envelopes), second.ehlo) == (1, 1, 1)


class DropsAtMail(Counting):
    """Closes the connection, without a reply, when the `drop_at`-th MAIL FROM arrives: a kept
    connection that breaks just as it is used again."""

    def __init__(self, drop_at: int) -> None:
        super().__init__()
        self.drop_at = drop_at
        self.mails = 0

    async def handle_MAIL(  # noqa: N802 - the name aiosmtpd calls
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        self.mails += 1
        if self.mails == self.drop_at:
            assert server.transport is not None
            server.transport.close()
            return "421 closing"  # never reaches the client: the connection is gone
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


def test_a_kept_connection_that_breaks_before_mail_is_answered_is_replaced_once() -> None:
    inbox = DropsAtMail(drop_at=2)
    with smtp_server(inbox) as port:
        sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
        sender.send(ANN, alert_message())
        sender.send(ANN, alert_message())  # the kept connection breaks; a new one delivers
        sender.close_idle()
    assert (len(inbox.envelopes), inbox.ehlo, inbox.mails) == (2, 2, 3)


def test_a_new_connection_that_breaks_at_mail_is_a_transient_failure() -> None:
    inbox = DropsAtMail(drop_at=1)
    with smtp_server(inbox) as port:
        sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
        with pytest.raises(DeliveryError) as failure:
            sender.send(ANN, alert_message())
        sender.close_idle()
    assert not failure.value.permanent
    assert (len(inbox.envelopes), inbox.mails) == (0, 1)


def test_concurrent_sends_each_use_a_connection_of_their_own() -> None:
    from concurrent.futures import ThreadPoolExecutor

    inbox = Counting()
    with smtp_server(inbox) as port:
        sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: sender.send(ANN, alert_message()), range(40)))
        sender.close_idle()
        assert wait_until(lambda: inbox.quit == inbox.ehlo, 5)
    assert len(inbox.envelopes) == 40
    assert 1 <= inbox.ehlo <= 4


def test_a_failed_send_does_not_keep_its_connection() -> None:
    inbox = Counting()
    inbox.data_reply = "451 4.3.0 try later"
    with smtp_server(inbox) as port:
        sender = transport(f"smtp://127.0.0.1:{port}?timeout=5")
        with pytest.raises(DeliveryError):
            sender.send(ANN, alert_message())
        inbox.data_reply = None
        sender.send(ANN, alert_message())
        sender.close_idle()
    assert (len(inbox.envelopes), inbox.ehlo) == (1, 2)
