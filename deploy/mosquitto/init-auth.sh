#!/bin/sh
# One-shot broker preparation under docker compose (service `broker-init`, run as root before
# mosquitto starts, on every `docker compose up`):
#
#   - seeds the ACL on the shared auth volume from the shipped deploy/mosquitto/acl, once: after
#     that the file belongs to the installation (`kneeguard device add/revoke` rewrite its
#     managed section) and is never overwritten;
#   - adds the check-in session's ACL block (user kneeguard-checkin) to an ACL seeded before
#     that block existed, at its end, where a block must start with its `user` line;
#   - creates the password file if missing and sets the passwords of the service account and of
#     its check-in session from MQTT_SERVICE_PASSWORD with mosquitto_passwd (so changing it in
#     .env and running `docker compose up -d` changes it on the broker too); device entries are
#     kept;
#   - gives both files and their directory to uid/gid 1883, the mosquitto user of the
#     eclipse-mosquitto image, which KneeGuard's container runs as too (docker-compose.yml), so
#     the broker can read what `device add` writes and the files stay private to that user.
set -eu

AUTH_DIR="${AUTH_DIR:-/mosquitto/auth}"
ACL_TEMPLATE="${ACL_TEMPLATE:-/mosquitto/acl.template}"
SERVICE_USER="${MQTT_SERVICE_USER:-kneeguard}"
CHECKIN_USER="${MQTT_CHECKIN_USER:-kneeguard-checkin}"
OWNER="${AUTH_OWNER:-1883:1883}"

if [ -z "${MQTT_SERVICE_PASSWORD:-}" ]; then
    echo "init-auth: MQTT_SERVICE_PASSWORD is not set" >&2
    exit 1
fi

umask 077
mkdir -p "$AUTH_DIR"
if [ ! -f "$AUTH_DIR/acl" ]; then
    cp "$ACL_TEMPLATE" "$AUTH_DIR/acl"
    echo "init-auth: ACL seeded from the shipped template"
fi
if ! grep -q "^user $CHECKIN_USER\$" "$AUTH_DIR/acl"; then
    # The template's block, from its `user` line to the first blank line.
    printf '\n' >> "$AUTH_DIR/acl"
    sed -n "/^user $CHECKIN_USER\$/,/^\$/p" "$ACL_TEMPLATE" >> "$AUTH_DIR/acl"
    echo "init-auth: ACL block of '$CHECKIN_USER' added"
fi
[ -f "$AUTH_DIR/passwd" ] || : > "$AUTH_DIR/passwd"
mosquitto_passwd -b "$AUTH_DIR/passwd" "$SERVICE_USER" "$MQTT_SERVICE_PASSWORD"
# The check-in session (KNEEGUARD_MQTT_CHECKIN_URL in docker-compose.yml) is a session of its
# own, so it needs a user of its own; it shares the service's password.
mosquitto_passwd -b "$AUTH_DIR/passwd" "$CHECKIN_USER" "$MQTT_SERVICE_PASSWORD"
# The broker's health check connects as its own user (no ACL entry: it may read and write
# nothing). Under the service's user it would take the service's session, since the broker
# names every session after its user.
mosquitto_passwd -b "$AUTH_DIR/passwd" healthcheck "$MQTT_SERVICE_PASSWORD"

chown "$OWNER" "$AUTH_DIR" "$AUTH_DIR/passwd" "$AUTH_DIR/acl"
chmod 0700 "$AUTH_DIR"
chmod 0600 "$AUTH_DIR/passwd"
chmod 0640 "$AUTH_DIR/acl"
echo "init-auth: password file ready with the service accounts '$SERVICE_USER' and '$CHECKIN_USER'"
