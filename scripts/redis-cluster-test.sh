#!/usr/bin/env bash
# The Redis Cluster of `scripts/services.sh up` changes under a running `ivy worker` and an
# `ivy bench --no-worker` producer, both given the cluster's URL (results go through it too):
#   1. reshard: the slot of the queue testpackage (14003) moves to another master with
#      `redis-cli --cluster reshard` while calls go out at 100 a second;
#   2. failover: the master that owns it is killed with SIGKILL, and its replica takes over;
#   3. on a fresh cluster, the master of the producer's result channel is killed the same way
#      (results go by sharded pub/sub, on that master).
# Before the first two the queue is paused until a hundred messages wait in its stream, so the
# change happens mid-stream; it is resumed after. Each passes when every call the cluster
# accepted got its result, the worker still serves, and nothing is left in the queue. First, the
# queues testpackage-1 to testpackage-6 of a bench must live on all three masters.
# The cluster is made anew at the end, whole.
#
# usage: scripts/redis-cluster-test.sh   (run by `make test`, after `scripts/services.sh up`)
# IVY_BINARY: the ivy to test (default .build/debug/ivy); IVY_REDIS_CLUSTER_PORTS as for
# services.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
first=${IVY_REDIS_CLUSTER_PORTS:-6401}
first=${first%-*}
ports=$(seq "$first" $((first + 5)))
queue_url="redis+cluster://127.0.0.1:$first,127.0.0.1:$((first + 1)),127.0.0.1:$((first + 2))/"
queue_slot=14003 # CLUSTER KEYSLOT ivy:{testpackage}:stream
say() { echo "redis-cluster: $*" >&2; }
started=$SECONDS
status=0
work=$(mktemp -d)
worker_pid=
bench_pid=
cleanup() {
  local code=$?
  for pid in ${worker_pid:-} ${bench_pid:-}; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done
  # Whatever the changes left, the cluster is whole again for what comes after.
  scripts/services.sh redis-cluster-down >/dev/null 2>&1 || true
  scripts/services.sh redis-cluster-up >/dev/null 2>"$work/up.log" || { cat "$work/up.log" >&2; code=1; }
  rm -rf "$work"
  exit "$code"
}
trap cleanup EXIT

# cli ARGS...: redis-cli against the first node that answers.
cli() {
  local port
  for port in $ports; do
    if redis-cli -h 127.0.0.1 -p "$port" PING >/dev/null 2>&1; then
      redis-cli -h 127.0.0.1 -p "$port" "$@"
      return
    fi
  done
  say "FAIL: no node of the cluster answers"
  return 1
}
# owner SLOT: "NODE-ID PORT" of the master that serves SLOT, as the cluster sees it now.
owner() {
  cli cluster nodes | awk -v slot="$1" '$3 ~ /master/ && $3 !~ /fail/ {
    for (i = 9; i <= NF; i++) { split($i, range, "-"); if (range[2] == "") range[2] = range[1]
      if (range[1] + 0 <= slot && slot <= range[2] + 0) { split($2, address, "[:@]"); print $1, address[2] } } }'
}
# wait_for WHAT SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for() {
  local what=$1 deadline=$((SECONDS + $2))
  shift 2
  until "$@"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      say "FAIL: $what did not happen in time"
      return 1
    fi
    sleep 0.1
  done
}
ran_at_least() { [ "$(grep -c ' succeeded testpackage\.' "$work/worker.log" || true)" -ge "$1" ]; }
backlog_at_least() { [ "$(cli -c XLEN 'ivy:{testpackage}:stream' 2>/dev/null || echo 0)" -ge "$1" ]; }
ok_everywhere() {
  local port
  for port in $ports; do
    [ "$port" = "${killed:-}" ] && continue
    redis-cli -h 127.0.0.1 -p "$port" cluster info 2>/dev/null | grep -q '^cluster_state:ok' || return 1
  done
}
owner_is_not() { local now; now=$(owner "$1"); [ -n "$now" ] && [ "${now%% *}" != "$2" ]; }

# start CALLS [--no-pause]: the worker and the producer; returns once 300 tasks have run and
# the queue, paused, has a hundred messages waiting.
start() {
  "$ivy" worker --queue "$queue_url" --concurrency 16 --events 2>"$work/worker.log" &
  worker_pid=$!
  wait_for "the worker's start" 30 grep -q serving "$work/worker.log"
  "$ivy" bench --no-worker --queue "$queue_url" -n "$1" --rate 100 -c 32 --timeout 120 \
    --phases enqueue --json >"$work/bench.out" 2>"$work/bench.err" &
  bench_pid=$!
  wait_for "300 tasks run" 60 ran_at_least 300
  [ "${2:-}" = --no-pause ] && return
  "$ivy" queue pause testpackage --queue "$queue_url" >/dev/null
  wait_for "a backlog of 100 messages" 60 backlog_at_least 100
}

