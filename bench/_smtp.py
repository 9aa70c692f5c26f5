"""A real SMTP server for the benchmarks, in a process of its own."""

from __future__ import annotations

import multiprocessing
import queue
import time
from multiprocessing.queues import Queue as MPQueue
from multiprocessing.synchronize import Event as MPEvent
from typing import Any

from bench import BenchError
from testsupport import free_port

_MP = multiprocessing.get_context("spawn")


class SinkProcess:
    """A real SMTP server (aiosmtpd) in a process of its own that notes, for every message it
    accepts, when (this machine's monotonic clock) and for whom, and parses nothing: the time
    to its reply is the server's, not that of this benchmark's other work (publishing the red
    flags, polling the database) in the same interpreter."""

    def __init__(self) -> None:
        self.port = free_port()
        self._queue: MPQueue[tuple[float, list[str]]] = _MP.Queue()
        self._ready = _MP.Event()
        self._stop = _MP.Event()
        self._process = _MP.Process(
            target=_serve_smtp, args=(self.port, self._queue, self._ready, self._stop), daemon=True
        )
        self._received: list[tuple[float, list[str]]] = []

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SinkProcess:
        self._process.start()
        if not self._ready.wait(30):
            raise BenchError("the SMTP server did not start")
        return self

    @property
    def received(self) -> list[tuple[float, list[str]]]:
        while True:
            try:
                self._received.append(self._queue.get_nowait())
            except queue.Empty:
                return self._received

    def stop(self) -> None:
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


def _serve_smtp(
    port: int, out: MPQueue[tuple[float, list[str]]], ready: MPEvent, stop: MPEvent
) -> None:
    from aiosmtpd.controller import Controller

    class Handler:
        async def handle_DATA(  # noqa: N802 - the aiosmtpd API
            self, server: object, session: object, envelope: Any
        ) -> str:
            out.put((time.monotonic(), list(envelope.rcpt_tos)))
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    stop.wait()
    controller.stop()
