# syntax=docker/dockerfile:1
# KneeGuard service image: `docker build -t kneeguard .` (docker-compose.yml builds it for you).
#
# Two stages: the first installs the project and its runtime dependencies (no dev extras) into a
# virtualenv, the second copies only that virtualenv onto a clean slim base, so no build cache,
# source tree or pip ends up in the running image. No secrets are baked in: every setting comes
# from KNEEGUARD_* environment variables at run time.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/kneeguard
WORKDIR /src
# Only what `pip install .` needs (README.md is the package's long description).
COPY pyproject.toml README.md ./
COPY kneeguard ./kneeguard
COPY contract ./contract
COPY ingest ./ingest
COPY rules ./rules
COPY notifier ./notifier
COPY db ./db
RUN /opt/kneeguard/bin/pip install . \
    && /opt/kneeguard/bin/kneeguard --version

FROM ${PYTHON_IMAGE}
# The uid/gid to run as. docker-compose.yml sets both to 1883, the broker's user, because
# KneeGuard writes the broker's password and ACL files on a shared volume.
ARG APP_UID=10001
ARG APP_GID=10001
RUN groupadd --system --gid "${APP_GID}" kneeguard \
    && useradd --system --uid "${APP_UID}" --gid kneeguard --create-home \
        --home-dir /var/lib/kneeguard --shell /usr/sbin/nologin kneeguard
COPY --from=build /opt/kneeguard /opt/kneeguard
ENV PATH=/opt/kneeguard/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The working directory is KneeGuard's own: a `.env` file or the default SQLite database
# (var/kneeguard.db) would be looked for, and created, here.
WORKDIR /var/lib/kneeguard
USER kneeguard
ENTRYPOINT ["kneeguard"]
CMD ["run"]