# check WHAT REFUSED: every accepted call answered, at most REFUSED sends refused, the worker
# serving, the queue empty.
check() {
  local line left
  wait "$bench_pid" || true
  bench_pid=
  line=$(tail -1 "$work/bench.out")
  say "bench: $line"
  if verdict=$(python3 - "$line" "$1" "$2" 2>&1 <<'PY'
import json, sys
run, change, refusable = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
through = run["tasks"] - run["send_errors"]
if run["result_errors"] or run["send_errors"] > refusable:
    print(f"FAIL: {run['result_errors']} accepted calls got no result; {run['send_errors']} sends refused"
          f" (at most {refusable} may be)")
    sys.exit(1)
print(f"ok   {through} accepted calls all answered, {run['send_errors']} refused during the {change}")
PY
  ); then say "$verdict"; else
    say "${verdict:-FAIL: no report from the bench}"
    status=1
  fi
  kill -0 "$worker_pid" 2>/dev/null || { say "FAIL: the worker died"; status=1; }
  if "$ivy" demo --no-worker -n 6 --queue "$queue_url" >"$work/demo.out" 2>&1; then
    say "ok   $(tail -1 "$work/demo.out"): the worker serves after the $1"
  else
    say "FAIL: a call after the $1 failed: $(tail -3 "$work/demo.out")"
    status=1
  fi
  left=$("$ivy" queue size testpackage --queue "$queue_url" 2>&1 || true)
  if [ "$left" = "testpackage: ready 0, delayed 0, reserved 0, dead 0" ]; then
    say "ok   nothing left in the queue"
  else
    say "FAIL: left in the queue: $left"
    status=1
  fi
  if [ "$status" -ne 0 ]; then
    say "the worker's log, without its task events:"
    { grep -v -e '^event:' -e ' testpackage\.' "$work/worker.log" | tail -20 >&2; } || true
    say "the producer's:"
    tail -5 "$work/bench.err" >&2 || true
  fi
  { kill "$worker_pid" && wait "$worker_pid"; } 2>/dev/null || true
  worker_pid=
}

if ! ok_everywhere; then
  say "FAIL: the Redis Cluster on 127.0.0.1:$first-$((first + 5)) is not up and ok (scripts/services.sh up)"
  exit 1
fi

# 1. Several queues: on every master.
if "$ivy" bench --queue "$queue_url" --queues 6 -n 600 --phases roundtrip --json >"$work/spread.out" 2>&1; then
  masters=0
  for port in $ports; do
    role=$(redis-cli -h 127.0.0.1 -p "$port" role | head -1)
    [ "$role" = master ] || continue
    held=$(redis-cli -h 127.0.0.1 -p "$port" --scan --pattern 'ivy:{testpackage-*}:stream' | wc -l)
    say "     127.0.0.1:$port holds $held of the six queues"
    [ "$held" -gt 0 ] && masters=$((masters + 1))
  done
  if [ "$masters" = 3 ]; then say "ok   six queues spread over the three masters"; else
    say "FAIL: the six queues live on $masters masters, not 3"
    status=1
  fi
else
  say "FAIL: a bench over six queues failed: $(tail -3 "$work/spread.out")"
  status=1
fi

# 2. The queue's slot moves to another master, with the slots before it in its master's range.
start 3000
read -r from from_port <<<"$(owner $queue_slot)"
to=$(cli cluster nodes | awk -v from="$from" '$3 ~ /master/ && $1 != from { print $1; exit }')
lowest=$(cli cluster nodes | awk -v id="$from" -v slot="$queue_slot" '$1 == id {
  for (i = 9; i <= NF; i++) { split($i, range, "-"); if (range[2] == "") range[2] = range[1]
    if (range[1] + 0 <= slot && slot <= range[2] + 0) print range[1] } }')
say "reshard: slots $lowest-$queue_slot from 127.0.0.1:$from_port to another master, mid-stream"
if ! redis-cli --cluster reshard "127.0.0.1:$from_port" --cluster-from "$from" --cluster-to "$to" \
  --cluster-slots $((queue_slot - lowest + 1)) --cluster-yes >"$work/reshard.log" 2>&1; then
  say "FAIL: redis-cli --cluster reshard failed:"
  tail -5 "$work/reshard.log" >&2
  exit 1
fi
[ "$(owner $queue_slot)" != "$from $from_port" ] || { say "FAIL: slot $queue_slot did not move"; exit 1; }
kill -0 "$bench_pid" 2>/dev/null && say "ok   moved while calls still went out" ||
  say "note: the bench had sent all its calls before the move ended"
"$ivy" queue resume testpackage --queue "$queue_url" >/dev/null
check reshard 0

# kill_master_of SLOT WHAT: kills the master that serves SLOT, and waits for its replica.
kill_master_of() {
  local victim pid
  read -r victim killed <<<"$(owner "$1")"
  pid=$(cat ".services/redis-cluster/$killed/redis.pid")
  say "failover: kill -9 the master 127.0.0.1:$killed (pid $pid) of $2"
  kill -KILL "$pid"
  wait_for "a replica's promotion" 60 owner_is_not "$1" "$victim"
  wait_for "cluster_state:ok on the other nodes" 60 ok_everywhere
  say "ok   127.0.0.1:$(owner "$1" | cut -d' ' -f2) serves slot $1 now"
}

# 3. The master that now owns the queue's slot is killed; its replica takes over.
start 2000
kill_master_of $queue_slot "the queue, mid-stream"
"$ivy" queue resume testpackage --queue "$queue_url" >/dev/null
# A send may time out while the master is away (and then says so); a tenth at most.
check failover 200

# 4. On a whole cluster again, the master of the producer's channel (ivy-notifier:<its id>, the
# id that starts its calls' ids) is killed.
scripts/services.sh redis-cluster-down >/dev/null 2>&1
scripts/services.sh redis-cluster-up 2>/dev/null
killed=
start 2000 --no-pause
producer=$(grep -m1 -o ' succeeded testpackage\.echo id=[0-9a-f]*' "$work/worker.log" | sed 's/.*id=//') ||
  { say "FAIL: no call's id in the worker's log"; exit 1; }
kill_master_of "$(cli cluster keyslot "ivy-notifier:$producer")" "the producer's channel ivy-notifier:$producer"
check "failover of the channel's master" 200

if [ "$status" = 0 ]; then say "passed in $((SECONDS - started)) s"; fi
exit $status
