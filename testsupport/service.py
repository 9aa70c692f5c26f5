"""`python -m kneeguard run` as a separate process, with its log collected."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from testsupport.servers import free_port, wait_until


class ServiceProcess:
    """`python -m kneeguard run` (or other `args`) with its stderr collected line by line."""

    def __init__(
        self, env: dict[str, str], args: Sequence[str] = ("run",), cwd: Path | None = None
    ) -> None:
        self.lines: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "kneeguard", *args],
            env=env,
            cwd=cwd,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        self._reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    @property
    def pid(self) -> int:
        return self.process.pid

    def tail(self, n: int = 20) -> str:
        return "\n".join(self.lines[-n:])

    def wait_subscribed(self, timeout: float = 20) -> None:
        assert wait_until(lambda: "subscribed to" in self.log, timeout), self.log

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        code = self.process.wait(timeout)
        self._reader.join(5)
        return code


def service_env(db_url: str, broker_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNEEGUARD_")}
    env.update(
        KNEEGUARD_DATABASE_URL=db_url,
        KNEEGUARD_MQTT_URL=broker_url,
        KNEEGUARD_LOG_LEVEL="INFO",
        KNEEGUARD_WEB_BIND=f"127.0.0.1:{free_port()}",
    )
    env.update(extra)  # may override the defaults above
    return env


@contextmanager
def service(db_url: str, broker_url: str, **extra: str) -> Iterator[ServiceProcess]:
    proc = ServiceProcess(service_env(db_url, broker_url, **extra))
    try:
        yield proc
    finally:
        if proc.process.poll() is None:
            proc.process.kill()
            proc.wait()
