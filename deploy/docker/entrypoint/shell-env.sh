# shellcheck shell=sh
# Sourced by login and interactive shells in the fedward images (/etc/profile.d/fedward.sh
# and /etc/bash.bashrc): the settings the entrypoint derived from the enrolment folder, so
# that Python and the fedward API see them in `docker compose exec SERVICE bash`.
if [ -r "${FEDWARD_RUNTIME_DIR:-/run/fedward}/app.env" ]; then
    set -a
    # shellcheck disable=SC1091
    . "${FEDWARD_RUNTIME_DIR:-/run/fedward}/app.env"
    set +a
fi
