#!/usr/bin/env bash
# Runs the Python reference client (Tools/reference-client), written from PROTOCOL.md alone,
# against the Swift `ivy` both ways, so that the document cannot drift from the code:
#   1. Swift worker, Python producer: Tools/reference-client/interop_checks.py's suite (results,
#      task errors, retries, dead letters and their reasons, §1's reading rules, §6.3's notice,
#      node-style messages of §3 on the base channel), then SIGTERM: the worker exits 0.
#   2. Python worker, Swift producer: `ivy demo --no-worker` (5! = 120, and 21!'s OverflowError),
#      a small `ivy bench --no-worker`, then the same suite against the Python worker.
# It uses one database of the Redis server (IVY_REFERENCE_DB, default 13) and flushes only that.
#
# Environment: IVY_BINARY (default .build/debug/ivy), IVY_REDIS_URL (default
# redis://127.0.0.1:6390, started by scripts/services.sh up), IVY_REFERENCE_DB,
# IVY_REFERENCE_PROBES=1 to also print edge cases where PROTOCOL.md and the Swift worker may
# disagree (informational, never failing).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

ivy=${IVY_BINARY:-.build/debug/ivy}
redis_url=${IVY_REDIS_URL:-redis://127.0.0.1:6390}
db=${IVY_REFERENCE_DB:-13}
venv=.build-venv/reference-client
python=$venv/bin/python
checks=Tools/reference-client/interop_checks.py
reference=Tools/reference-client/ivy_reference.py
# Generous for a slow shared CI machine: start-up, and each worker's drain after SIGTERM.
ready_within=90
stop_within=60

# The base channel and plaintext are what the checks expect (PROTOCOL §3, §6).
unset IVY_NOTIFICATION_CHANNEL_NAME MESSAGES_ENCRYPTION_KEY IVY_QUEUE_URL IVY_NOTIFY_URL
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree

say() { echo "reference-client: $*"; }
fail() {
  echo "reference-client: FAIL: $*" >&2
  exit 1
}

# The URL of database $db on the same server (query parameters dropped).
case $redis_url in
  redis://* | rediss://*)
    without_query=${redis_url%%\?*}
    [[ $without_query =~ ^([a-z]+://[^/]*)(/[0-9]*)?/?$ ]] || fail "cannot parse IVY_REDIS_URL"
    url="${BASH_REMATCH[1]}/$db"
    ;;
  unix://*) url="${redis_url%%\?*}?db=$db" ;;
  *) fail "IVY_REDIS_URL must be redis:// or unix://" ;;
esac
[ "$db" != 0 ] || fail "IVY_REFERENCE_DB must not be 0: the checks flush it"
[ -x "$ivy" ] || fail "$ivy is not built (swift build --product ivy, or set IVY_BINARY)"

logs=$(mktemp -d "${TMPDIR:-/tmp}/ivy-reference-client.XXXXXX")
worker_pid=""
worker_log=""

cleanup() {
  local status=$?
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -TERM "$worker_pid" 2>/dev/null || true
    await_exit "$worker_pid" 10 || kill -KILL "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ] && [ -n "$(ls -A "$logs")" ]; then
    for log in "$logs"/*; do
      echo "---- $(basename "$log") (last 40 lines) ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$logs"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# await_exit PID SECONDS: waits for a child to end, for SECONDS at most; returns its exit
# status, or 124 if it still runs.
await_exit() {
  local pid=$1 deadline=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || return 124
    sleep 0.1
  done
  local status=0
  wait "$pid" 2>/dev/null || status=$?
  return "$status"
}

# start_worker NAME COMMAND...: starts a worker in the background and waits until it reads the
# queue: after a reset only a worker creates the consumer group (PROTOCOL §8).
start_worker() {
  local name=$1
  shift
  worker_log=$logs/$name.log
  "$@" >"$worker_log" 2>&1 &
  worker_pid=$!
  "$python" "$checks" wait-group "$url" --within "$ready_within" --pid "$worker_pid" ||
    fail "$name did not start reading the queue"
  kill -0 "$worker_pid" 2>/dev/null || fail "$name exited at start-up"
}

# stop_worker NAME STOPPED_LINE: SIGTERM, exit status 0 within the bound, its last log line,
# and it left the consumer group (§8: a consumer that closes with nothing pending is deleted).
stop_worker() {
  local name=$1 stopped_line=$2 status=0
  kill -TERM "$worker_pid"
  await_exit "$worker_pid" "$stop_within" || status=$?
  [ "$status" -ne 124 ] || fail "$name still runs ${stop_within} s after SIGTERM"
  [ "$status" -eq 0 ] || fail "$name exited with status $status after SIGTERM (expected 0)"
  worker_pid=""
  grep -q "$stopped_line" "$worker_log" || fail "$name's log lacks '$stopped_line'"
  local consumers
  consumers=$("$python" "$checks" consumers "$url")
  [ "$consumers" = 0 ] || fail "$name stopped but the consumer group still has $consumers consumer(s)"
  say "$name stopped on SIGTERM with status 0 and left the consumer group"
}

# --- Python 3 with the redis package -----------------------------------------------------------
# Debian's python3-redis (scripts/install-deps.sh test installs it) needs no network beyond apt;
# elsewhere a virtualenv gets the package from PyPI.
for candidate in /usr/bin/python3 python3; do
  if "$python" -c 'import redis' >/dev/null 2>&1; then break; fi
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import redis' >/dev/null 2>&1; then
    python=$candidate
  fi
done
if ! "$python" -c 'import redis' >/dev/null 2>&1; then
  say "creating $venv"
  rm -rf "$venv"
  python3 -m venv "$venv" || fail "python3 -m venv failed (on Debian: scripts/install-deps.sh test installs python3-venv)"
  PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install --quiet --no-input 'redis>=4.3,<9' ||
    fail "pip install redis failed (on Debian: apt-get install python3-redis)"
  python=$venv/bin/python
fi

say "Redis database $url, ivy binary $ivy"

# --- 1. Swift worker, Python producer ------------------------------------------------------------
# One message at a time, so that "nothing was published" can be checked without a time-out (see
# interop_checks.py).
"$python" "$checks" reset "$url"
start_worker "swift-worker" "$ivy" worker --queue "$url" --notify "$url" --concurrency 1 --grace 10
say "1. Swift worker, Python producer"
"$python" "$checks" suite "$url" || fail "the Swift worker does not behave as PROTOCOL.md says (above)"
if [ "${IVY_REFERENCE_PROBES:-0}" = 1 ]; then
  "$python" "$checks" probes "$url" || fail "probes could not run"
fi
stop_worker "swift-worker" "ivy worker: stopped"

# --- 2. Python worker, Swift producer ------------------------------------------------------------
"$python" "$checks" reset "$url"
start_worker "python-worker" "$python" "$reference" worker --queue "$url" --notify "$url" --grace 10
say "2. Python worker, Swift producer"

status=0
"$ivy" demo --no-worker --queue "$url" --notify "$url" --timeout 60 >"$logs/demo.out" 2>"$logs/demo.err" || status=$?
[ "$status" -eq 0 ] || fail "ivy demo exited with status $status"
grep -qx 'testpackage.factorial(5) = 120' "$logs/demo.out" || fail "ivy demo did not print 'testpackage.factorial(5) = 120'"
say "ok   ivy demo: testpackage.factorial(5) = 120"

status=0
"$ivy" demo --no-worker --queue "$url" --notify "$url" --timeout 60 -n 21 >"$logs/demo-overflow.out" \
  2>"$logs/demo-overflow.err" || status=$?
[ "$status" -eq 1 ] || fail "ivy demo -n 21 exited with status $status (expected 1: the task fails)"
grep -q 'failed on attempt 1: OverflowError: factorial(21) overflows a 64-bit Int' "$logs/demo-overflow.err" ||
  fail "ivy demo -n 21 did not report the Python worker's OverflowError"
say "ok   ivy demo -n 21: the remote OverflowError, exit status 1"

status=0
before=$(date +%s.%N)
"$ivy" call testpackage.add 2 3 --in 1 --wait --queue "$url" --notify "$url" --timeout 60 >"$logs/later.out" \
  2>"$logs/later.err" || status=$?
[ "$status" -eq 0 ] || fail "ivy call --in 1 --wait exited with status $status"
grep -qx '5' "$logs/later.out" || fail "ivy call --in 1 --wait did not print 5"
"$python" -c 'import sys, time; sys.exit(0 if time.time() >= float(sys.argv[1]) + 1 else 1)' "$before" ||
  fail "ivy call --in 1 was answered before its time"
say "ok   ivy call --in 1 --wait: 5, no sooner than 1 s (the Python worker moved it from ivy:{q}:scheduled)"

status=0
"$ivy" bench --no-worker --queue "$url" --notify "$url" -n 200 -c 8 --latency-calls 20 --timeout 60 --json \
  >"$logs/bench.out" 2>"$logs/bench.err" || status=$?
[ "$status" -eq 0 ] || fail "ivy bench exited with status $status"
tail -n 1 "$logs/bench.out" | "$python" -c '
import json, sys
report = json.loads(sys.stdin.read())
assert report["tasks"] == 200 and report["errors"] == 0, report
rate = report["roundtrip_per_s"]
print(f"reference-client: ok   ivy bench: 200 calls, {rate:g} round trips/s, no errors")
' || fail "ivy bench's JSON summary is not 200 tasks without errors"

"$python" "$checks" suite "$url" || fail "the Python worker fails the suite (above)"
stop_worker "python-worker" "ivy-reference worker: stopped"

"$python" "$checks" reset "$url"
say "passed in $((SECONDS - started)) s"
