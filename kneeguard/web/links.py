"""The links KneeGuard sends: every one signed, scoped to one person and one purpose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, insert

from db.models import CoachSignIn
from kneeguard.web.security import SIGN_IN_LINK_AGE, Signer, link_generation, new_token, token_hash
from notifier.base import NoticeLink


@dataclass(frozen=True)
class Links:
    base: str
    signer: Signer

    def checkin(self, athlete_id: str, generation: int, run_uuid: str | None = None) -> str:
        token = self.signer.sign("checkin", {"a": athlete_id, "g": generation, "r": run_uuid})
        return f"{self.base}/r/{token}"

    def personal(self, athlete_id: str, generation: int) -> str:
        token = self.signer.sign("personal", {"a": athlete_id, "g": generation})
        return f"{self.base}/r/{token}"

    def ack_token(self, athlete_id: str, generation: int, alert_id: int) -> str:
        return self.signer.sign("ack", {"a": athlete_id, "g": generation, "al": alert_id})

    def alert(self, athlete_id: str, generation: int, alert_id: int) -> str:
        return f"{self.base}/r/alert/{self.ack_token(athlete_id, generation, alert_id)}"

    def alert_hook(self, athlete_id: str, generation: int, alert_id: int) -> str:
        """For ntfy's "Acknowledge" http action (a POST from the phone, no browser)."""
        return f"{self.base}/hooks/ack/{self.ack_token(athlete_id, generation, alert_id)}"

    def coach_alert(self, coach_id: str, alert_id: int) -> str:
        token = self.signer.sign("coach-ack", {"c": coach_id, "al": alert_id})
        return f"{self.base}/coach/ack/{token}"

    def dashboard(self, athlete_id: str | None = None) -> str:
        return f"{self.base}/coach" + (f"/athletes/{athlete_id}" if athlete_id else "")

    def sign_in(self, conn: Connection, coach_id: str, now: datetime) -> str:
        """A new one-time sign-in link (15 minutes); only its hash is stored."""
        secret = new_token()
        conn.execute(
            insert(CoachSignIn).values(
                coach_id=coach_id,
                token_hash=token_hash(secret),
                created_at=now,
                expires_at=now + SIGN_IN_LINK_AGE,
                used_at=None,
            )
        )
        return f"{self.base}/coach/sign-in/{secret}"

    def athlete_links(self, conn: Connection, athlete_id: str) -> AthleteLinks:
        return AthleteLinks(self, athlete_id, link_generation(conn, athlete_id))


@dataclass(frozen=True)
class AthleteLinks:
    links: Links
    athlete_id: str
    generation: int

    def checkin(self, run_uuid: str | None = None) -> str:
        return self.links.checkin(self.athlete_id, self.generation, run_uuid)

    def alert(self, alert_id: int) -> str:
        return self.links.alert(self.athlete_id, self.generation, alert_id)

    def alert_hook(self, alert_id: int) -> str:
        return self.links.alert_hook(self.athlete_id, self.generation, alert_id)


__all__ = ["AthleteLinks", "Links"]


@dataclass(frozen=True)
class NoticeLinksFromDb:
    """`notifier.base.NoticeLinks` for the outbox: the athlete's current link generation is read
    when the notice is rendered (by the outbox, in the query that reads the alert)."""

    links: Links
    engine: Engine

    def for_alert(
        self,
        recipient_kind: str,
        recipient_id: str,
        athlete_id: str,
        alert_id: int,
        generation: int | None = None,
    ) -> NoticeLink | None:
        if recipient_kind == "coach":
            return NoticeLink(self.links.coach_alert(recipient_id, alert_id))
        if generation is None:
            with self.engine.connect() as conn:
                generation = link_generation(conn, athlete_id)
        links = AthleteLinks(self.links, athlete_id, generation)
        return NoticeLink(links.alert(alert_id), links.alert_hook(alert_id))

    def dashboard(self, athlete_id: str | None = None) -> str:
        return self.links.dashboard(athlete_id)
