"""Email delivery over SMTP: alert notices and digests as multipart/alternative mail.

The server comes from `KNEEGUARD_SMTP_URL` (`SmtpSettings.from_url`). A connection is reused
for the next send while the outbox works through what is due (a burst of red flags, a digest
round): opening one (TCP, greeting, EHLO, STARTTLS, AUTH) cost several times the hand-off of the
message itself. The outbox closes the idle connections once it has had nothing to send for a
poll interval (`close_idle`; red flags come one by one, a few tens of milliseconds apart), so
none is kept for a server-side idle timeout to cut. A kept connection is used again without a
round trip to check it (an RSET cost an eighth of the senders' time): one the server has closed
is readable (end of file, or a 421 sent before closing) and is replaced; one that fails before
the server has answered MAIL FROM, so before any message could have been accepted, is replaced
and the message sent again on a new connection. A connection the server has dropped costs a
new connection, never a failed or a doubled delivery.

Errors are classified by what retrying could achieve (notifier.base): an SMTP 5xx reply, a
refused login and a server that lacks a required extension are permanent; 4xx replies, refused
connections, timeouts, TLS failures and dropped connections are transient. TLS certificate
failures count as transient on purpose: an expired certificate is fixed by renewing it, and the
retry then delivers the alert instead of losing it.

The SMTP password never appears in an error message, a log line or a `repr`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import re
import secrets
import select
import smtplib
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address, BaseHeader, HeaderRegistry
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.policy import default as default_policy
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qs, unquote, urlsplit

from db.urls import check_password_encoded, redact_url
from notifier.base import Channel, DeliveryError, InlineImage, Message, Recipient

__all__ = ["EmailTransport", "Security", "SmtpSettings", "build_email"]

log = logging.getLogger(__name__)

Security = Literal["none", "starttls", "tls"]
"""`none`: plain SMTP; `starttls`: STARTTLS required before anything else; `tls`: implicit TLS."""

DEFAULT_TIMEOUT = 30.0
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_QUERY_KEYS = frozenset({"starttls", "cafile", "timeout"})


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """Where and how to reach the SMTP server. `describe()` is the only form fit for a log."""

    host: str
    port: int
    security: Security = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    cafile: Path | None = None
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_url(cls, url: str) -> SmtpSettings:
        """Parse `smtp://[user:password@]host[:port][?starttls=true][&cafile=PATH][&timeout=S]`.

        `smtp://` defaults to port 25, `smtps://` (implicit TLS) to 465. User and password are
        percent-decoded, so a password may contain `@` or `:` as `%40` / `%3A`. Unknown query
        parameters are refused rather than ignored, so that a typo such as `?startls=true`
        cannot silently send mail in clear text. Errors never show the password.
        """
        check_password_encoded(url, "the SMTP URL")
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"invalid SMTP URL {redact_url(url)!r}") from None
        shown = redact_url(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError(f"SMTP URL must start with smtp:// or smtps://, got {shown!r}")
        if not parts.hostname:
            raise ValueError(f"SMTP URL has no host: {shown!r}")
        if parts.path not in ("", "/") or parts.fragment:
            raise ValueError(f"SMTP URL must not have a path or fragment: {shown!r}")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - _QUERY_KEYS)
        if unknown:
            raise ValueError(f"unknown SMTP URL parameter(s) {', '.join(unknown)} in {shown!r}")
        one = {key: values[-1] for key, values in query.items()}

        security: Security = "tls" if parts.scheme == "smtps" else "none"
        starttls = one.get("starttls", "false").lower()
        if starttls in _TRUE:
            if security == "tls":
                raise ValueError(f"smtps:// is already TLS; drop ?starttls=true: {shown!r}")
            security = "starttls"
        elif starttls not in _FALSE:
            raise ValueError(f"starttls must be true or false, got {starttls!r}")

        timeout = DEFAULT_TIMEOUT
        if "timeout" in one:
            try:
                timeout = float(one["timeout"])
            except ValueError:
                timeout = -1.0
            if not 0 < timeout <= 600:
                raise ValueError(f"timeout must be seconds in (0, 600], got {one['timeout']!r}")

        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if not (username or "").isascii() or not (password or "").isascii():
            # smtplib sends AUTH credentials as ASCII; fail at start-up, not on every send.
            raise ValueError(f"SMTP user and password must be ASCII: {shown!r}")
        cafile = Path(one["cafile"]) if one.get("cafile") else None
        return cls(
            host=parts.hostname,
            port=port or (465 if security == "tls" else 25),
            security=security,
            username=username,
            password=password,
            cafile=cafile,
            timeout=timeout,
        )

    def describe(self) -> str:
        """The server as a URL without the password, for logs and error messages."""
        scheme = "smtps" if self.security == "tls" else "smtp"
        user = f"{self.username}@" if self.username else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        options = []
        if self.security == "starttls":
            options.append("starttls=true")
        if self.cafile is not None:
            options.append(f"cafile={self.cafile}")
        query = f"?{'&'.join(options)}" if options else ""
        return f"{scheme}://{user}{host}:{self.port}{query}"

    def tls_context(self) -> ssl.SSLContext | None:
        """The verifying TLS context, or None for plain SMTP.

        With `cafile` only that CA is trusted (a private CA); otherwise the system's CAs.
        Hostname checking stays on in both cases.
        """
        if self.security == "none":
            return None
        cafile = str(self.cafile) if self.cafile is not None else None
        return ssl.create_default_context(cafile=cafile)


class _HeaderClasses(HeaderRegistry):
    """The standard header registry, with the class of each header name made once.

    The stock registry makes a new class (`type(...)`) for every header it parses, again for
    every email: about a sixth of the CPU time of building one with `EmailMessage`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._made: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._made.get(key)
        if made is None:
            made = self._made[key] = super().__getitem__(name)
        return made


