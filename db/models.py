"""The relational model. Distances are metres, durations seconds, instants UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from db.types import BigIntPK, UTCDateTime

ID_LEN = 64
UUID_LEN = 36

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Coach(Base):
    __tablename__ = "coaches"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(8), default="daily")
    digest_hour: Mapped[int] = mapped_column(SmallInteger, default=7)
    channels: Mapped[str] = mapped_column(String(64), default="email")
    quiet_hours: Mapped[str | None] = mapped_column(String(11), default="22:00-07:00")
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    athletes: Mapped[list[Athlete]] = relationship(back_populates="coach")

    __table_args__ = (
        CheckConstraint("digest IN ('daily', 'weekly', 'off')", name="digest"),
        CheckConstraint("digest_hour BETWEEN 0 AND 23", name="digest_hour"),
    )


class Athlete(Base):
    __tablename__ = "athletes"

    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64))
    coach_id: Mapped[str | None] = mapped_column(
        ForeignKey("coaches.id", ondelete="SET NULL"), index=True
    )
    ntfy_topic: Mapped[str | None] = mapped_column(String(64))
    channels: Mapped[str] = mapped_column(String(64), default="email,push,inapp")
    quiet_hours: Mapped[str | None] = mapped_column(String(11), default="22:00-07:00")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    coach: Mapped[Coach | None] = relationship(back_populates="athletes")
    devices: Mapped[list[Device]] = relationship(
        back_populates="athlete", cascade="all, delete-orphan", passive_deletes=True
    )


class Device(Base):
    """A watch or phone app allowed to publish under its athlete's topics."""

    __tablename__ = "devices"

    athlete_id: Mapped[str] = mapped_column(
        ForeignKey("athletes.id", ondelete="CASCADE"), primary_key=True
    )
    id: Mapped[str] = mapped_column(String(ID_LEN), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    athlete: Mapped[Athlete] = relationship(back_populates="devices")


class Run(Base):
    """One run, as a device reported it, converted to SI units."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    # Unique per athlete (DESIGN.md v2): one athlete's uuid can never shadow another's message.
    uuid: Mapped[str] = mapped_column(String(UUID_LEN))
    athlete_id: Mapped[str] = mapped_column(ForeignKey("athletes.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(ID_LEN))
    start_time: Mapped[datetime] = mapped_column(UTCDateTime)
    end_time: Mapped[datetime] = mapped_column(UTCDateTime)
    distance_m: Mapped[float] = mapped_column(Float)
    duration_s: Mapped[float] = mapped_column(Float)
    elevation_gain_m: Mapped[float | None] = mapped_column(Float)
    cadence_spm: Mapped[float | None] = mapped_column(Float)
    hr_avg_bpm: Mapped[float | None] = mapped_column(Float)
    hr_max_bpm: Mapped[float | None] = mapped_column(Float)
    rpe: Mapped[float | None] = mapped_column(Float)
    ground_contact_time_ms: Mapped[float | None] = mapped_column(Float)
    vertical_oscillation_mm: Mapped[float | None] = mapped_column(Float)
    step_length_mm: Mapped[float | None] = mapped_column(Float)
    power_w: Mapped[float | None] = mapped_column(Float)
    modality: Mapped[str | None] = mapped_column(String(16))
    source_name: Mapped[str | None] = mapped_column(String(200))
    source_data_point_id: Mapped[str | None] = mapped_column(String(200))
    source_created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Imported long after it was run (an activity file of a past run): load and reference for
    # the rules, never judged on its own, so old history notifies nobody.
    history: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())

    __table_args__ = (
        UniqueConstraint("athlete_id", "uuid", name="uq_runs_athlete_uuid"),
        Index("ix_runs_athlete_start", "athlete_id", "start_time"),
        Index("ix_runs_end", "end_time"),
    )


class Checkin(Base):
    """One knee check-in: pain score, where it hurts, red-flag symptoms, optional OSTRC-O2."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LEN))  # unique per athlete, as on runs
    athlete_id: Mapped[str] = mapped_column(ForeignKey("athletes.id", ondelete="CASCADE"))
    device_id: Mapped[str] = mapped_column(String(ID_LEN))
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    context: Mapped[str] = mapped_column(String(16))
    related_run_uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    pain_score: Mapped[int] = mapped_column(SmallInteger)
    pain_sites: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    swelling: Mapped[bool] = mapped_column(Boolean, default=False)
    locking: Mapped[bool] = mapped_column(Boolean, default=False)
    giving_way: Mapped[bool] = mapped_column(Boolean, default=False)
    cannot_bear_weight: Mapped[bool] = mapped_column(Boolean, default=False)
    night_pain: Mapped[bool] = mapped_column(Boolean, default=False)
    fever: Mapped[bool] = mapped_column(Boolean, default=False)
    trauma: Mapped[bool] = mapped_column(Boolean, default=False)
    # RULES.md v2; optional on the wire, false when absent.
    redness_warmth: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    numbness: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    stopped_run: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    ostrc_q1: Mapped[int | None] = mapped_column(SmallInteger)
    ostrc_q2: Mapped[int | None] = mapped_column(SmallInteger)
    ostrc_q3: Mapped[int | None] = mapped_column(SmallInteger)
    ostrc_q4: Mapped[int | None] = mapped_column(SmallInteger)
    note: Mapped[str | None] = mapped_column(Text)
    modality: Mapped[str | None] = mapped_column(String(16))
    source_name: Mapped[str | None] = mapped_column(String(200))
    source_data_point_id: Mapped[str | None] = mapped_column(String(200))
    source_created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (
        UniqueConstraint("athlete_id", "uuid", name="uq_checkins_athlete_uuid"),
        Index("ix_checkins_athlete_recorded", "athlete_id", "recorded_at"),
        Index("ix_checkins_related_run", "related_run_uuid"),
        CheckConstraint("pain_score BETWEEN 0 AND 10", name="pain_score"),
        CheckConstraint(
            "context IN ('post_run', 'next_morning', 'daily')",
            name="context",
        ),
    )


class DeadLetter(Base):
    """A message that was refused, kept for the operator with the reason it was refused."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    topic: Mapped[str] = mapped_column(String(512))
    athlete_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    device_id: Mapped[str | None] = mapped_column(String(ID_LEN))
    uuid: Mapped[str | None] = mapped_column(String(UUID_LEN))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)


ALERT_STATUSES = ("open", "acknowledged", "resolved")


class Alert(Base):
    """One problem of one athlete, per rule: opened, updated while it recurs, then resolved."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    athlete_id: Mapped[str] = mapped_column(ForeignKey("athletes.id", ondelete="CASCADE"))
    rule_id: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(8))
    recommendation: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), default="open")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_triggered_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[str | None] = mapped_column(String(200))
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # An acknowledged red-flag alert reported again opens again; escalation counts from here.
    reopened_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    message: Mapped[str] = mapped_column(Text)
    # The same text for the coach, third person; "{athlete}" stands for the athlete's name.
    coach_message: Mapped[str | None] = mapped_column(Text)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        # At most one unresolved alert per athlete and rule, even with two writers at once.
        Index(
            "uq_alerts_active",
            "athlete_id",
            "rule_id",
            unique=True,
            sqlite_where=text("status != 'resolved'"),
            postgresql_where=text("status != 'resolved'"),
        ),
        Index("ix_alerts_status_triggered", "status", "last_triggered_at"),
        CheckConstraint("status IN ('open', 'acknowledged', 'resolved')", name="status"),
        CheckConstraint("severity IN ('info', 'warning', 'urgent')", name="severity"),
    )


