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
    uuid: Mapped[str] = mapped_column(String(UUID_LEN), unique=True)
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

    __table_args__ = (Index("ix_runs_athlete_start", "athlete_id", "start_time"),)


class Checkin(Base):
    """One knee check-in: pain score, where it hurts, red-flag symptoms, optional OSTRC-O2."""

    __tablename__ = "checkins"

    id: Mapped[int] = mapped_column(BigIntPK, primary_key=True, autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(UUID_LEN), unique=True)
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
