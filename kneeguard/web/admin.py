"""What the operator's commands do with links and tokens (`kneeguard athlete link`,
`kneeguard coach link`, `kneeguard coach token`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, insert, select

from db.models import ApiToken, Athlete, Coach
from kneeguard.settings import Settings
from kneeguard.web.links import Links
from kneeguard.web.security import (
    Signer,
    link_generation,
    load_secret_key,
    new_token,
    revoke_links,
    token_hash,
)


class UnknownError(LookupError):
    """No athlete or coach with that id."""


def links_for(settings: Settings, engine: Engine, now: datetime) -> Links:
    return Links(settings.public_url, Signer(load_secret_key(settings, engine, now)))


def athlete_link(settings: Settings, engine: Engine, athlete_id: str, now: datetime) -> str:
    """The athlete's long-lived personal link (check-in form and open alerts)."""
    links = links_for(settings, engine, now)
    with engine.connect() as conn:
        if conn.execute(select(Athlete.id).where(Athlete.id == athlete_id)).first() is None:
            raise UnknownError(f"unknown athlete {athlete_id!r}")
        return links.personal(athlete_id, link_generation(conn, athlete_id))


def revoke_athlete_links(engine: Engine, athlete_id: str, now: datetime) -> int:
    with engine.begin() as conn:
        if conn.execute(select(Athlete.id).where(Athlete.id == athlete_id)).first() is None:
            raise UnknownError(f"unknown athlete {athlete_id!r}")
        return revoke_links(conn, athlete_id, now)


def coach_link(settings: Settings, engine: Engine, coach_id: str, now: datetime) -> str:
    """A one-time sign-in link (15 minutes) for a coach."""
    links = links_for(settings, engine, now)
    with engine.begin() as conn:
        if conn.execute(select(Coach.id).where(Coach.id == coach_id)).first() is None:
            raise UnknownError(f"unknown coach {coach_id!r}")
        return links.sign_in(conn, coach_id, now)


def coach_token(engine: Engine, coach_id: str, now: datetime) -> str:
    """A new API bearer token for the coach; only its hash is kept."""
    token = new_token()
    with engine.begin() as conn:
        if conn.execute(select(Coach.id).where(Coach.id == coach_id)).first() is None:
            raise UnknownError(f"unknown coach {coach_id!r}")
        conn.execute(
            insert(ApiToken).values(coach_id=coach_id, token_hash=token_hash(token), created_at=now)
        )
    return token
