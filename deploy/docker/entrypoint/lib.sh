# shellcheck shell=bash
# Shared by the fedward container entrypoints; sourced, never run.
#
# A service starts as root, because WireGuard needs it, and runs its application as the
# account CONTAINER_UID:CONTAINER_GID (the seed's variables), through `setpriv` with no
# capabilities and no way back (no_new_privs). What crosses from root to that account:
#
#   - secrets: copied from the enrolment folder (root-only) into $FEDWARD_RUNTIME_DIR
#     (a tmpfs), owned by the account, mode 0600;
#   - settings: $FEDWARD_RUNTIME_DIR/app.env, built from the folder's fedward.env, read
#     strictly (KEY=value with known keys and plain characters; never evaluated).
#
# Every path is a variable so that the functions can be exercised outside a container
# (tests/unit/test_deploy_files.py does).

FEDWARD_SERVICE=${FEDWARD_SERVICE:-fedward}
FEDWARD_BIN=${FEDWARD_BIN:-/opt/fedward/venv/bin/fedward}
FEDWARD_RUNTIME_DIR=${FEDWARD_RUNTIME_DIR:-/run/fedward}
FEDWARD_ENROLMENT_DIR=${FEDWARD_ENROLMENT_DIR:-/fedward/enrolment}
FEDWARD_WG_INTERFACE=${FEDWARD_WG_INTERFACE:-wg0}
FEDWARD_VPN_SERVER_IP=${FEDWARD_VPN_SERVER_IP:-10.220.0.1}
FEDWARD_WAIT_S=${FEDWARD_WAIT_S:-600}
FEDWARD_SYNC_INTERVAL_S=${FEDWARD_SYNC_INTERVAL_S:-5}

# Characters fedward itself allows in env-file values (fedward.vpn.envfile).
_SAFE_VALUE='^[]A-Za-z0-9_.:/+=@[-]*$'

log() {
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$FEDWARD_SERVICE" "$*" >&2
}

die() {
    log "error: $*"
    exit 1
}

require_root() {
    [ "$(id -u)" = 0 ] || die "this entrypoint must start as root (it sets up WireGuard, then drops to CONTAINER_UID)"
}

# --- the runtime account ------------------------------------------------------------------