class AlertEvent(Base):
    """What happened to an alert and when: the history digests and deliveries read."""

    __tablename__ = "alert_events"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # opened | raised | acknowledged | resolved
    severity: Mapped[str] = mapped_column(String(8))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    detail: Mapped[str | None] = mapped_column(String(200))


class Prompt(Base):
    """The one check-in prompt a run may get."""

    __tablename__ = "prompts"

    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    athlete_id: Mapped[str] = mapped_column(String(ID_LEN))
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Digest(Base):
    """A coach's digest for one period, claimed once: the unique key stops a second sender."""

    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    coach_id: Mapped[str] = mapped_column(ForeignKey("coaches.id", ondelete="CASCADE"))
    period: Mapped[str] = mapped_column(String(8))  # daily | weekly
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    subject: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (UniqueConstraint("coach_id", "period_end", name="uq_digests_coach_period"),)


DELIVERY_STATUSES = ("pending", "sending", "sent", "failed", "dead")


class Delivery(Base):
    """The outbox: one row per (alert or digest, recipient, channel, reason).

    Written in the same transaction as the alert or digest it delivers; a worker claims due
    rows, records `sending`, then `sent` or `failed` with the next attempt, or `dead` after
    24 hours of failures. `dedup_key` makes enqueueing the same notice twice a no-op.
    """

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(200), unique=True)
    alert_id: Mapped[int | None] = mapped_column(
        ForeignKey("alerts.id", ondelete="CASCADE"), index=True
    )
    digest_id: Mapped[int | None] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(String(16))  # opened | raised | escalation | digest
    recipient_kind: Mapped[str] = mapped_column(String(8))  # athlete | coach
    recipient_id: Mapped[str] = mapped_column(String(ID_LEN))
    athlete_id: Mapped[str | None] = mapped_column(String(ID_LEN), index=True)
    channel: Mapped[str] = mapped_column(String(8))  # email | push | inapp | webhook
    status: Mapped[str] = mapped_column(String(8), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    claimed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The service instance that claimed it (Outbox.claimer), so that instance takes its own
    # claims back at once when it restarts after a crash.
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    duration_ms: Mapped[float | None] = mapped_column(Float)
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (
        Index("ix_deliveries_due", "status", "due_at"),
        CheckConstraint(
            "status IN ('pending', 'sending', 'sent', 'failed', 'dead')", name="status"
        ),
    )


class WebSecret(Base):
    """A key the web app signs with, generated once so that every replica signs alike."""

    __tablename__ = "web_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AthleteLink(Base):
    """The generation of an athlete's signed links: raising it ends every link issued before."""

    __tablename__ = "athlete_links"

    athlete_id: Mapped[str] = mapped_column(
        ForeignKey("athletes.id", ondelete="CASCADE"), primary_key=True
    )
    generation: Mapped[int] = mapped_column(Integer, default=0)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CoachSignIn(Base):
    """A one-time sign-in link of a coach, stored as the SHA-256 of its secret part."""

    __tablename__ = "coach_sign_ins"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    coach_id: Mapped[str] = mapped_column(ForeignKey("coaches.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    """A coach's bearer token for /api/v1, stored as the SHA-256 of the token."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    coach_id: Mapped[str] = mapped_column(ForeignKey("coaches.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
