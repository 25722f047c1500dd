#!/usr/bin/env bash
# `ivy worker --metrics`: a worker on Redis serves /metrics while calls run through it; the
# text is read by Prometheus's own parser (prometheus_client, Debian's python3-prometheus-client,
# which `make test` installs) and checked by Tools/metrics-check/check_metrics.py. Uses a
# database of its own (10).
#
# Environment: IVY_BINARY (default .build/debug/ivy), IVY_REDIS_URL (default
# redis://127.0.0.1:6390, as scripts/services.sh starts it), IVY_METRICS_PYTHON (default /usr/bin/python3).
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
url=${IVY_REDIS_URL:-redis://127.0.0.1:6390}/10
export PYTHONDONTWRITEBYTECODE=1
say() { echo "metrics-test: $*"; }

python=${IVY_METRICS_PYTHON:-/usr/bin/python3}
if ! "$python" -c 'import prometheus_client.parser' >/dev/null 2>&1; then
  say "FAIL: Prometheus's parser is needed: apt-get install python3-prometheus-client (or scripts/install-deps.sh test)"
  exit 1
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/ivy-metrics-test.XXXXXX")
worker=""
cleanup() {
  if [ -n "$worker" ]; then kill -KILL "$worker" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

"$ivy" queue purge testpackage --queue "$url" --yes >/dev/null
"$ivy" queue purge testpackage --queue "$url" --dead --yes >/dev/null
"$ivy" worker --queue "$url" --metrics 127.0.0.1:0 2>"$work/worker.log" &
worker=$!
address=""
for _ in $(seq 1 300); do # the worker prints the address once it listens (at most 30 s)
  address=$(grep -o 'http://127.0.0.1:[0-9]*/metrics' "$work/worker.log" | head -1 || true)
  [ -n "$address" ] && break
  kill -0 "$worker" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$address" ]; then
  say "FAIL: the worker did not print its metrics address"
  cat "$work/worker.log"
  exit 1
fi
say "worker serves $address"
for n in 3 4 5; do "$ivy" call --queue "$url" --wait testpackage.factorial "$n" >/dev/null; done
if "$ivy" call --queue "$url" --wait testpackage.fail >/dev/null 2>&1; then
  say "FAIL: testpackage.fail succeeded"
  exit 1
fi
"$python" Tools/metrics-check/check_metrics.py "$address"
kill -INT "$worker"
for _ in $(seq 1 300); do kill -0 "$worker" 2>/dev/null || break; sleep 0.1; done # drains within 30 s
if kill -0 "$worker" 2>/dev/null; then
  say "FAIL: the worker did not stop within 30 s of SIGINT"
  exit 1
fi
wait "$worker" || { say "FAIL: the worker exited with status $?"; exit 1; }
worker=""
say "passed"
