"""What every route needs, built once by the composition root and handed to `create_app`."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from kneeguard.clock import Clock, utcnow
from kneeguard.settings import Settings
from kneeguard.web.checkin import WebCheckins
from kneeguard.web.links import Links
from kneeguard.web.security import Signer
from notifier.base import Message, Recipient

if TYPE_CHECKING:
    from ingest.files.importer import FileOutcome

Mailer = Callable[[Recipient, Message], None]
Upload = Callable[[str, str, bytes], "FileOutcome"]


@dataclass
class RateLimit:
    """At most `limit` events per key in `window` seconds (in this process)."""

    limit: int
    window: float
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, deque[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def allow(self, key: str) -> bool:
        now = self.clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            if len(self._events) > 10_000:
                self._events = {k: v for k, v in self._events.items() if v}
            return True


@dataclass
class WebContext:
    settings: Settings
    engine: Engine
    signer: Signer
    checkins: WebCheckins
    mailer: Mailer | None = None
    upload: Upload | None = None
    clock: Clock = utcnow
    sign_in_per_email: RateLimit = field(default_factory=lambda: RateLimit(3, 900))
    sign_in_per_client: RateLimit = field(default_factory=lambda: RateLimit(20, 900))
    on_alert_change: Callable[[], None] = lambda: None
    templates: Jinja2Templates = field(init=False)
    links: Links = field(init=False)
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        from kneeguard.web.templating import make_templates

        self.templates = make_templates()
        self.links = Links(self.settings.public_url, self.signer)

    @property
    def secure_cookies(self) -> bool:
        return self.settings.public_url.startswith("https://")

    def now(self) -> datetime:
        return self.clock()
