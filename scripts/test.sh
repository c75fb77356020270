#!/usr/bin/env bash
# Runs every test Vigil has. Installs and starts what the tests need first
# (scripts/setup-test-deps.sh), so a fresh Debian machine passes as is.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup-test-deps.sh
export VIGIL_TEST_POSTGRES_URL="${VIGIL_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test?sslmode=disable}"
exec go test -count=1 -timeout 20m "$@" ./...
