#!/usr/bin/env bash
# gui: the node's web GUI, on port 8484 of this container; docker-compose.yml publishes it on
# the host's GUI_HOST only (127.0.0.1 unless told otherwise). It is not a VPN peer: it works
# on the node's database (the shared FEDWARD_NODE_DIR) and learns the node's id from the
# node.env file that the node container writes there on its first start.
#
# The container listens on all its interfaces because docker forwards the published port to
# the container's own address; who can reach it is decided by GUI_HOST on the host. With a
# certificate in GUI_TLS_DIR (cert.pem, key.pem) it serves https.
set -euo pipefail

FEDWARD_SERVICE=gui
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

FEDWARD_NODE_DIR=${FEDWARD_NODE_DIR:-/fedward/node}
FEDWARD_DATA_ROOT=${FEDWARD_DATA_ROOT:-/data}
GUI_TLS_DIR=${GUI_TLS_DIR:-/fedward/gui-tls}
GUI_PUBLISHED_HOST=${GUI_PUBLISHED_HOST:-127.0.0.1}
GUI_PORT=8484

# tls_options: --cert/--key when a certificate is provided, else plain http (loopback only
# unless GUI_HOST says otherwise, in which case we warn, as the seed did).
tls_options() {
    if [ -f "$GUI_TLS_DIR/cert.pem" ] && [ -f "$GUI_TLS_DIR/key.pem" ]; then
        local tls=$FEDWARD_RUNTIME_DIR/tls
        install -d -m 0700 -o "$CONTAINER_UID" -g "$CONTAINER_GID" "$tls"
        install_private "$GUI_TLS_DIR/cert.pem" "$tls/cert.pem" || true
        install_private "$GUI_TLS_DIR/key.pem" "$tls/key.pem" || true
        echo "--cert $tls/cert.pem --key $tls/key.pem"
        return 0
    fi
    case "$GUI_PUBLISHED_HOST" in
    127.* | localhost | ::1) ;;
    *) log "warning: GUI_HOST=$GUI_PUBLISHED_HOST publishes the GUI beyond this machine over plain http; put cert.pem and key.pem in GUI_TLS_DIR or a TLS proxy in front" ;;
    esac
    echo "--allow-plain-http"
}

main() {
    require_root
    ensure_runtime_user
    wait_for_file "$FEDWARD_NODE_DIR/node.env" "the node container writes it when it starts: start the node first"
    install -d -m 0755 "$FEDWARD_RUNTIME_DIR"
    local settings options
    settings=$(read_env_file "$FEDWARD_NODE_DIR/node.env" NODE_ID MQTT_BROKER MQTT_BROKER_PORT UPLOADS_URL)
    write_app_env "$settings"$'\n'"FEDWARD_NODE_DIR=$FEDWARD_NODE_DIR"$'\n'"FEDWARD_DATA_ROOT=$FEDWARD_DATA_ROOT"
    load_app_env
    options=$(tls_options)
    # The names people reach the GUI by, beyond addresses and localhost (DNS rebinding):
    # fedward gui serve refuses a value that is not a host name.
    for name in ${GUI_ALLOWED_HOSTS:-}; do options+=" --allowed-host $name"; done
    log "the GUI is published on $GUI_PUBLISHED_HOST:$GUI_PORT; create the first account with: docker compose exec gui fedward gui adduser --admin NAME"
    # shellcheck disable=SC2086 # options are words we produced above
    start_as_user "$FEDWARD_BIN" gui serve --host 0.0.0.0 --port "$GUI_PORT" $options
    supervise
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
