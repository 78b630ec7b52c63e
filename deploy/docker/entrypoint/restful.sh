#!/usr/bin/env bash
# restful: the upload server on its VPN address (10.220.0.3:8000), nowhere else.
#
# The VPN server keeps the upload tokens (hashes only) in the restful enrolment folder and
# updates them when a node or researcher is enrolled or revoked. This container mounts that
# folder, connects to the VPN with it and mirrors the tokens file into a private copy that
# the upload server (running as CONTAINER_UID) reads; the server notices a new copy by itself.
set -euo pipefail

FEDWARD_SERVICE=restful
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

FEDWARD_UPLOADS_DIR=${FEDWARD_UPLOADS_DIR:-/fedward/uploads}
UPLOADS_PORT=${UPLOADS_PORT:-8000}
TOKENS_SOURCE=$FEDWARD_ENROLMENT_DIR/uploads_tokens.json
TOKENS=$FEDWARD_RUNTIME_DIR/uploads/tokens.json

# sync_tokens: TOKENS mirrors TOKENS_SOURCE. Returns 0 when it changed.
sync_tokens() {
    if [ -f "$TOKENS_SOURCE" ]; then
        install_private "$TOKENS_SOURCE" "$TOKENS"
    elif [ -f "$TOKENS" ]; then
        rm -f "$TOKENS"
    else
        return 1
    fi
}

on_tick() {
    check_vpn_interface || return 1
    if sync_tokens; then
        log "the upload tokens changed"
    fi
}

on_stop() {
    disconnect_vpn
}

main() {
    require_root
    ensure_runtime_user
    wait_for_enrolment
    lock_enrolment_folder
    own_dir "$FEDWARD_UPLOADS_DIR" 0700
    install -d -m 0755 "$FEDWARD_RUNTIME_DIR"
    install -d -m 0700 -o "$CONTAINER_UID" -g "$CONTAINER_GID" "$(dirname "$TOKENS")"
    sync_tokens || true
    connect_vpn
    start_as_user "$FEDWARD_BIN" uploads serve --host "$(vpn_address)" --port "$UPLOADS_PORT" \
        --data-dir "$FEDWARD_UPLOADS_DIR" --tokens "$TOKENS"
    supervise on_tick
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
