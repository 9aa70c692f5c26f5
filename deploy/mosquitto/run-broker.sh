#!/bin/sh
# mosquitto under docker compose, reloaded when its credentials change.
#
# `kneeguard device add` and `device revoke` rewrite the password and ACL files on the volume
# the two containers share, but KneeGuard's container cannot signal mosquitto in this one. So
# this script, the container's entry point, runs mosquitto as its child, checks the files every
# MOSQUITTO_WATCH_INTERVAL seconds (default 2) and sends mosquitto SIGHUP when one changed:
# mosquitto then re-reads both files without dropping any connection or queued message.
#
# SIGTERM and SIGINT (docker stop) are passed on and the script waits for mosquitto to save its
# persistence file and exit; SIGHUP (`docker compose kill -s SIGHUP mosquitto`) is passed on.
set -u

CONF="${MOSQUITTO_CONF:-/mosquitto/config/mosquitto.conf}"
BINARY="${MOSQUITTO_BINARY:-/usr/sbin/mosquitto}"
WATCH="${MOSQUITTO_WATCH:-/mosquitto/auth/passwd /mosquitto/auth/acl}"
INTERVAL="${MOSQUITTO_WATCH_INTERVAL:-2}"

# Modification time, size and inode of each watched file: an edit in place changes the first
# two, an atomic replace (what KneeGuard does) the inode.
fingerprint() {
    for file in $WATCH; do
        stat -c '%Y %s %i' "$file" 2>/dev/null || echo "missing"
    done
}

"$BINARY" -c "$CONF" &
pid=$!
stopping=0
trap 'stopping=1; kill -TERM "$pid" 2>/dev/null' TERM INT
trap 'kill -HUP "$pid" 2>/dev/null' HUP

last="$(fingerprint)"
while [ "$stopping" -eq 0 ] && kill -0 "$pid" 2>/dev/null; do
    # A trapped signal interrupts `wait`, so a stop request is handled at once.
    sleep "$INTERVAL" &
    wait "$!" 2>/dev/null
    [ "$stopping" -eq 0 ] || break
    now="$(fingerprint)"
    if [ "$now" != "$last" ]; then
        last="$now"
        echo "run-broker: password or ACL file changed; reloading mosquitto" >&2
        kill -HUP "$pid" 2>/dev/null
    fi
done

# Reap mosquitto and exit with its status; a signal arriving meanwhile interrupts `wait`, so
# wait again while it is still running.
status=0
while :; do
    wait "$pid"
    status=$?
    kill -0 "$pid" 2>/dev/null || break
done
exit "$status"
