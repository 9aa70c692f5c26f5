"""Serving the web app: uvicorn on its own thread inside `kneeguard run`, stopped on SIGTERM.

uvicorn runs the ASGI app with its own event loop; the process's signal handlers stay the
service's (uvicorn installs none off the main thread), and `stop` asks the server to finish
its requests and exit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime

import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from contract.topics import Topics
from ingest.writer import Stored
from kneeguard.settings import Settings
from kneeguard.web.app import create_app
from kneeguard.web.checkin import WebCheckins
from kneeguard.web.context import Mailer, Upload, WebContext
from kneeguard.web.security import Signer, load_secret_key

log = logging.getLogger(__name__)


def split_bind(bind: str) -> tuple[str, int]:
    host, _, port = bind.rpartition(":")
    return host.strip("[]"), int(port)


def build_context(
    settings: Settings,
    engine: Engine,
    on_stored: Callable[[Sequence[Stored]], None],
    clock: Callable[[], datetime],
    mailer: Mailer | None = None,
    upload: Upload | None = None,
) -> WebContext:
    signer = Signer(load_secret_key(settings, engine, clock()))
    checkins = WebCheckins(engine, Topics(settings.topic_prefix), on_stored)
    return WebContext(settings, engine, signer, checkins, mailer=mailer, upload=upload, clock=clock)


class WebServer:
    """The web app on `KNEEGUARD_WEB_BIND`, on a thread of its own."""

    def __init__(self, ctx: WebContext | None, bind: str, app: FastAPI | None = None) -> None:
        """Serves `create_app(ctx)`, or `app` when given (the operators' endpoints alone)."""
        host, port = split_bind(bind)
        self.ctx = ctx
        if app is None:
            assert ctx is not None, "a web app needs its context"
            app = create_app(ctx)
        self.config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,  # paths carry signed links; they stay out of the log
            server_header=False,
            proxy_headers=True,
            timeout_graceful_shutdown=10,
        )
        self.server = uvicorn.Server(self.config)
        self._thread: threading.Thread | None = None

    @property
    def started(self) -> bool:
        return bool(self.server.started)

    @property
    def failed(self) -> bool:
        """The server thread ended without being asked to (e.g. the port was taken)."""
        return (
            self._thread is not None and not self._thread.is_alive() and not self.server.should_exit
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="web", daemon=True)
        self._thread.start()
        log.info("web app on http://%s:%d", self.config.host, self.config.port)

    def stop(self, timeout: float = 15) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
