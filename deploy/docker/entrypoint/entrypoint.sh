#!/usr/bin/env bash
# The image's entrypoint: `entrypoint.sh SERVICE` runs that service's script (the compose
# files pass the service name as the command); anything else is run as given, so that
# `docker compose run --rm node bash` still opens a shell.
set -euo pipefail

here=$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")

usage() {
    cat <<'USAGE'
fedward container entrypoint

  vpnserver    WireGuard hub; creates the VPN server and the default enrolment folders
  mqtt         Mosquitto on 10.220.0.2:1883, configured from the mqtt enrolment folder
  restful      upload server on 10.220.0.3:8000
  node         node daemon (NODE_GPU=allowed|only for the GPU)
  gui          the node's web GUI on port 8484
  researcher   Jupyter on 8888 and TensorBoard on 6006, inside the VPN
  ensure-user  create or adapt the CONTAINER_UID/CONTAINER_GID account (image build)

See docs/docker.md.
USAGE
}

case "${1:-help}" in
vpnserver | mqtt | restful | node | gui | researcher)
    service=$1
    shift
    exec "$here/$service.sh" "$@"
    ;;
ensure-user)
    # shellcheck source=lib.sh
    . "$here/lib.sh"
    ensure_runtime_user
    ;;
help | -h | --help)
    usage
    ;;
*)
    exec "$@"
    ;;
esac
