"""Service configuration, read from the environment and an optional `.env` file.

Every variable of the public contract (DESIGN.md, "Configuration") is a field here. URLs may carry
credentials; `db.urls.redact_url` is the only way a URL reaches a log line or an error message.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contract.topics import ID_PATTERN, clean_prefix
from db.urls import check_driver, check_password_encoded


class Settings(BaseSettings):
    """KneeGuard's configuration (environment variables prefixed `KNEEGUARD_`)."""

    model_config = SettingsConfigDict(
        env_prefix="KNEEGUARD_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        # URLs carry passwords: a validation error must not repeat the value it refused.
        hide_input_in_errors=True,
    )

    database_url: str = Field(
        default="sqlite:///var/kneeguard.db",
        description="SQLAlchemy URL of the database; PostgreSQL via postgresql+psycopg://.",
    )
    mqtt_url: str = Field(
        default="mqtt://localhost:1883",
        description="Broker URL: mqtt:// or mqtts:// (TLS), user and password in the URL.",
    )
    mqtt_checkin_url: str | None = Field(
        default=None,
        description="Broker URL of the check-in session, with a broker user of its own; unset: "
        "check-ins share the run session and queue behind runs.",
    )
    run_lane_process: bool = Field(
        default=False,
        description="With a check-in session: store runs in a process of their own at a lower "
        "CPU priority, so that bulk runs never hold up a red flag's alerts.",
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
    dead_letters_per_device_minute: int = Field(
        default=100,
        ge=1,
        le=1_000_000,
        description="Rejections per device and minute kept as dead letters and logged; "
        "beyond it they are answered and counted only.",
    )
    dead_letter_retention_days: int = Field(
        default=30, ge=1, le=3650, description="Dead letters older than this are purged."
    )
    delivery_retention_days: int = Field(
        default=180, ge=1, le=3650, description="Delivery records older than this are purged."
    )

    web_bind: str = Field(
        default="127.0.0.1:8080",
        description="HOST:PORT where `kneeguard run` serves the web app.",
    )
    public_url: str = Field(
        default="http://localhost:8080",
        description="Base URL of every link in emails and pushes (https turns on Secure cookies).",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="Signs links and sessions; unset: generated once and kept in the database.",
    )
    secret_key_file: Path | None = Field(
        default=None, description="File holding the secret key (instead of KNEEGUARD_SECRET_KEY)."
    )

    @field_validator("web_bind")
    @classmethod
    def _bind_is_host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("must be HOST:PORT, for example 127.0.0.1:8080")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_is_http(cls, value: str) -> str:
        value = value.rstrip("/")
        if not (value.startswith("http://") or value.startswith("https://")):
            raise ValueError("must start with http:// or https://")
        return value

    @field_validator("database_url", "mqtt_url", "smtp_url", "ntfy_url")
    @classmethod
    def _password_is_encoded(cls, value: str | None) -> str | None:
        if value is not None:
            check_password_encoded(value, "the URL")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_driver_is_named(cls, value: str) -> str:
        check_driver(value)
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _prefix_has_no_wildcards(cls, value: str) -> str:
        return clean_prefix(value)

    @field_validator("mqtt_checkin_url")
    @classmethod
    def _empty_is_unset(cls, value: str | None) -> str | None:
        return value or None

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
