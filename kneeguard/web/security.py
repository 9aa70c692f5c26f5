"""Secrets, signed links, one-time tokens and CSRF for the web app.

Links are signed with itsdangerous (timestamped, one salt per purpose, so a check-in link can
never be replayed as an acknowledge link). An athlete's links carry the athlete's link
generation: `revoke_links` raises it and every earlier link stops working. One-time sign-in
links and API tokens are random, shown once and stored only as their SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Connection, Engine, select, update

from db.bulk import insert_or_skip
from db.models import AthleteLink, WebSecret
from kneeguard.settings import Settings

CHECKIN_LINK_AGE: Final = timedelta(days=7)
ACK_LINK_AGE: Final = timedelta(days=30)
PERSONAL_LINK_AGE: Final = timedelta(days=365)
SIGN_IN_LINK_AGE: Final = timedelta(minutes=15)
SESSION_AGE: Final = timedelta(days=14)
FORM_AGE: Final = timedelta(days=1)

PURPOSES: Final = ("checkin", "ack", "personal", "coach-ack", "session", "form", "csrf")


class LinkError(Exception):
    """A link or token that cannot be used; the message is safe to show."""


class SecretKeyError(RuntimeError):
    """The configured secret key cannot be used."""


def load_secret_key(settings: Settings, engine: Engine, now: datetime) -> str:
    """KNEEGUARD_SECRET_KEY, else the file, else the key kept in the database (made once)."""
    if settings.secret_key is not None:
        key = settings.secret_key.get_secret_value()
    elif settings.secret_key_file is not None:
        try:
            key = settings.secret_key_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretKeyError(
                f"cannot read KNEEGUARD_SECRET_KEY_FILE {settings.secret_key_file}: "
                f"{exc.strerror or type(exc).__name__}"
            ) from None
    else:
        with engine.begin() as conn:
            return stored_secret(conn, "signing-key", now)
    if len(key) < 32:
        raise SecretKeyError("the secret key must be at least 32 characters long")
    return key


def stored_secret(conn: Connection, name: str, now: datetime) -> str:
    """The named secret from the database; the first caller creates it, every replica reads the
    same one (the insert does nothing when another got there first)."""
    conn.execute(
        insert_or_skip(conn, WebSecret, "name").values(
            name=name, value=secrets.token_urlsafe(48), created_at=now
        )
    )
    return conn.execute(select(WebSecret.value).where(WebSecret.name == name)).scalar_one()


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Signer:
    """Signs and checks the web app's tokens with one secret key."""

    key: str

    def _serializer(self, purpose: str) -> URLSafeTimedSerializer:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        return URLSafeTimedSerializer(self.key, salt=f"kneeguard.{purpose}")

    def sign(self, purpose: str, data: Any) -> str:
        return str(self._serializer(purpose).dumps(data))

    def check(self, purpose: str, token: str, max_age: timedelta) -> Any:
        """The signed data, or LinkError when the token is forged, for another purpose or old."""
        try:
            return self._serializer(purpose).loads(token, max_age=int(max_age.total_seconds()))
        except SignatureExpired:
            raise LinkError("this link has expired") from None
        except BadSignature:
            raise LinkError("this link is not valid") from None

    def csrf_for(self, cookie: str) -> str:
        """The form token that goes with a browser's CSRF cookie (double submit, signed)."""
        return hmac.new(self.key.encode(), f"csrf:{cookie}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, cookie: str | None, field: str | None) -> bool:
        if not cookie or not field:
            return False
        return hmac.compare_digest(self.csrf_for(cookie), field)


def link_generation(conn: Connection, athlete_id: str) -> int:
    found = conn.execute(
        select(AthleteLink.generation).where(AthleteLink.athlete_id == athlete_id)
    ).scalar_one_or_none()
    return found or 0


def revoke_links(conn: Connection, athlete_id: str, now: datetime) -> int:
    """End every link issued to the athlete so far; returns the new generation."""
    conn.execute(
        insert_or_skip(conn, AthleteLink, "athlete_id").values(
            athlete_id=athlete_id, generation=0, revoked_at=None
        )
    )
    conn.execute(
        update(AthleteLink)
        .where(AthleteLink.athlete_id == athlete_id)
        .values(generation=AthleteLink.generation + 1, revoked_at=now)
    )
    return link_generation(conn, athlete_id)