# The standard library's folding (RFC 2047 encoded words, RFC 5322 line lengths) for the headers
# that need it: anything but a short line of printable ASCII.
_WIRE = default_policy.clone(linesep="\r\n", header_factory=_HeaderClasses())
# For an internationalized address (RFC 6531), sent with SMTPUTF8: as smtplib's `send_message`.
_WIRE_UTF8 = _WIRE.clone(utf8=True)
_SHORT_LINE = 78  # RFC 5322, 2.1.1: lines SHOULD be at most 78 characters
_IMAGE_SUBTYPE = re.compile(r"[a-z0-9][a-z0-9.+-]*")


def build_email(
    recipient: Recipient, message: Message, mail_from: str, *, now: datetime | None = None
) -> bytes:
    """The email for one delivery, as sent: text part, HTML alternative when the message has
    one, the HTML's inline images beside it (multipart/related).

    `Auto-Submitted: auto-generated` (RFC 3834) stops well-behaved autoresponders from answering
    an alert; the Message-ID uses the sender's domain so it does not depend on the local host
    name, and the message's `reference` when it has one, so an email sent again after a crash
    has the Message-ID of the first. Raises `ValueError` for an unusable address or a header
    with a line break.

    Written as bytes here rather than built as an `EmailMessage` and flattened: the standard
    library parsed every header and Content-Type it set and encoded the bodies in Python, most
    of the CPU time of an email's hand-off. Bodies are quoted-printable (`binascii`, in C) and
    so 7-bit with lines under 77 characters whatever the text; images base64; boundaries begin
    with `=_`, which neither encoding can produce. Headers that are not a short line of
    printable ASCII are folded and encoded by the standard library's policy, as `EmailMessage`
    does.
    """
    domain = _domain(mail_from)
    reference = (
        f"<{message.reference}@{domain}>"
        if message.reference is not None
        else make_msgid(domain=domain)
    )
    to = Address(display_name=recipient.name, addr_spec=recipient.email)
    head = b"".join(
        (
            _header("From", mail_from),
            _header("To", str(to), _WIRE if to.addr_spec.isascii() else _WIRE_UTF8),
            _header("Subject", message.subject),
            _header("Date", format_datetime(now or datetime.now(UTC))),
            _header("Message-ID", reference),
            b"Auto-Submitted: auto-generated\r\n",
            # Exchange/Outlook ignore Auto-Submitted; this asks them not to send out-of-office
            # replies.
            b"X-Auto-Response-Suppress: All\r\nMIME-Version: 1.0\r\n",
        )
    )
    body = _text_part("plain", message.text)
    if message.html is not None:
        html = _text_part("html", message.html)
        if message.images:
            html = _multipart("related", [html, *(_image_part(image) for image in message.images)])
        body = _multipart("alternative", [body, html])
    return head + body


