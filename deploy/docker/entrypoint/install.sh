#!/usr/bin/env bash
# Image build step (Dockerfile): the `fedward` command that loads the container's settings,
# shell hooks, and the build-time account. Run once per image, as root.
set -euo pipefail

here=/opt/fedward/entrypoint
# /opt/fedward/bin comes first on PATH: its fedward, python and python3 load what the
# entrypoint derived from the enrolment folder, so 'docker compose exec SERVICE fedward ...'
# and 'docker compose exec researcher python ...' see the running settings.
install -d -m 0755 /opt/fedward/bin
for name in fedward python python3; do
    ln -sfn "$here/fedward-command.sh" "/opt/fedward/bin/$name"
done
ln -sfn "$here/shell-env.sh" /etc/profile.d/fedward.sh
grep -qxF ". $here/shell-env.sh" /etc/bash.bashrc || echo ". $here/shell-env.sh" >>/etc/bash.bashrc
FEDWARD_SERVICE=build "$here/entrypoint.sh" ensure-user
