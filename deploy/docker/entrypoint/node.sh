#!/usr/bin/env bash
# node (and node-gpu): the node daemon, inside the VPN.
#
# Enrols with its mounted folder (`fedward vpn connect`), takes NODE_ID, MQTT_BROKER,
# MQTT_BROKER_PORT and UPLOADS_URL from the folder's fedward.env and its credentials from
# the folder's files, then runs `fedward node start` as CONTAINER_UID. The node's database
# and job folders live in FEDWARD_NODE_DIR; datasets under FEDWARD_DATA_ROOT (/data).
# NODE_GPU=allowed (the seed's --gpu) or only (--gpu-only), NODE_GPU_NUM picks the device.
set -euo pipefail

FEDWARD_SERVICE=node
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

FEDWARD_NODE_DIR=${FEDWARD_NODE_DIR:-/fedward/node}
FEDWARD_DATA_ROOT=${FEDWARD_DATA_ROOT:-/data}
NODE_GPU=${NODE_GPU:-off}
NODE_GPU_NUM=${NODE_GPU_NUM:-0}
# What the gui container (same node, outside the VPN) needs to know about this node.
NODE_SHARED_ENV=$FEDWARD_NODE_DIR/node.env

gpu_options() {
    [[ $NODE_GPU_NUM =~ ^[0-9]+$ ]] || die "NODE_GPU_NUM must be a device number, got '$NODE_GPU_NUM'"
    case "$NODE_GPU" in
    off | "") ;;
    allowed) echo "--gpu --gpu-num $NODE_GPU_NUM" ;;
    only) echo "--gpu-only --gpu-num $NODE_GPU_NUM" ;;
    *) die "NODE_GPU must be off, allowed or only, got '$NODE_GPU'" ;;
    esac
}

share_with_gui() {
    local settings
    settings=$(read_env_file "$FEDWARD_ENROLMENT_DIR/fedward.env" NODE_ID MQTT_BROKER MQTT_BROKER_PORT UPLOADS_URL)
    write_private_text "$NODE_SHARED_ENV" "$settings"$'\n' || true
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
    local options
    options=$(gpu_options)
    wait_for_enrolment
    lock_enrolment_folder
    own_dir "$FEDWARD_NODE_DIR" 0700
    install -d -m 0755 "$FEDWARD_RUNTIME_DIR"
    prepare_app_settings "FEDWARD_NODE_DIR=$FEDWARD_NODE_DIR" "FEDWARD_DATA_ROOT=$FEDWARD_DATA_ROOT"
    share_with_gui
    connect_vpn
    load_app_env
    # shellcheck disable=SC2086 # options are words we produced above
    start_as_user "$FEDWARD_BIN" node start $options
    supervise on_tick
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
