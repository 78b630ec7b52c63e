#!/usr/bin/env bash
# Docker health checks: `healthcheck.sh SERVICE`, exit 0 when healthy.
# VPN peers: the seed's check, a ping of the VPN server through the tunnel, plus the
# service's own port where it has one (listening, checked without connecting to it).
set -euo pipefail

server_ip=${FEDWARD_VPN_SERVER_IP:-10.220.0.1}

listening() {
    [ -n "$(ss -Hltn "sport = :$1")" ]
}

case "${1:-}" in
vpnserver) ping -c 1 -W 2 "$server_ip" >/dev/null ;;
mqtt) ping -c 1 -W 2 "$server_ip" >/dev/null && listening 1883 ;;
restful) ping -c 1 -W 2 "$server_ip" >/dev/null && listening "${UPLOADS_PORT:-8000}" ;;
node) ping -c 1 -W 2 "$server_ip" >/dev/null ;;
gui) listening 8484 ;;
researcher) ping -c 1 -W 2 "$server_ip" >/dev/null && listening 8888 ;;
*)
    echo "usage: healthcheck.sh vpnserver|mqtt|restful|node|gui|researcher" >&2
    exit 2
    ;;
esac