def _header(name: str, value: str, policy: EmailPolicy[EmailMessage] = _WIRE) -> bytes:
    """One header field as sent, CRLF included. Raises `ValueError` for a line break."""
    line = f"{name}: {value}"
    if len(line) <= _SHORT_LINE and line.isascii() and line.isprintable():
        return line.encode("ascii") + b"\r\n"
    return policy.fold_binary(*policy.header_store_parse(name, value))


def _text_part(subtype: str, text: str) -> bytes:
    """A UTF-8 text entity, quoted-printable, its line breaks CRLF."""
    lines = text.encode("utf-8").splitlines()
    encoded = binascii.b2a_qp(b"\n".join(lines) + b"\n", istext=True)
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'.encode("ascii")
        + b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        + encoded.replace(b"\n", b"\r\n")
    )


def _image_part(image: InlineImage) -> bytes:
    """An inline image entity for `cid:` references from the HTML, base64."""
    if not _IMAGE_SUBTYPE.fullmatch(image.subtype):
        raise ValueError(f"not an image subtype: {image.subtype!r}")
    return b"".join(
        (
            f"Content-Type: image/{image.subtype}\r\n".encode("ascii"),
            b"Content-Transfer-Encoding: base64\r\n",
            _header("Content-ID", f"<{image.cid}>"),
            b"Content-Disposition: inline\r\n\r\n",
            base64.encodebytes(image.data).replace(b"\n", b"\r\n"),
        )
    )


def _multipart(subtype: str, parts: Sequence[bytes]) -> bytes:
    """A multipart entity of `parts` (each ending in CRLF). The boundary begins with `=_`:
    quoted-printable writes `=` only before two hex digits or a line break, base64 only as
    padding before a line break, so no part can contain it."""
    boundary = f"=_{secrets.token_hex(16)}".encode("ascii")
    out = [b"Content-Type: multipart/", subtype.encode("ascii"), b';\r\n boundary="']
    out += [boundary, b'"\r\n']
    for part in parts:
        out += [b"\r\n--", boundary, b"\r\n", part]
    out += [b"\r\n--", boundary, b"--\r\n"]
    return b"".join(out)


def _domain(mail_from: str) -> str:
    address = parseaddr(mail_from)[1]
    return address.rpartition("@")[2] or "kneeguard.invalid"


