"""Stand-ins that let `kneeguard demo` run on a machine with no servers: an embedded MQTT broker
and an SMTP server that writes every email to a folder.

Both are for demonstrations only. The broker (amqtt, pure Python) has no passwords, no ACL and
no persistence, so it must never carry real athletes' data: production uses mosquitto with the
config in deploy/. The mail folder replaces a mail server so a newcomer can read exactly what
athletes and coaches would receive.
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from ingest.mqtt import BrokerAddress, BrokerConfigError
from kneeguard.simulation.publish import Publisher, PublishError

__all__ = [
    "DemoError",
    "EmbeddedBroker",
    "MailFile",
    "MailFolder",
    "discard_session",
    "free_port",
    "probe_broker",
]

log = logging.getLogger(__name__)


class DemoError(RuntimeError):
    """A demo stand-in cannot run; the message is one line for the user."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def probe_broker(url: str, timeout: float = 2.0) -> str | None:
    """None if an MQTT broker at `url` accepts a connection with the URL's credentials within
    `timeout` seconds; otherwise why not, in a few words (for the fallback notice)."""
    try:
        publisher = Publisher(url, client_id="kneeguard-demo-probe", timeout=timeout)
    except BrokerConfigError as exc:
        return str(exc)
    try:
        publisher.connect()
    except PublishError as exc:
        return str(exc)
    publisher.close()
    return None


def discard_session(url: str, client_id: str, timeout: float = 5.0) -> None:
    """End the persistent session `client_id` left on a shared broker.

    The service connects with a persistent session; left behind on a real broker it would
    queue messages for a client that never returns. Connecting once with a clean session under
    the same id makes the broker drop it.
    """
    address = BrokerAddress.from_url(url)
    connected = threading.Event()
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=True,
        protocol=MQTTProtocolVersion.MQTTv311,
    )
    if address.username is not None:
        client.username_pw_set(address.username, address.password)
    if address.tls:
        client.tls_set(ca_certs=address.cafile)
    client.on_connect = lambda *args: connected.set()
    try:
        client.connect(address.host, address.port)
    except OSError as exc:
        log.warning("could not remove the demo session from the broker: %s", exc)
        return
    client.loop_start()
    connected.wait(timeout)
    client.disconnect()
    client.loop_stop()


