#!/bin/sh
# nhigw-enrol-token WORKSTATION FILE: the compose stack's one-shot `enrol` service.
# Issues a one-time enrolment token for WORKSTATION's agent (`nhigw gateway enrol-token`,
# with the gateway key and Redis from the environment) into FILE, which only that agent's
# container mounts. The agent uses it on its first start and keeps its own key afterwards;
# an unused token expires (24 h). See deploy/README.md, "Enrolling an agent".
set -eu
ws=${1:?usage: nhigw-enrol-token WORKSTATION FILE}
file=${2:?usage: nhigw-enrol-token WORKSTATION FILE}
umask 077
token=$(nhigw gateway enrol-token --workstation "$ws")
printf '%s' "$token" > "$file.tmp"
mv "$file.tmp" "$file"
echo "nhigw-enrol-token: token for $ws written"