class EmailTransport:
    """Sends a `Message` to a recipient's email address. Connections are reused from one send
    to the next (each used by one thread at a time) until `close_idle`."""

    channel: Channel = "email"

    def __init__(self, settings: SmtpSettings, mail_from: str) -> None:
        """Check the sender and load the TLS context now, so a bad setting fails at start-up."""
        envelope_from = parseaddr(mail_from)[1]
        if "@" not in envelope_from:
            raise ValueError(f"mail_from has no email address: {mail_from!r}")
        self.settings = settings
        self.mail_from = mail_from
        self._envelope_from = envelope_from
        self._tls = settings.tls_context()
        self._idle: list[_Connection] = []
        self._idle_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"EmailTransport({self.settings.describe()!r}, {self.mail_from!r})"

    def send(self, recipient: Recipient, message: Message) -> None:
        """Deliver `message` to `recipient.email`; raises `DeliveryError` on failure."""
        try:
            email = build_email(recipient, message, self.mail_from)
        except (ValueError, TypeError) as exc:
            raise DeliveryError(
                f"cannot build email to {recipient.id}: {exc}", permanent=True
            ) from exc
        server = self.settings.describe()
        log.debug("email to recipient %s via %s", recipient.id, server)
        try:
            refused = self._deliver(email, recipient.email)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            raise DeliveryError(
                self._scrub(f"{server} refused recipient {recipient.id}: {_replies(exc)}"),
                permanent=bool(codes) and all(code >= 500 for code in codes),
            ) from exc
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error
            text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            raise DeliveryError(
                self._scrub(f"{server} answered {exc.smtp_code} {text.strip()}"),
                permanent=exc.smtp_code >= 500,
            ) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise DeliveryError(f"{server} closed the connection: {exc}", permanent=False) from exc
        except smtplib.SMTPException as exc:
            # What is left is configuration: STARTTLS or AUTH required but not offered, no
            # usable AUTH mechanism. Every retry would fail the same way.
            raise DeliveryError(self._scrub(f"{server}: {exc}"), permanent=True) from exc
        except UnicodeError as exc:
            # An address or credential smtplib can only send as ASCII: retrying cannot help.
            raise DeliveryError(self._scrub(f"{server}: {exc}"), permanent=True) from exc
        except OSError as exc:
            # Refused, unreachable, timed out, TLS handshake or certificate failure.
            reason = str(exc) or type(exc).__name__
            raise DeliveryError(self._scrub(f"{server}: {reason}"), permanent=False) from exc
        if refused:
            # Unreachable with one recipient (smtplib raises instead), kept for safety.
            raise DeliveryError(f"{server} refused recipient {recipient.id}", permanent=True)

    def _deliver(self, email: bytes, to: str) -> dict[str, tuple[int, bytes]]:
        """One mail transaction on a kept or a new connection; returns the refused recipients
        (smtplib's contract). A connection that failed is closed, never kept."""
        smtp = self._kept()
        if smtp is not None:
            try:
                return self._transaction(smtp, email, to)
            except (smtplib.SMTPServerDisconnected, OSError):
                if smtp.mail_answered:
                    raise
                # Gone before it answered MAIL FROM: nothing was accepted, so sending again on
                # a new connection cannot deliver twice.
                log.debug("a kept SMTP connection failed before MAIL FROM; opening a new one")
        return self._transaction(self._connect(), email, to)

    def _transaction(
        self, smtp: _Connection, email: bytes, to: str
    ) -> dict[str, tuple[int, bytes]]:
        smtp.mail_answered = False
        try:
            options: tuple[str, ...] = ()
            if not to.isascii():
                # An internationalized address: only a server that offers SMTPUTF8 takes it
                # (a permanent error otherwise), as smtplib's `send_message` does.
                smtp.ehlo_or_helo_if_needed()
                if not smtp.has_extn("smtputf8"):
                    raise smtplib.SMTPNotSupportedError(
                        "the recipient's address needs SMTPUTF8, which the server does not offer"
                    )
                options = ("SMTPUTF8", "BODY=8BITMIME")
            refused = smtp.sendmail(self._envelope_from, [to], email, mail_options=options)
        except BaseException:
            smtp.close()
            raise
        # The server has accepted the message: what happens to the connection now (kept, or
        # closed with a QUIT that may fail) cannot turn into a failed delivery.
        with self._idle_lock:
            self._idle.append(smtp)
        return refused

    def _connect(self) -> _Connection:
        s = self.settings
        smtp: _Connection
        if s.security == "tls":
            smtp = _TlsConnection(s.host, s.port, timeout=s.timeout, context=self._tls)
        else:
            smtp = _Connection(s.host, s.port, timeout=s.timeout)
        try:
            if s.security == "starttls":
                smtp.starttls(context=self._tls)
            if s.username is not None:
                smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _kept(self) -> _Connection | None:
        """An idle connection the server has not closed, or None. After the server's answer to
        DATA the transaction is over (RFC 5321, 4.1.1.4), so the next can begin at once."""
        while True:
            with self._idle_lock:
                if not self._idle:
                    return None
                smtp = self._idle.pop()
            if not _closed_by_server(smtp):
                return smtp
            log.debug("the server closed a kept SMTP connection; opening a new one")
            smtp.close()

    def close_idle(self) -> None:
        """QUIT and close every kept connection (the outbox calls this when it is idle)."""
        with self._idle_lock:
            idle, self._idle = self._idle, []
        for smtp in idle:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()

    def _scrub(self, text: str) -> str:
        """`text` with the password masked, in case a server echoes what it was sent."""
        password = self.settings.password
        return text.replace(password, "***") if password else text


class _Connection(smtplib.SMTP):
    """smtplib's client, which notes whether the server answered MAIL FROM in this
    transaction: until it has, no message can have been accepted."""

    mail_answered = False

    def mail(self, sender: str, options: Sequence[str] = ()) -> tuple[int, bytes]:
        reply = super().mail(sender, options)
        self.mail_answered = True
        return reply


class _TlsConnection(_Connection, smtplib.SMTP_SSL):
    pass


def _closed_by_server(smtp: smtplib.SMTP) -> bool:
    """Whether an idle connection has something to read: the end of the stream, or a reply
    nobody asked for (a 421 before the server closes). Either way it cannot be used."""
    sock = smtp.sock
    if sock is None:
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


def _replies(exc: smtplib.SMTPRecipientsRefused) -> str:
    return "; ".join(
        f"{code} {reply.decode('utf-8', 'replace') if isinstance(reply, bytes) else reply}"
        for code, reply in exc.recipients.values()
    )
