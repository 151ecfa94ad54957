#!/usr/bin/env bash
# Run the whole stack on embedded defaults: in-memory bus, in-process virtual cards,
# the NHI cloud simulator, agent ws-01 and the gateway. Extra flags go to `nhigw up`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh
exec .venv/bin/nhigw up "$@"
