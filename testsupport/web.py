"""The web app served for real: `Service(only="web")` on a free port, an SMTP sink, httpx."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import Engine, insert, select

from db.engine import make_engine, session_factory
from db.models import Alert, ApiToken
from kneeguard.admin.registry import Registry
from kneeguard.app.service import Service
from kneeguard.settings import Settings
from kneeguard.web.security import new_token, token_hash
from testsupport import SmtpSink, free_port, insert_run, wait_until

SECRET = "test-secret-key-that-is-long-enough-0123456789"


@dataclass
class WebApp:
    service: Service
    engine: Engine
    base: str
    smtp: SmtpSink

    @property
    def ctx(self) -> Any:
        assert self.service.web is not None
        return self.service.web.ctx

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10, follow_redirects=False, **kwargs)

    def drain_outbox(self) -> int:
        return self.service.outbox.run_once()


@contextmanager
def serve(db_url: str, only: str = "web", **settings: Any) -> Iterator[WebApp]:
    smtp = SmtpSink().start()
    port = free_port()
    config = Settings(
        database_url=db_url,
        smtp_url=smtp.url,
        web_bind=f"127.0.0.1:{port}",
        public_url=settings.pop("public_url", f"http://127.0.0.1:{port}"),
        mqtt_url=settings.pop("mqtt_url", f"mqtt://127.0.0.1:{free_port()}"),
        **settings,
    )
    engine = make_engine(db_url)
    service = Service(config, engine, only=only, serve_web=True)
    service.start()
    try:
        assert service.web is not None
        assert wait_until(lambda: service.web is not None and service.web.started, 10)
        yield WebApp(service, engine, f"http://127.0.0.1:{port}", smtp)
    finally:
        service.stop()
        smtp.stop()


def seed(engine: Engine) -> Registry:
    """Two coaches with one athlete each (and a second athlete for c1)."""
    reg = Registry(session_factory(engine))
    reg.add_coach(coach_id="c1", name="Coach One", email="one@club.test")
    reg.add_coach(coach_id="c2", name="Coach Two", email="two@club.test")
    reg.add_athlete(
        athlete_id="a1", name="Ann Runner", email="ann@club.test", coach_id="c1", quiet_hours="off"
    )
    reg.add_athlete(athlete_id="a2", name="Bo Runner", email="bo@club.test", coach_id="c1")
    reg.add_athlete(athlete_id="b1", name="Cy Other", email="cy@club.test", coach_id="c2")
    return reg


def add_run(engine: Engine, athlete_id: str, start: datetime, km: float = 10.0) -> str:
    with engine.begin() as conn:
        return insert_run(conn, athlete_id, start, km)


def api_token(engine: Engine, coach_id: str) -> str:
    token = new_token()
    with engine.begin() as conn:
        conn.execute(
            insert(ApiToken).values(
                coach_id=coach_id, token_hash=token_hash(token), created_at=datetime.now(UTC)
            )
        )
    return token


def hidden(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert found, f"no hidden field {name}"
    return found.group(1)


def links_in(text: str) -> list[str]:
    return re.findall(r"https?://[^\s\"<>]+", text)


def body_of(message: Any) -> str:
    part = message.get_body(preferencelist=("plain",))
    return str(part.get_content()) if part is not None else ""


def checkin_link(app: WebApp, athlete_id: str = "a1", run_uuid: str | None = None) -> str:
    with app.engine.connect() as conn:
        return str(app.ctx.links.athlete_links(conn, athlete_id).checkin(run_uuid))


def path_of(url: str) -> str:
    return "/" + url.split("/", 3)[3]


def open_form(client: httpx.Client, path: str) -> tuple[str, dict[str, str]]:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return page.text, {
        "csrf_token": hidden(page.text, "csrf_token"),
        "form_token": hidden(page.text, "form_token"),
    }


def submit(app: WebApp, athlete_id: str, pain: str, *symptoms: str) -> None:
    path = path_of(checkin_link(app, athlete_id))
    with app.client() as client:
        _, fields = open_form(client, path)
        reply = client.post(path, data={**fields, "pain_score": pain, "symptom": list(symptoms)})
        assert reply.status_code == 303, reply.text


def alert_of(app: WebApp, athlete_id: str) -> Any:
    with app.engine.connect() as conn:
        query = select(Alert).where(Alert.athlete_id == athlete_id).order_by(Alert.id).limit(1)
        return conn.execute(query).one()


def use(app: WebApp, client: httpx.Client, link: str) -> httpx.Response:
    path = "/" + link.split("/", 3)[3]
    page = client.get(path)
    reply = client.post(path, data={"csrf_token": hidden(page.text, "csrf_token")})
    return reply
