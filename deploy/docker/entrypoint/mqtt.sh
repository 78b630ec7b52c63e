#!/usr/bin/env bash
# mqtt: Mosquitto on the broker's VPN address (10.220.0.2:1883), nowhere else.
#
# The VPN server renders the broker's configuration (mosquitto.conf, passwords, ACL) into
# the mqtt enrolment folder from its peer registry, and renders it again whenever a node or
# researcher is enrolled or revoked. This container mounts that folder, connects to the VPN
# with it, mirrors the files into a private copy for Mosquitto (which runs as CONTAINER_UID,
# not root) and makes Mosquitto reload them (SIGHUP) when they change.
set -euo pipefail

FEDWARD_SERVICE=mqtt
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

BROKER_SOURCE=$FEDWARD_ENROLMENT_DIR/broker
BROKER_DIR=$FEDWARD_RUNTIME_DIR/broker

# sync_broker_files: BROKER_DIR holds the current passwords and ACL, and a mosquitto.conf
# that points at them. Returns 0 when something changed, 1 when all was current.
sync_broker_files() {
    local name changed=1 conf
    for name in mosquitto.conf passwords acl; do
        if [ ! -f "$BROKER_SOURCE/$name" ]; then
            log "$BROKER_SOURCE/$name is missing; keeping the broker's current configuration"
            return 1
        fi
    done
    for name in passwords acl; do
        if install_private "$BROKER_SOURCE/$name" "$BROKER_DIR/$name"; then
            changed=0
        fi
    done
    # Same listener and limits; the files are the private copies, and Mosquitto (not root)
    # has no user to switch to. Its database goes next to them: the enrolment folder is
    # root's only, so Mosquitto could not save there (it logged an error every autosave).
    # In this tmpfs the queued messages survive reloads, not a restart of the container.
    conf=$(sed -e "s|^password_file .*|password_file $BROKER_DIR/passwords|" \
        -e "s|^acl_file .*|acl_file $BROKER_DIR/acl|" \
        -e "s|^persistence_location .*|persistence_location $BROKER_DIR/|" \
        -e '/^user /d' "$BROKER_SOURCE/mosquitto.conf")
    if write_private_text "$BROKER_DIR/mosquitto.conf" "$conf"$'\n'; then
        changed=0
    fi
    return "$changed"
}

on_tick() {
    check_vpn_interface || return 1
    if sync_broker_files; then
        log "the broker's passwords or ACL changed: Mosquitto reloads them"
        kill -HUP "${_CHILDREN[0]}"
    fi
}

on_stop() {
    disconnect_vpn
}

main() {
    require_root
    ensure_runtime_user
    wait_for_enrolment
    wait_for_file "$BROKER_SOURCE/mosquitto.conf" "the VPN server renders it when it creates the mqtt peer"
    lock_enrolment_folder
    install -d -m 0755 "$FEDWARD_RUNTIME_DIR"
    install -d -m 0700 -o "$CONTAINER_UID" -g "$CONTAINER_GID" "$BROKER_DIR"
    sync_broker_files || true
    connect_vpn
    # `fedward broker run` runs Mosquitto as its child and passes SIGHUP on to it; it also
    # reloads by itself when the passwords or ACL change.
    start_as_user "$FEDWARD_BIN" broker run --config-dir "$BROKER_DIR"
    supervise on_tick
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
