#!/usr/bin/env bash
# The seed's three cleaning levels, in one command (docs/docker.md, "Cleaning"):
#
#   deploy/docker/clean.sh [OPTIONS] containers|configuration|images [SERVICE...]
#
#   containers      level 1: stop and remove the services' containers (docker compose rm -sf)
#   configuration   level 2: each service's configuration and data under RUN_MOUNTS (the
#                   containers must be removed first). Enrolment folders (WireGuard keys,
#                   credentials) are deleted only after a "yes", or with --yes.
#                   Your datasets (NODE_DATA_DIR) are never touched.
#   images          level 3: the services' images, then `docker image prune -f`
#
#   SERVICE         vpnserver mqtt restful node node-gpu gui researcher (default: all those of
#                   the compose file)
#   --site          the hospital's file, docker-compose.node.yml (default docker-compose.yml)
#   --env-file F    the settings (default .env here); RUN_MOUNTS is read from it
#   -p NAME         the compose project name, when it is not the file's own
#   --yes           delete enrolment folders without asking
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
compose_file=$here/docker-compose.yml
env_file=$here/.env
project=()
assume_yes=0

die() {
    echo "clean.sh: $*" >&2
    exit 1
}

while [ $# -gt 0 ]; do
    case "$1" in
    --site) compose_file=$here/docker-compose.node.yml ;;
    --env-file)
        env_file=$2
        shift
        ;;
    -p)
        project=(-p "$2")
        shift
        ;;
    --yes) assume_yes=1 ;;
    -h | --help)
        sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
        exit 0
        ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) break ;;
    esac
    shift
done
level=${1:-}
[ $# -gt 0 ] && shift
case "$level" in
containers | configuration | images) ;;
*) die "say which level: containers, configuration or images (see --help)" ;;
esac

env_args=()
[ -f "$env_file" ] && env_args=(--env-file "$env_file")
compose() {
    docker compose -f "$compose_file" "${env_args[@]}" "${project[@]}" --profile gpu "$@"
}

all_services=$(compose config --services)
services=("$@")
[ ${#services[@]} -gt 0 ] || mapfile -t services <<<"$all_services"
for service in "${services[@]}"; do
    grep -qx "$service" <<<"$all_services" || die "no service '$service' in $(basename "$compose_file") (services: $(echo $all_services))"
done

# The env file's value of KEY (compose's own rules are richer; these files are KEY=value).
setting() {
    [ -f "$env_file" ] || return 0
    sed -n "s/^$1=//p" "$env_file" | tail -1
}
run_mounts=$(setting RUN_MOUNTS)
run_mounts=${run_mounts:-./run_mounts}
case "$run_mounts" in /*) ;; *) run_mounts=$here/${run_mounts#./} ;; esac

confirm() {
    [ "$assume_yes" = 1 ] && return 0
    local answer=
    printf '%s [y/N] ' "$1" >&2
    read -r answer || true
    [[ $answer =~ ^[Yy]([Ee][Ss])?$ ]]
}

remove() {
    local path
    for path in "$@"; do
        if [ -e "$path" ] || [ -L "$path" ]; then
            rm -rf -- "$path"
            echo "removed $path"
        fi
    done
}

# remove_enrolment PATH WHAT: ask first; an enrolment folder cannot be made again without
# the VPN server (and, for the server's, every peer must enrol again).
remove_enrolment() {
    local path=$1 what=$2
    [ -e "$path" ] || return 0
    if confirm "delete $path ($what)?"; then
        remove "$path"
    else
        echo "kept $path"
    fi
}

level_configuration() {
    local running
    running=$(compose ps -q "${services[@]}")
    [ -z "$running" ] || die "the containers of ${services[*]} still exist: run '$0 containers ${services[*]}' first"
    local site=0 service
    [ "$(basename "$compose_file")" = docker-compose.node.yml ] && site=1
    for service in "${services[@]}"; do
        case "$service" in
        vpnserver)
            remove_enrolment "$run_mounts/vpnserver" "the VPN server's keys, its registry and EVERY enrolment folder: all peers must enrol again"
            ;;
        mqtt) ;; # its folder is the server's (vpnserver/config_peers/management/mqtt)
        restful) remove "$run_mounts/restful" ;;
        node | node-gpu)
            remove "$run_mounts/node/state"
            if [ "$site" = 1 ]; then
                remove_enrolment "$run_mounts/node/enrolment" "this site's enrolment folder: the server must enrol the node again"
            fi
            ;;
        gui) remove "$run_mounts"/node/state/gui.sqlite3* ;;
        researcher) remove "$run_mounts/researcher" ;;
        esac
    done
}

level_images() {
    local images=() service image
    for service in "${services[@]}"; do
        image=$(compose config --format json | python3 -c \
            'import json,sys; print(json.load(sys.stdin)["services"][sys.argv[1]]["image"])' "$service")
        docker image inspect "$image" >/dev/null 2>&1 && images+=("$image")
    done
    if [ ${#images[@]} -gt 0 ]; then
        docker image rm "${images[@]}"
    fi
    docker image prune -f >/dev/null
}

case "$level" in
containers) compose rm -s -f "${services[@]}" ;;
configuration) level_configuration ;;
images) level_images ;;
esac
