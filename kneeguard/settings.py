"""Service configuration, read from the environment and an optional `.env` file.

Every variable of the public contract (DESIGN.md, "Configuration") is a field here. URLs may carry
credentials; `db.urls.redact_url` is the only way a URL reaches a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.topics import ID_PATTERN, clean_prefix


class Settings(BaseSettings):
    """KneeGuard's configuration (environment variables prefixed `KNEEGUARD_`)."""

    model_config = SettingsConfigDict(
        env_prefix="KNEEGUARD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
    )

    database_url: str = Field(
        default="sqlite:///var/kneeguard.db",
        description="SQLAlchemy URL of the database; PostgreSQL via postgresql+psycopg://.",
    )
    mqtt_url: str = Field(
        default="mqtt://localhost:1883",
        description="Broker URL: mqtt:// or mqtts:// (TLS), user and password in the URL.",
    )
    mqtt_client_id: str = Field(
        default="kneeguard-ingest",
        description="Fixed MQTT client id, so the broker keeps the persistent session.",
    )
    mqtt_shared_group: str | None = Field(
        default=None,
        description="Share the ingest subscriptions as $share/GROUP/... across replicas.",
    )
    topic_prefix: str = Field(
        default="kneeguard/v1", description="Topic prefix of every KneeGuard topic."
    )
    smtp_url: str = Field(
        default="smtp://localhost:25",
        description="SMTP server: smtp://, smtps:// or ?starttls=true; credentials in the URL.",
    )
    mail_from: str = Field(
        default="KneeGuard <kneeguard@localhost>", description="From address of every email."
    )
    ntfy_url: str | None = Field(
        default=None, description="ntfy server for push alerts; unset disables push."
    )
    log_level: str = Field(default="INFO", description="Log level of the service.")
    ingest_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Most messages committed in one transaction."
    )

    rules_file: Path | None = Field(
        default=None,
        description="TOML file overriding rule thresholds; validated at start-up.",
    )
    prompt_interval_minutes: int = Field(
        default=5, ge=1, le=60, description="Minutes between checks for runs owed a prompt."
    )

    mqtt_password_file: Path | None = Field(
        default=None,
        description="The broker's password file; `device add` writes device credentials to it.",
    )
    mqtt_acl_file: Path | None = Field(
        default=None,
        description="The broker's ACL file; `device add` writes each device's topics to it.",
    )
    mqtt_broker_pid_file: Path | None = Field(
        default=None,
        description="PID file of a local mosquitto to send SIGHUP after credential changes.",
    )
    dead_letter_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Dead letters older than this are purged."
    )
    delivery_retention_days: int = Field(
        default=180, ge=1, le=3650, description="Delivery records older than this are purged."
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_has_no_wildcards(cls, value: str) -> str:
        return clean_prefix(value)

    @field_validator("mqtt_client_id")
    @classmethod
    def _client_id_is_plain(cls, value: str) -> str:
        if not value or len(value) > 128:
            raise ValueError("must be 1 to 128 characters")
        return value

    @field_validator("mqtt_shared_group")
    @classmethod
    def _group_is_an_id(cls, value: str | None) -> str | None:
        if value is not None and not ID_PATTERN.fullmatch(value):
            raise ValueError(f"must match {ID_PATTERN.pattern}")
        return value
