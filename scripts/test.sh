#!/usr/bin/env bash
# Run the test suite on real parts. Installs what is missing (pcscd, vsmartcard-vpcd,
# redis-server via apt when root; Python deps in .venv). The tests start their own
# pcscd (4 vpcd slots) and their own redis-server on a free port, and fail loudly if
# either cannot start: nothing is skipped for a missing service.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/bootstrap.sh --test
# Static checks first: lint (ruff) over the package, its tests and benchmarks; types (mypy, settings in
# pyproject.toml) over the package (tests and benchmarks are not type-checked yet).
.venv/bin/ruff check services tests bench
.venv/bin/mypy
export NHIGW_ARTIFACTS=${NHIGW_ARTIFACTS:-$PWD/test-artifacts}
exec .venv/bin/python -m pytest "$@"
