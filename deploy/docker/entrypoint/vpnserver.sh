#!/usr/bin/env bash
# vpnserver: the WireGuard hub, 10.220.0.1 inside the VPN, UDP VPN_SERVER_PORT outside.
#
# Every start: `fedward vpn server init` (creates the server on the first start, from
# VPN_SERVER_PUBLIC_ADDR and the seed's other VPN_* variables; later it applies changed
# settings), one enrolment folder with its key pair (`genconf --with-key`) for each peer of
# FEDWARD_ENROL_NODES and FEDWARD_ENROL_RESEARCHERS that has none yet, then `fedward vpn up`.
# The mqtt and restful folders come with `server init`. Other containers enrol by mounting
# their folder: nobody copies a public key.
set -euo pipefail

FEDWARD_SERVICE=vpnserver
# shellcheck source=lib.sh
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/lib.sh"

FEDWARD_VPN_DIR=${FEDWARD_VPN_DIR:-/fedward/vpn}
FEDWARD_ENROL_NODES=${FEDWARD_ENROL_NODES-node1}
FEDWARD_ENROL_RESEARCHERS=${FEDWARD_ENROL_RESEARCHERS-researcher1}
export FEDWARD_VPN_DIR

# enrol_peer TYPE ID: the peer's folder, with its key pair, unless it has one already.
enrol_peer() {
    local peer_type=$1 peer_id=$2
    local folder=$FEDWARD_VPN_DIR/config_peers/$peer_type/$peer_id
    if [ -f "$folder/config.env" ]; then
        return 0
    fi
    # Docker creates a missing bind-mount source as an empty folder, which genconf would take
    # for the leftover of an interrupted command. An empty folder holds nothing to lose.
    rmdir "$folder" 2>/dev/null || true
    "$FEDWARD_BIN" vpn genconf --with-key "$peer_type" "$peer_id"
}

enrol_default_peers() {
    local ids peer_id
    "$FEDWARD_BIN" vpn server init
    read -r -a ids <<<"$FEDWARD_ENROL_NODES"
    for peer_id in "${ids[@]}"; do
        enrol_peer node "$peer_id"
    done
    read -r -a ids <<<"$FEDWARD_ENROL_RESEARCHERS"
    for peer_id in "${ids[@]}"; do
        enrol_peer researcher "$peer_id"
    done
}

check_forwarding() {
    # /proc/sys is read-only in a container: docker-compose.yml sets the sysctl instead.
    if [ "$(cat /proc/sys/net/ipv4/ip_forward)" != 1 ]; then
        die "IPv4 forwarding is off; start the container with the sysctl net.ipv4.ip_forward=1 (docker-compose.yml does)"
    fi
}

on_stop() {
    # Nothing to undo: the interface, its iptables rules and the forwarding setting live in
    # this container's network namespace and end with it.
    :
}

main() {
    require_root
    check_forwarding
    install -d -m 0700 "$FEDWARD_VPN_DIR"
    # What the previous container brought up ended with its network namespace; `vpn down`
    # would also try to restore ip_forward through the read-only /proc/sys.
    rm -f "$FEDWARD_VPN_DIR/run.json"
    enrol_default_peers
    "$FEDWARD_BIN" vpn up --interface "$FEDWARD_WG_INTERFACE"
    "$FEDWARD_BIN" vpn list
    sleep infinity &
    _CHILDREN+=("$!")
    supervise check_vpn_interface
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
