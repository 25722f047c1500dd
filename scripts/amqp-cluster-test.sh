#!/usr/bin/env bash
# A three-node RabbitMQ cluster loses the node everyone is connected to: an `ivy worker` serves
# quorum queues and `ivy bench --no-worker` sends 2,000 calls at 200 a second, both with the
# cluster's other nodes in `failover=`; after 500 tasks have run, the first node's Erlang VM is
# killed with SIGKILL. Passes when every call the cluster confirmed got its result, the worker
# moved to another node by itself and still serves, and nothing is left in the queue.
#
# usage: scripts/amqp-cluster-test.sh   (needs the Redis of `scripts/services.sh up`; run by `make test`)
# The nodes ivyc1, ivyc2 and ivyc3 @127.0.0.1 listen on 127.0.0.1:5790, 5792 and 5794 (TLS on the
# next port up), Erlang distribution 25790, 25792, 25794, their own epmd on 4490, rabbitmqctl on
# 35790-35819; their data is in .services/rabbitmq-ivyc*, removed afterwards. IVY_BINARY: the ivy
# to test (default .build/debug/ivy).
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
redis_port=${IVY_REDIS_PORT:-6390}
say() { echo "amqp-cluster: $*" >&2; }
started=$SECONDS

cookie=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
# node N COMMAND...: scripts/services.sh COMMAND for node ivycN of the cluster.
node() {
  local n=$1
  shift
  IVY_RABBITMQ_NAME=ivyc$n IVY_AMQP_PORT=$((5788 + 2 * n)) IVY_AMQPS_PORT=$((5789 + 2 * n)) \
    IVY_RABBITMQ_DIST_PORT=$((25788 + 2 * n)) IVY_RABBITMQ_EPMD_PORT=4490 \
    IVY_RABBITMQ_CTL_PORTS=$((35780 + 10 * n))-$((35789 + 10 * n)) IVY_RABBITMQ_COOKIE=$cookie \
    scripts/services.sh "$@"
}
work=$(mktemp -d)
worker_pid=
cleanup() {
  local status=$?
  for pid in ${worker_pid:-} ${bench_pid:-}; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done
  for n in 3 2 1; do node "$n" rabbitmq-down >/dev/null 2>&1 || true; done
  if [ "$status" -ne 0 ] && [ -f "$work/cluster.log" ]; then say "rabbitmqctl's:"; tail -20 "$work/cluster.log" >&2; fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
redis-cli -p "$redis_port" PING >/dev/null 2>&1 || {
  say "FAIL: no Redis on 127.0.0.1:$redis_port (scripts/services.sh up)"
  exit 1
}

for n in 1 2 3; do node "$n" rabbitmq-down >/dev/null 2>&1 || true; done
for n in 1 2 3; do node "$n" rabbitmq-up; done
for n in 2 3; do
  for step in stop_app reset "join_cluster ivyc1@127.0.0.1" start_app await_startup; do
    # shellcheck disable=SC2086 # the step's words are rabbitmqctl's arguments
    node "$n" ctl -q $step >>"$work/cluster.log" 2>&1 || { say "FAIL: rabbitmqctl $step on ivyc$n"; exit 1; }
  done
done
members=$(node 1 ctl -q cluster_status --formatter json | python3 -c 'import json, sys; print(len(json.load(sys.stdin)["running_nodes"]))')
[ "$members" = 3 ] || { say "FAIL: the cluster has $members running nodes, not 3"; exit 1; }
say "three nodes clustered in $((SECONDS - started)) s"

queue_url="amqp://ivy:ivy-test-password@127.0.0.1:5790/ivytest?queue_type=quorum&connection_timeout=5&failover=127.0.0.1:5792,127.0.0.1:5794"
notify_url="redis://127.0.0.1:$redis_port/14"
amqpctl() { node 2 "ctl" "$@"; }
. scripts/amqp-outage.sh
outage_start
beam=$(cat "$(readlink -f .services/rabbitmq-ivyc1)/rabbitmq.pid")
say "kill -9 node ivyc1 (pid $beam), which the worker and the producer are connected to"
kill -KILL "$beam"
outage_check "the cluster moved"
if grep -q "connected to another node of the cluster" "$work/worker.log"; then
  say "ok   the worker moved to another node by itself"
else
  say "FAIL: the worker did not move to another node"
  status=1
fi
if [ "$status" = 0 ]; then say "passed in $((SECONDS - started)) s"; fi
exit $status
