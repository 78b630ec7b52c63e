#!/usr/bin/env bash
# researcher: Jupyter (8888) and TensorBoard (6006) inside the VPN, as CONTAINER_UID.
#
# Enrols with its mounted folder, takes RESEARCHER_ID, MQTT_BROKER, UPLOADS_URL and the
# credentials from it (so notebooks call fedward.researcher with no setup), and works in
# FEDWARD_RESEARCHER_HOME: notebooks/ (Jupyter's root; the examples are copied to
# notebooks/examples on the first start), state/ (checkpoints, experiments) and TensorBoard
# logs anywhere below it. docker-compose.yml publishes both ports on RESEARCHER_HOST only.
# Jupyter asks for the token kept in FEDWARD_RESEARCHER_HOME/jupyter_token.
set -euo pipefail

FEDWARD_SERVICE=researcher
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

FEDWARD_RESEARCHER_HOME=${FEDWARD_RESEARCHER_HOME:-/fedward/researcher}
FEDWARD_EXAMPLE_NOTEBOOKS=${FEDWARD_EXAMPLE_NOTEBOOKS:-/opt/fedward/notebooks}
RESEARCHER_PUBLISHED_HOST=${RESEARCHER_PUBLISHED_HOST:-127.0.0.1}
JUPYTER_BIN=${JUPYTER_BIN:-/opt/fedward/venv/bin/jupyter}
TENSORBOARD_BIN=${TENSORBOARD_BIN:-/opt/fedward/venv/bin/tensorboard}

prepare_workspace() {
    local home=$FEDWARD_RESEARCHER_HOME
    own_dir "$home" 0700
    run_as_user mkdir -p "$home/notebooks" "$home/state"
    if [ -n "$(ls -A "$FEDWARD_EXAMPLE_NOTEBOOKS" 2>/dev/null)" ] && [ ! -e "$home/notebooks/examples" ]; then
        run_as_user cp -r "$FEDWARD_EXAMPLE_NOTEBOOKS" "$home/notebooks/examples"
    fi
    if [ ! -s "$home/jupyter_token" ]; then
        write_private_text "$home/jupyter_token" "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"$'\n' || true
    fi
}

on_tick() {
    check_vpn_interface
}

on_stop() {
    disconnect_vpn
}

main() {
    require_root
    ensure_runtime_user
    wait_for_enrolment
    lock_enrolment_folder
    prepare_workspace
    install -d -m 0755 "$FEDWARD_RUNTIME_DIR"
    prepare_app_settings "FEDWARD_RESEARCHER_DIR=$FEDWARD_RESEARCHER_HOME/state"
    connect_vpn
    load_app_env
    JUPYTER_TOKEN=$(cat "$FEDWARD_RESEARCHER_HOME/jupyter_token")
    export JUPYTER_TOKEN
    start_as_user "$TENSORBOARD_BIN" --logdir "$FEDWARD_RESEARCHER_HOME" --host 0.0.0.0 --port 6006
    start_as_user "$JUPYTER_BIN" lab --no-browser --ip 0.0.0.0 --port 8888 \
        --ServerApp.root_dir="$FEDWARD_RESEARCHER_HOME/notebooks"
    log "Jupyter: http://$RESEARCHER_PUBLISHED_HOST:8888 (token in jupyter_token of the researcher folder); TensorBoard: http://$RESEARCHER_PUBLISHED_HOST:6006"
    supervise on_tick
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
