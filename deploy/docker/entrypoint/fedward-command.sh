#!/bin/sh
# `fedward` inside the fedward images (/opt/fedward/bin comes first on PATH).
#
# It loads the settings the entrypoint derived from the enrolment folder ($FEDWARD_RUNTIME_DIR/
# app.env: NODE_ID, MQTT_BROKER, UPLOADS_URL, the secret file paths...), so that
# `docker compose exec node fedward node dataset list` talks about the running node. In the
# node, gui and researcher containers (FEDWARD_APP_USER=1), root's commands other than
# `fedward vpn ...` run as the CONTAINER_UID account: files they create in the node's or the
# researcher's folder then stay usable by the service.
set -eu

real=${FEDWARD_BIN:-/opt/fedward/venv/bin/fedward}
app_env=${FEDWARD_RUNTIME_DIR:-/run/fedward}/app.env

if [ -r "$app_env" ]; then
    # Written by the entrypoint from checked KEY=value lines (see lib.sh, read_env_file).
    set -a
    # shellcheck disable=SC1090
    . "$app_env"
    set +a
fi

if [ "$(id -u)" = 0 ] && [ "${FEDWARD_APP_USER:-0}" = 1 ] && [ "${1:-}" != vpn ]; then
    home=$(getent passwd "$CONTAINER_UID" | cut -d: -f6)
    exec setpriv --reuid="$CONTAINER_UID" --regid="$CONTAINER_GID" --init-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs env HOME="$home" "$real" "$@"
fi
exec "$real" "$@"
