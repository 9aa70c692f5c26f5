"""The post-run check-in prompt by email and push, with the athlete's signed check-in link.

The MQTT prompt goes to the athlete's devices as before; this sends the same request to the
channels the athlete chose (email, and push with ntfy's "view" action). A prompt is a reminder:
one that fails is logged, not retried (the run's prompt row is already claimed).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, select

from db.models import Athlete
from kneeguard.web.links import Links
from notifier.base import Action, Message, Recipient, Transport
from notifier.routing import ATHLETE_CHANNELS, PreferenceError, parse_channels

log = logging.getLogger(__name__)


def prompt_message(name: str, km: float, link: str) -> Message:
    subject = f"KneeGuard: how is your knee after your {km:.1f} km run?"
    text = (
        f"Hello {name},\n\nhow does your knee feel after your {km:.1f} km run? "
        f"It takes a minute:\n\n{link}\n\nThe link is yours alone and works for 7 days.\n"
    )
    html = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"></head>'
        '<body style="font-family: sans-serif; line-height: 1.5;">'
        f"<p>Hello {_escape(name)},</p><p>how does your knee feel after your {km:.1f} km run? "
        "It takes a minute:</p>"
        f'<p><a href="{_escape(link)}" style="display:inline-block;padding:0.6em 1.2em;'
        'background:#1f3b57;color:#fff;text-decoration:none;border-radius:6px;">'
        "Answer the check-in</a></p>"
        "<p>The link is yours alone and works for 7 days.</p></body></html>"
    )
    return Message(
        subject=subject,
        text=text,
        html=html,
        severity="info",
        tags=("knee", "checkin"),
        data={"type": "checkin_request", "url": link},
        actions=(Action("view", "Check in", link),),
    )


def _escape(value: str) -> str:
    from html import escape

    return escape(value, quote=True)


@dataclass
class PromptSender:
    engine: Engine
    links: Links
    transports: Mapping[str, Transport]

    def send(self, athlete_id: str, run_uuid: str, distance_m: float) -> None:
        with self.engine.connect() as conn:
            athlete = conn.execute(select(Athlete).where(Athlete.id == athlete_id)).one_or_none()
            if athlete is None:
                return
            link = self.links.athlete_links(conn, athlete_id).checkin(run_uuid)
        try:
            channels = parse_channels(athlete.channels, ATHLETE_CHANNELS)
        except PreferenceError:
            channels = ()
        recipient = Recipient(
            "athlete",
            athlete.id,
            athlete.name,
            athlete.email,
            athlete.timezone,
            athlete_id=athlete.id,
            ntfy_topic=athlete.ntfy_topic,
        )
        message = prompt_message(athlete.name, distance_m / 1000, link)
        for channel in ("email", "push"):
            transport = self.transports.get(channel)
            if channel not in channels or transport is None:
                continue
            if channel == "push" and not athlete.ntfy_topic:
                continue
            try:
                transport.send(recipient, message)
            except Exception as exc:
                log.warning(
                    "check-in prompt to athlete %s by %s failed: %s",
                    athlete_id,
                    channel,
                    type(exc).__name__,
                )