check_runtime_ids() {
    local name
    for name in CONTAINER_UID CONTAINER_GID; do
        [[ ${!name:-} =~ ^[0-9]+$ ]] || die "$name must be a number, got '${!name:-}'"
    done
    [ "$CONTAINER_UID" != 0 ] || die "CONTAINER_UID=0: the services must not run as root; use your own id (id -u)"
    [[ ${CONTAINER_USER:-} =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
        || die "CONTAINER_USER '${CONTAINER_USER:-}' is not a valid user name (use letters, digits, _ and -)"
    [[ ${CONTAINER_GROUP:-} =~ ^[a-z_][a-z0-9_-]{0,31}$ ]] \
        || die "CONTAINER_GROUP '${CONTAINER_GROUP:-}' is not a valid group name"
}

# Make sure CONTAINER_UID:CONTAINER_GID exist, reusing an account or group that already has the
# id (say gid 20 on macOS hosts) and renumbering the build-time one when only the name matches.
ensure_runtime_user() {
    check_runtime_ids
    local uid=$CONTAINER_UID gid=$CONTAINER_GID
    if ! getent group "$gid" >/dev/null; then
        if getent group "$CONTAINER_GROUP" >/dev/null; then
            groupmod --gid "$gid" "$CONTAINER_GROUP"
        else
            groupadd --gid "$gid" "$CONTAINER_GROUP"
        fi
    fi
    local existing
    existing=$(getent passwd "$uid" | cut -d: -f1 || true)
    if [ -z "$existing" ]; then
        if getent passwd "$CONTAINER_USER" >/dev/null; then
            usermod --uid "$uid" --gid "$gid" "$CONTAINER_USER"
        else
            useradd --uid "$uid" --gid "$gid" --create-home --shell /bin/bash "$CONTAINER_USER"
        fi
    elif [ "$(id -g "$existing")" != "$gid" ]; then
        usermod --gid "$gid" "$existing"
    fi
    local home
    home=$(runtime_home)
    if [ -d "$home" ] && [ "$(stat -c %u:%g "$home")" != "$uid:$gid" ]; then
        chown -R "$uid:$gid" "$home"
    fi
}

runtime_home() {
    getent passwd "$CONTAINER_UID" | cut -d: -f6
}

runtime_user_name() {
    getent passwd "$CONTAINER_UID" | cut -d: -f1
}

# exec_as_user CMD...: become CMD, as the runtime account, with no capabilities (none
# inheritable either) and no way to gain privileges again (no_new_privs).
exec_as_user() {
    exec setpriv --reuid="$CONTAINER_UID" --regid="$CONTAINER_GID" --init-groups \
        --inh-caps=-all --bounding-set=-all --no-new-privs \
        env HOME="$(runtime_home)" USER="$(runtime_user_name)" "$@"
}

# run_as_user CMD...: the same, in a child process; returns its status.
run_as_user() {
    (exec_as_user "$@")
}

# DIR exists, has MODE, and it and everything in it belong to the runtime account (docker
# creates missing bind-mount sources as root; ids may also change between runs).
own_dir() {
    local dir=$1 mode=$2
    mkdir -p "$dir"
    chmod "$mode" "$dir"
    find "$dir" -xdev \( ! -uid "$CONTAINER_UID" -o ! -gid "$CONTAINER_GID" \) \
        -exec chown -h "$CONTAINER_UID:$CONTAINER_GID" {} +
}

# --- files --------------------------------------------------------------------------------

wait_for_file() {
    local path=$1 hint=$2 waited=0
    while [ ! -e "$path" ]; do
        if [ "$waited" -ge "$FEDWARD_WAIT_S" ]; then
            die "$path did not appear within ${FEDWARD_WAIT_S} s; $hint"
        fi
        if [ $((waited % 30)) = 0 ]; then
            log "waiting for $path ($hint)"
        fi
        sleep 1
        waited=$((waited + 1))
    done
}

# install_private SRC DEST: DEST becomes a copy of SRC owned by the runtime account, mode
# 0600, replaced atomically. Returns 0 when DEST changed, 1 when it already matched.
install_private() {
    local src=$1 dest=$2
    if [ -f "$dest" ] && cmp -s "$src" "$dest" \
        && [ "$(stat -c %u:%g:%a "$dest")" = "$CONTAINER_UID:$CONTAINER_GID:600" ]; then
        return 1
    fi
    install -o "$CONTAINER_UID" -g "$CONTAINER_GID" -m 0600 "$src" "$dest.new"
    mv -f "$dest.new" "$dest"
}

# write_private_text DEST TEXT: like install_private, from a string.
write_private_text() {
    local dest=$1 text=$2 tmp changed=0
    tmp=$(mktemp "$dest.XXXXXX")
    printf '%s' "$text" >"$tmp"
    install_private "$tmp" "$dest" || changed=$?
    rm -f "$tmp"
    return "$changed"
}

# read_env_file FILE KEY...: print the KEY=value lines of FILE whose key is listed, after
# checking every line the way fedward does. Nothing in FILE is ever evaluated.
read_env_file() {
    local file=$1 line key value number=0
    shift
    local -A allowed=()
    for key in "$@"; do allowed[$key]=1; done
    [ -r "$file" ] || die "cannot read $file"
    while IFS= read -r line || [ -n "$line" ]; do
        number=$((number + 1))
        line=${line#"${line%%[![:space:]]*}"}
        line=${line%"${line##*[![:space:]]}"}
        [ -z "$line" ] && continue
        [[ $line == \#* ]] && continue
        line=${line#export }
        [[ $line =~ ^([A-Z][A-Z0-9_]*)=(.*)$ ]] || die "$file line $number is not KEY=value"
        key=${BASH_REMATCH[1]}
        value=${BASH_REMATCH[2]}
        [[ $value =~ $_SAFE_VALUE ]] || die "$file line $number: $key has characters that are not allowed"
        if [ -n "${allowed[$key]:-}" ]; then
            printf '%s=%s\n' "$key" "$value"
        fi
    done <"$file"
}

# env_value KEY < lines: the value of KEY in KEY=value lines (empty when absent).
env_value() {
    local key=$1 line
    while IFS= read -r line; do
        if [ "${line%%=*}" = "$key" ]; then
            printf '%s\n' "${line#*=}"
            return 0
        fi
    done
    return 0
}

# --- the enrolment folder and the VPN -----------------------------------------------------

# The folder holds the peer's WireGuard key and credentials. On a site it arrives as a copy
# owned by the host user, which is also the runtime account: give it to root, so that the
# application keeps only the copies it needs.
lock_enrolment_folder() {
    local folder=$FEDWARD_ENROLMENT_DIR
    if [ -n "$(find "$folder" -xdev \( ! -uid 0 -o -perm /077 \) -print -quit)" ]; then
        log "making $folder readable by root only (it holds the VPN key and credentials)"
        chown -R 0:0 "$folder"
        chmod -R go-rwx "$folder"
    fi
}

wait_for_enrolment() {
    wait_for_file "$FEDWARD_ENROLMENT_DIR/config.env" \
        "the VPN server writes it ('fedward vpn genconf --with-key TYPE ID'); on a site, copy the folder it made here"
}

connect_vpn() {
    local folder=$FEDWARD_ENROLMENT_DIR
    # A run state left by the previous container describes an interface that died with it.
    "$FEDWARD_BIN" vpn down "$folder" >/dev/null 2>&1 || rm -f "$folder/run.json"
    "$FEDWARD_BIN" vpn connect --interface "$FEDWARD_WG_INTERFACE" "$folder"
    local waited=0
    until ping -c 1 -W 1 "$FEDWARD_VPN_SERVER_IP" >/dev/null 2>&1; do
        waited=$((waited + 1))
        if [ "$waited" -ge "$FEDWARD_WAIT_S" ]; then
            die "no answer from the VPN server $FEDWARD_VPN_SERVER_IP through $FEDWARD_WG_INTERFACE; check VPN_SERVER_PUBLIC_ADDR and that UDP ${VPN_SERVER_PORT:-51820} reaches it"
        fi
        if [ $((waited % 30)) = 1 ]; then
            log "waiting for the VPN server $FEDWARD_VPN_SERVER_IP to answer"
        fi
        sleep 1
    done
    log "connected to the VPN ($(vpn_address))"
}

disconnect_vpn() {
    "$FEDWARD_BIN" vpn down "$FEDWARD_ENROLMENT_DIR" >/dev/null 2>&1 || true
}

vpn_address() {
    read_env_file "$FEDWARD_ENROLMENT_DIR/config.env" VPN_IP | env_value VPN_IP
}

# prepare_app_settings [KEY=value...]: the node's or researcher's settings, from the folder's
# fedward.env, with the secret paths pointing at private copies of the folder's credentials,
# plus the given lines. Written to $FEDWARD_RUNTIME_DIR/app.env, readable by the account.
APP_ENV_KEYS=(NODE_ID RESEARCHER_ID MQTT_BROKER MQTT_BROKER_PORT UPLOADS_URL FEDWARD_BROKER_USERNAME)

prepare_app_settings() {
    local folder=$FEDWARD_ENROLMENT_DIR secrets=$FEDWARD_RUNTIME_DIR/secrets line settings
    wait_for_file "$folder/fedward.env" "a node or researcher folder made by a current 'fedward vpn genconf'"
    for line in broker_password uploads_token; do
        [ -s "$folder/$line" ] || die "$folder/$line is missing or empty; enrol this peer again on the VPN server"
    done
    install -d -m 0700 -o "$CONTAINER_UID" -g "$CONTAINER_GID" "$secrets"
    install_private "$folder/broker_password" "$secrets/broker_password" || true
    install_private "$folder/uploads_token" "$secrets/uploads_token" || true
    settings=$(read_env_file "$folder/fedward.env" "${APP_ENV_KEYS[@]}")
    settings+=$'\n'"FEDWARD_BROKER_PASSWORD_FILE=$secrets/broker_password"
    settings+=$'\n'"FEDWARD_UPLOADS_TOKEN_FILE=$secrets/uploads_token"
    for line in "$@"; do
        settings+=$'\n'"$line"
    done
    write_app_env "$settings"
}

# write_app_env LINES: the settings every 'fedward' command in this container loads. Each
# line must be KEY=value with plain characters, since /opt/fedward/bin/fedward sources it.
write_app_env() {
    local target=$FEDWARD_RUNTIME_DIR/app.env line
    while IFS= read -r line; do
        [ -z "$line" ] && continue
        if [[ ! $line =~ ^[A-Z][A-Z0-9_]*=(.*)$ ]] || [[ ! ${BASH_REMATCH[1]} =~ $_SAFE_VALUE ]]; then
            die "refusing to write the setting '${line%%=*}': not KEY=value with plain characters"
        fi
    done <<<"$1"
    printf '# written by the %s entrypoint; loaded by /opt/fedward/bin/fedward\n%s\n' \
        "$FEDWARD_SERVICE" "$1" >"$target.new"
    chown "0:$CONTAINER_GID" "$target.new"
    chmod 0640 "$target.new"
    mv -f "$target.new" "$target"
}

# Export the settings of app.env into this shell (values were checked when it was written).
load_app_env() {
    local line
    while IFS= read -r line; do
        [[ $line =~ ^[A-Z][A-Z0-9_]*= ]] && export "${line?}"
    done <"$FEDWARD_RUNTIME_DIR/app.env"
}

# --- running ------------------------------------------------------------------------------

_CHILDREN=()
_STOPPING=0

_on_stop_signal() {
    _STOPPING=1
}

# start_as_user CMD...: start CMD as the runtime account in the background. The child *is*
# CMD (exec all the way down), so signals sent to it reach the program itself.
start_as_user() {
    (exec_as_user "$@") &
    _CHILDREN+=("$!")
}

# supervise [ON_TICK]: the container lives as long as the started children. When one exits,
# when ON_TICK fails, or when docker stops the container: stop the other children, run
# `on_stop` if the service defines it, and exit (0 when docker asked for the stop).
# ON_TICK runs every FEDWARD_SYNC_INTERVAL_S seconds (file mirroring, interface checks).
supervise() {
    local on_tick=${1:-} status=0 pid
    trap _on_stop_signal TERM INT
    while [ "$_STOPPING" = 0 ]; do
        for pid in "${_CHILDREN[@]}"; do
            if ! kill -0 "$pid" 2>/dev/null; then
                wait "$pid" || status=$?
                log "process $pid exited with status $status"
                _STOPPING=2
                break
            fi
        done
        [ "$_STOPPING" = 0 ] || break
        sleep "$FEDWARD_SYNC_INTERVAL_S" &
        wait $! || true
        if [ -n "$on_tick" ] && [ "$_STOPPING" = 0 ] && ! "$on_tick"; then
            status=1
            _STOPPING=2
        fi
    done
    for pid in "${_CHILDREN[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${_CHILDREN[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if declare -F on_stop >/dev/null; then
        on_stop
    fi
    if [ "$_STOPPING" = 1 ]; then
        status=0
    elif [ "$status" = 0 ]; then
        status=1 # a service is not supposed to end by itself: let docker restart it
    fi
    log "stopped"
    exit "$status"
}

# The WireGuard interface is still there (a wireguard-go interface dies with its process).
check_vpn_interface() {
    if ! ip link show dev "$FEDWARD_WG_INTERFACE" >/dev/null 2>&1; then
        log "the WireGuard interface $FEDWARD_WG_INTERFACE is gone"
        return 1
    fi
}
