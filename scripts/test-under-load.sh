#!/usr/bin/env bash
# Runs the test suite while busy loops pin every core, as a shared CI machine may be: a test
# that passes only on an idle machine fails here. Needs the services up (`make services-up`).
#   scripts/test-under-load.sh [RUNS] [-- extra swift test arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=1
if [[ ${1:-} =~ ^[0-9]+$ ]]; then runs=$1; shift; fi
if [ "${1:-}" = "--" ]; then shift; fi
loops=()
for _ in $(seq 1 "$(nproc)"); do
  (while :; do :; done) &
  loops+=($!)
done
trap 'kill "${loops[@]}" 2>/dev/null || true' EXIT
status=0
for run in $(seq 1 "$runs"); do
  echo "test-under-load: run $run of $runs with $(nproc) busy loops" >&2
  IVY_REQUIRE_SERVICES=1 IVY_REDIS_URL=${IVY_REDIS_URL:-redis://127.0.0.1:${IVY_REDIS_PORT:-6390}} \
    swift test --skip-build "$@" || status=1
done
exit $status
