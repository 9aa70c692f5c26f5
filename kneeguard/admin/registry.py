"""Coaches, athletes and devices: validated input and the rows behind the registry commands."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from contract.topics import ID_PATTERN
from db.models import Athlete, Coach, Device
from kneeguard.clock import Clock, utcnow
from notifier.routing import (
    ATHLETE_CHANNELS,
    COACH_CHANNELS,
    DEFAULT_QUIET_HOURS,
    PreferenceError,
    parse_channels,
    parse_quiet_hours,
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = re.compile(rf"[^@\s<>(),;:\"\[\]\\]{{1,64}}@{_LABEL}(?:\.{_LABEL})*")
DIGEST_CHOICES = ("daily", "weekly", "off")


class RegistryError(ValueError):
    """Bad input to a registry command; the message is one line for the user."""


def check_id(value: str, what: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise RegistryError(f"invalid {what} {value[:80]!r}: use 1 to 64 of A-Z a-z 0-9 _ -")
    return value


def check_email(value: str) -> str:
    if len(value) > 254 or not EMAIL_PATTERN.fullmatch(value):
        raise RegistryError(f"invalid email address {value[:80]!r}")
    return value


def check_timezone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise RegistryError(
            f"unknown timezone {value[:80]!r}: use an IANA name such as Europe/London"
        ) from None
    return value


def check_channels(value: str, allowed: tuple[str, ...]) -> str:
    try:
        names = parse_channels(value, allowed)
    except PreferenceError as exc:
        raise RegistryError(str(exc)) from None
    return ",".join(names)


def check_quiet_hours(value: str | None) -> str:
    try:
        window = parse_quiet_hours(value)
    except PreferenceError as exc:
        raise RegistryError(str(exc)) from None
    if window is None:
        # Stored as "off", not NULL: NULL would read as "not given" and get the default.
        return "off"
    return f"{window[0]:%H:%M}-{window[1]:%H:%M}"


def check_webhook_url(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    if not re.fullmatch(r"https?://[^\s]{1,1990}", value):
        raise RegistryError("webhook URL must start with http:// or https://")
    return value


# Zero-width (non-)joiners are part of how some scripts are written; every other format
# character (bidirectional overrides and isolates, invisible marks) can disguise a name.
_NAME_JOINERS = {"\u200c", "\u200d"}


def _unsafe_in_name(ch: str) -> bool:
    category = unicodedata.category(ch)
    if category == "Cf":
        return ch not in _NAME_JOINERS
    # Controls (C0, DEL, C1), line and paragraph separators, surrogates, private use, unassigned.
    return category in ("Cc", "Zl", "Zp", "Cs", "Co", "Cn")


def check_name(value: str) -> str:
    value = value.strip()
    if not value or len(value) > 200 or any(_unsafe_in_name(ch) for ch in value):
        raise RegistryError(
            "name must be 1 to 200 printable characters, without control or bidirectional ones"
        )
    return value


def check_digest(digest: str, digest_hour: int) -> None:
    if digest not in DIGEST_CHOICES:
        raise RegistryError(f"digest must be one of {', '.join(DIGEST_CHOICES)}")
    if not 0 <= digest_hour <= 23:
        raise RegistryError("digest hour must be between 0 and 23")


def check_webhook(coach: Coach) -> None:
    if "webhook" in coach.channels.split(",") and not (coach.webhook_url and coach.webhook_secret):
        raise RegistryError("the webhook channel needs --webhook-url and --webhook-secret")


@dataclass(frozen=True, slots=True)
class Registry:
    """Registry operations, each in its own transaction."""

    sessions: sessionmaker[Session]
    clock: Clock = utcnow

    def add_coach(
        self,
        *,
        coach_id: str,
        name: str,
        email: str,
        timezone: str = "UTC",
        digest: str = "daily",
        digest_hour: int = 7,
        channels: str = "email",
        quiet_hours: str | None = DEFAULT_QUIET_HOURS,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> Coach:
        check_digest(digest, digest_hour)
        coach = Coach(
            id=check_id(coach_id, "coach id"),
            name=check_name(name),
            email=check_email(email),
            timezone=check_timezone(timezone),
            digest=digest,
            digest_hour=digest_hour,
            channels=check_channels(channels, COACH_CHANNELS),
            quiet_hours=check_quiet_hours(quiet_hours),
            webhook_url=check_webhook_url(webhook_url),
            webhook_secret=webhook_secret or None,
            created_at=self.clock(),
        )
        check_webhook(coach)
        with self.sessions() as session:
            if session.get(Coach, coach.id) is not None:
                raise RegistryError(f"coach {coach.id!r} already exists")
            session.add(coach)
            self._commit(session, f"coach {coach.id!r} already exists")
        return coach

    def add_athlete(
        self,
        *,
        athlete_id: str,
        name: str,
        email: str,
        timezone: str = "UTC",
        coach_id: str | None = None,
        ntfy_topic: str | None = None,
        channels: str = "email,push,inapp",
        quiet_hours: str | None = DEFAULT_QUIET_HOURS,
    ) -> Athlete:
        if ntfy_topic is not None:
            check_id(ntfy_topic, "ntfy topic")
        athlete = Athlete(
            id=check_id(athlete_id, "athlete id"),
            name=check_name(name),
            email=check_email(email),
            timezone=check_timezone(timezone),
            coach_id=check_id(coach_id, "coach id") if coach_id is not None else None,
            ntfy_topic=ntfy_topic,
            channels=check_channels(channels, ATHLETE_CHANNELS),
            quiet_hours=check_quiet_hours(quiet_hours),
            created_at=self.clock(),
        )
        with self.sessions() as session:
            if session.get(Athlete, athlete.id) is not None:
                raise RegistryError(f"athlete {athlete.id!r} already exists")
            if coach_id is not None and session.get(Coach, coach_id) is None:
                raise RegistryError(f"unknown coach {coach_id!r}")
            session.add(athlete)
            self._commit(session, f"athlete {athlete.id!r} already exists")
        return athlete

    def add_device(self, *, athlete_id: str, device_id: str) -> Device:
        device = Device(
            athlete_id=check_id(athlete_id, "athlete id"),
            id=check_id(device_id, "device id"),
            created_at=self.clock(),
        )
        with self.sessions() as session:
            if session.get(Athlete, athlete_id) is None:
                raise RegistryError(f"unknown athlete {athlete_id!r}")
            if session.get(Device, (athlete_id, device_id)) is not None:
                raise RegistryError(
                    f"device {device_id!r} is already registered to athlete {athlete_id!r}"
                )
            session.add(device)
            self._commit(
                session, f"device {device_id!r} is already registered to athlete {athlete_id!r}"
            )
        return device

    def remove_device(self, *, athlete_id: str, device_id: str) -> bool:
        """Unregister a device (its runs and check-ins stay); False if it was not registered."""
        check_id(athlete_id, "athlete id")
        check_id(device_id, "device id")
        with self.sessions() as session:
            device = session.get(Device, (athlete_id, device_id))
            if device is None:
                return False
            session.delete(device)
            session.commit()
        return True

    def devices(self, athlete_id: str | None = None) -> Sequence[Device]:
        """Registered devices, by athlete and id, optionally only one athlete's."""
        with self.sessions() as session:
            query = select(Device).order_by(Device.athlete_id, Device.id)
            if athlete_id is not None:
                query = query.where(Device.athlete_id == athlete_id)
            return session.scalars(query).all()

    def update_coach(self, coach_id: str, **changes: Any) -> Coach:
        """Change a coach's details; only the given (not None) fields change."""
        with self.sessions() as session:
            coach = session.get(Coach, coach_id)
            if coach is None:
                raise RegistryError(f"unknown coach {coach_id!r}")
            checks: dict[str, Callable[[Any], Any]] = {
                "name": check_name,
                "email": check_email,
                "timezone": check_timezone,
                "channels": lambda v: check_channels(v, COACH_CHANNELS),
                "quiet_hours": check_quiet_hours,
                "webhook_url": check_webhook_url,
                "webhook_secret": lambda v: v or None,
                "digest": lambda v: v,
                "digest_hour": lambda v: v,
            }
            self._apply(coach, checks, changes)
            check_digest(coach.digest, coach.digest_hour)
            check_webhook(coach)
            session.commit()
            return coach

    def update_athlete(
        self, athlete_id: str, *, remove_coach: bool = False, **changes: Any
    ) -> Athlete:
        """Change an athlete's details; only the given (not None) fields change.
        `remove_coach` leaves the athlete without a coach (no digests, no coach alerts)."""
        with self.sessions() as session:
            athlete = session.get(Athlete, athlete_id)
            if athlete is None:
                raise RegistryError(f"unknown athlete {athlete_id!r}")
            if remove_coach:
                if changes.get("coach_id"):
                    raise RegistryError("give a coach or remove it, not both")
                athlete.coach_id = None
            coach_id = changes.get("coach_id")
            if coach_id and session.get(Coach, coach_id) is None:
                raise RegistryError(f"unknown coach {coach_id!r}")
            checks: dict[str, Callable[[Any], Any]] = {
                "name": check_name,
                "email": check_email,
                "timezone": check_timezone,
                "coach_id": lambda v: check_id(v, "coach id"),
                "ntfy_topic": lambda v: check_id(v, "ntfy topic"),
                "channels": lambda v: check_channels(v, ATHLETE_CHANNELS),
                "quiet_hours": check_quiet_hours,
            }
            self._apply(athlete, checks, changes)
            session.commit()
            return athlete

    @staticmethod
    def _apply(row: Any, checks: dict[str, Callable[[Any], Any]], changes: dict[str, Any]) -> None:
        for name, value in changes.items():
            if value is not None:
                setattr(row, name, checks[name](value))

    def coaches(self) -> Sequence[Coach]:
        with self.sessions() as session:
            return session.scalars(select(Coach).order_by(Coach.id)).all()

    def athletes(self, coach_id: str | None = None) -> Sequence[tuple[Athlete, int]]:
        """Athletes with their number of devices, optionally only one coach's."""
        with self.sessions() as session:
            query = select(Athlete).order_by(Athlete.id)
            if coach_id is not None:
                query = query.where(Athlete.coach_id == coach_id)
            athletes = session.scalars(query).all()
            counts: dict[str, int] = {}
            for device_athlete in session.scalars(select(Device.athlete_id)):
                counts[device_athlete] = counts.get(device_athlete, 0) + 1
            return [(athlete, counts.get(athlete.id, 0)) for athlete in athletes]

    @staticmethod
    def _commit(session: Session, duplicate_message: str) -> None:
        try:
            session.commit()
        except IntegrityError:
            # Two commands adding the same id at once: the loser sees the same message.
            session.rollback()
            raise RegistryError(duplicate_message) from None
