#!/usr/bin/env bash
# Ivy on the local IronMQ server side by side, in one run, with node ivy's consumer loop (one
# message per request, one request a second) and with the server's raw capacity through Iron.io's
# own Python client (batches of 100): Tools/ironmq-emulator/side_by_side.py, which starts a fresh
# server for every contender and prints a Markdown table of medians (BENCHMARKS.md, IronMQ).
#
# usage: scripts/ironmq-bench.sh [side_by_side.py options: --rounds R --tasks N --in-flight C
#                                 --batches B --node-seconds S --profile --json]
# Needs the Redis of `scripts/services.sh up` (IVY_REDIS_PORT, default 6390) for ivy's results.
# Measures IVY_BINARY if given, else this checkout's release build (brought up to date first).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
ivy=${IVY_BINARY:-}
redis_port=${IVY_REDIS_PORT:-6390}
say() { echo "ironmq-bench: $*" >&2; }

. scripts/python-tools-venv.sh
if [ -n "$missing" ]; then
  say "FAIL: the comparison needs Iron.io's client: $missing"
  exit 1
fi
redis-cli -p "$redis_port" PING >/dev/null 2>&1 || {
  say "FAIL: no Redis on 127.0.0.1:$redis_port (scripts/services.sh up)"
  exit 1
}
if [ -z "$ivy" ]; then
  swift build -c release --product ivy >&2
  ivy=.build/release/ivy
  say "ivy $ivy, built from $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes')"
else
  say "ivy $ivy (IVY_BINARY)"
fi
exec "$python" Tools/ironmq-emulator/side_by_side.py --ivy "$ivy" \
  --redis "redis://127.0.0.1:$redis_port" "$@"