class EmbeddedBroker:
    """An amqtt broker on 127.0.0.1, in its own thread and event loop — for demos only.

    Anonymous, no ACL, in memory, MQTT 3.1.1 only: the service talks to it with 3.1.1 (QoS 1,
    its persistent session), so a retained publish forwarded live is not refused here.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        # amqtt speaks MQTT 3.1.1 only.
        return f"mqtt://127.0.0.1:{self.port}?protocol=3.1.1"

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker  # type: ignore[import-untyped]  # noqa: F401
        except ImportError as exc:
            raise DemoError(
                f"the embedded demo broker needs amqtt ({exc}); install it with "
                "`pip install amqtt`, or start mosquitto and set KNEEGUARD_MQTT_URL"
            ) from None
        # amqtt logs every connection at INFO and client hang-ups as warnings: noise in a demo.
        logging.getLogger("amqtt").setLevel(logging.ERROR)
        logging.getLogger("transitions").setLevel(logging.ERROR)
        self._thread = threading.Thread(target=self._run, name="demo-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise DemoError(f"the embedded demo broker did not start within {timeout:g} s")
        if self._error is not None:
            raise DemoError(f"the embedded demo broker did not start: {self._error}")
        return self

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(); the thread must not die silently
            self._error = exc
            self._ready.set()
        finally:
            loop.close()

    async def _serve(self) -> None:
        from amqtt.broker import Broker

        self._stop = asyncio.Event()
        broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await broker.start()
        self._ready.set()
        await self._stop.wait()
        await broker.shutdown()

    def stop(self, timeout: float = 15.0) -> None:
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(timeout)


@dataclass(frozen=True, slots=True)
class MailFile:
    """One email written to the mail folder."""

    path: Path
    to: str
    subject: str
    received_at: datetime
    view: Path | None  # the HTML (or text) part, for a browser


_WRITTEN = re.compile(r"^\d{3}-.*\.(eml|html|txt)$")


class MailFolder:
    """An SMTP server (aiosmtpd) on 127.0.0.1 that writes each email it accepts to a folder:
    `NNN-recipient-subject.eml` (the raw message), its readable part beside it, and an
    `index.html` listing them all, newest last."""

    def __init__(self, directory: Path, port: int | None = None) -> None:
        self.directory = directory
        self.port = port or free_port()
        self.files: list[MailFile] = []
        self._lock = threading.Lock()
        self._controller: Any = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def index(self) -> Path:
        return self.directory / "index.html"

    def clear(self) -> None:
        """Remove what an earlier demo wrote here (and nothing else)."""
        if not self.directory.is_dir():
            return
        for path in self.directory.iterdir():
            if path.is_file() and (_WRITTEN.match(path.name) or path.name == "index.html"):
                path.unlink()

    def start(self) -> MailFolder:
        try:
            from aiosmtpd.controller import Controller
        except ImportError as exc:
            raise DemoError(
                f"the demo mail folder needs aiosmtpd ({exc}); install it with "
                "`pip install aiosmtpd`"
            ) from None
        self.directory.mkdir(parents=True, exist_ok=True)
        self._write_index()
        folder = self

        class Handler:
            async def handle_DATA(  # noqa: N802 - the aiosmtpd API
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                content = envelope.content
                raw = content if isinstance(content, bytes) else str(content).encode()
                try:
                    folder.store(raw)
                except OSError as exc:
                    log.error("could not write an email to %s: %s", folder.directory, exc)
                    return "451 could not store the message"
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def store(self, raw: bytes) -> MailFile:
        """Write one message and refresh the index."""
        parsed = message_from_bytes(raw, policy=policy.default)
        subject = str(parsed.get("Subject", "(no subject)"))
        to = ", ".join(addr for _, addr in getaddresses([str(parsed.get("To", ""))]) if addr)
        with self._lock:
            number = len(self.files) + 1
            stem = f"{number:03d}-{_slug(to.split('@')[0])}-{_slug(subject)[:60]}".rstrip("-")
            path = self.directory / f"{stem}.eml"
            path.write_bytes(raw)
            view = self._write_view(parsed, stem) if isinstance(parsed, EmailMessage) else None
            mail = MailFile(path, to, subject, datetime.now(UTC), view)
            self.files.append(mail)
            self._write_index()
        return mail

    def _write_view(self, parsed: EmailMessage, stem: str) -> Path | None:
        part = parsed.get_body(("html", "plain"))
        if part is None:
            return None
        content = part.get_content()
        if part.get_content_subtype() == "html":
            path = self.directory / f"{stem}.html"
            path.write_text(content, encoding="utf-8")
        else:
            path = self.directory / f"{stem}.txt"
            path.write_text(content, encoding="utf-8")
        return path

    def _write_index(self) -> None:
        rows = "\n".join(
            "<tr><td>{n}</td><td>{at}</td><td>{to}</td><td>{subject}</td><td>{links}</td></tr>".format(
                n=n,
                at=mail.received_at.strftime("%H:%M:%S"),
                to=html.escape(mail.to),
                subject=html.escape(mail.subject),
                links=" ".join(
                    f'<a href="{html.escape(p.name)}">{label}</a>'
                    for label, p in (("read", mail.view), ("raw .eml", mail.path))
                    if p is not None
                ),
            )
            for n, mail in enumerate(self.files, start=1)
        )
        page = _INDEX.format(count=len(self.files), rows=rows or _NO_MAIL)
        tmp = self.index.with_suffix(".tmp")
        tmp.write_text(page, encoding="utf-8")
        tmp.replace(self.index)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower() or "mail"


_NO_MAIL = '<tr><td colspan="5">No email yet.</td></tr>'
_INDEX = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>KneeGuard demo mail ({count})</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; }}
table {{ border-collapse: collapse; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.4em 0.8em; text-align: left; }}
</style>
</head>
<body>
<h1>KneeGuard demo mail</h1>
<p>Every email the demo sent ({count}), as athletes and coaches would receive it. Written by
the demo's local SMTP sink; nothing left this machine. KneeGuard gives conservative guidance,
not a diagnosis.</p>
<table>
<tr><th>#</th><th>received</th><th>to</th><th>subject</th><th>open</th></tr>
{rows}
</table>
</body>
</html>
"""
