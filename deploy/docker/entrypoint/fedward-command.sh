#!/bin/sh
# `fedward`, `python` and `python3` inside the fedward images (links in /opt/fedward/bin,
# which comes first on PATH; the name called picks the program).
#
# It loads the settings the entrypoint derived from the enrolment folder ($FEDWARD_RUNTIME_DIR/
# app.env: NODE_ID or RESEARCHER_ID, MQTT_BROKER, UPLOADS_URL, the secret file paths...), so
# that `docker compose exec node fedward node dataset list` talks about the running node and
# `docker compose exec researcher python script.py` connects like a notebook does, with no
# shell profile involved (docker exec starts no login shell). In the node, gui and researcher
# containers (FEDWARD_APP_USER=1), root's commands other than `fedward vpn ...` run as the
# CONTAINER_UID account: files they create in the node's or the researcher's folder then stay
# usable by the service, and a script never runs as root by accident.
# (Programs started with an absolute path, like the entrypoints' and Jupyter's kernels, are
# not affected: they get their settings from the entrypoint's environment.)
set -eu

case "$(basename "$0")" in
python | python3)
    real=${FEDWARD_PYTHON:-/opt/fedward/venv/bin/python3}
    keep_root=0
    ;;
*)
    real=${FEDWARD_BIN:-/opt/fedward/venv/bin/fedward}
    # WireGuard needs root.
    keep_root=0
    [ "${1:-}" != vpn ] || keep_root=1
    ;;
esac
app_env=${FEDWARD_RUNTIME_DIR:-/run/fedward}/app.env

if [ -r "$app_env" ]; then
    # Written by the entrypoint from checked KEY=value lines (see lib.sh, read_env_file).
    set -a
    # shellcheck disable=SC1090
    . "$app_env"
    set +a
fi

if [ "$(id -u)" = 0 ] && [ "${FEDWARD_APP_USER:-0}" = 1 ] && [ "$keep_root" = 0 ]; then
    home=$(getent passwd "$CONTAINER_UID" | cut -d: -f6)
    exec setpriv --reuid="$CONTAINER_UID" --regid="$CONTAINER_GID" --init-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs env HOME="$home" "$real" "$@"
fi
exec "$real" "$@"
