"""Alembic environment: the engine is handed over by `db.migrate` (no URL in an ini file)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

from db.models import Base

config = context.config
engine = config.attributes.get("engine")
if not isinstance(engine, Engine):
    raise RuntimeError("run migrations through `kneeguard db upgrade`")

with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    context.run_migrations()
