"""Real SMTP and HTTP servers on free ports that record what they are sent."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from testsupport.servers import free_port


class SmtpSink:
    """A real SMTP server (aiosmtpd) on a free port that keeps every message it accepts.

    `reply` can be set to an SMTP reply such as "550 mailbox unavailable" to refuse mail.
    """

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller

        self.port = port or free_port()
        self.messages: list[tuple[float, Any]] = []
        # (time received, envelope recipients) per message: cheap to read while mail arrives,
        # where the parsed messages' headers are parsed again on every access.
        self.received: list[tuple[float, list[str]]] = []
        self.reply: str | None = None
        sink = self

        class Handler:
            async def handle_DATA(  # noqa: N802 - the aiosmtpd API
                self, server: Any, session: Any, envelope: Any
            ) -> str:
                if sink.reply is not None:
                    return sink.reply
                from email import message_from_bytes, policy

                now = time.monotonic()
                parsed = message_from_bytes(envelope.content, policy=policy.default)
                sink.messages.append((now, parsed))
                sink.received.append((now, list(envelope.rcpt_tos)))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def to(self, address: str) -> list[Any]:
        return [m for _, m in self.messages if address in str(m["To"])]


@dataclass(frozen=True)
class Request:
    """One request an `HttpSink` received."""

    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class HttpSink:
    """A real HTTP server on a free port recording every POST and PUT (ntfy, webhooks).

    It answers `status` with `reply` (and a `Location` for a redirect), or, with `hang`, never
    answers until stopped.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.status = 200
        self.reply = b'{"id":"x"}'
        self.hang = False
        self._release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                sink.requests.append(
                    Request(
                        method=self.command,
                        path=self.path,
                        headers={k.lower(): v for k, v in self.headers.items()},
                        body=self.rfile.read(length),
                    )
                )
                if sink.hang:
                    sink._release.wait(10)
                    self.close_connection = True
                    return
                self.send_response(sink.status)
                if 300 <= sink.status < 400:
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(sink.reply)))
                self.end_headers()
                self.wfile.write(sink.reply)

            def do_PUT(self) -> None:
                self.do_POST()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpSink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)
