#!/usr/bin/env bash
# RabbitMQ restarted mid-stream: an `ivy worker` in its own process serves quorum queues while
# `ivy bench --no-worker` sends 2,000 calls at 200 a second; halfway through, the broker's
# application is stopped (every connection dropped, the queues down) and started again. Passes
# when every call the broker confirmed got its result (the bench's errors are only sends refused
# while the broker was away, each reported to its caller), the worker reconnected by itself and
# is still serving, and nothing is left in the queue.
#
# usage: scripts/amqp-restart-test.sh      (needs `scripts/services.sh up`; run by `make test`)
# IVY_BINARY: the ivy to test (default .build/debug/ivy).
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
say() { echo "amqp-restart: $*" >&2; }
while IFS= read -r line; do export "$line"; done < <(scripts/services.sh env)  # not eval: paths may hold spaces
queue_url="$IVY_AMQP_URL?queue_type=quorum&connection_timeout=5"
notify_url="redis://127.0.0.1:${IVY_REDIS_PORT:-6390}/13"
work=$(mktemp -d)
worker_pid=
# The example tasks' queue and the queues beside it, gone: another run may have declared them
# with the other queue type, which the broker would refuse to redeclare.
delete_queues() {
  local name
  for name in $(scripts/services.sh ctl -s list_queues -p ivytest name 2>/dev/null | grep -E '^testpackage(\.|$)'); do
    scripts/services.sh ctl delete_queue -p ivytest "$name" >/dev/null 2>&1 || true
  done
}
cleanup() {
  for pid in ${worker_pid:-} ${bench_pid:-}; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done
  scripts/services.sh ctl start_app >/dev/null 2>&1 || true
  delete_queues
  rm -rf "$work"
}
trap cleanup EXIT

delete_queues
amqpctl() { scripts/services.sh ctl "$@"; }
. scripts/amqp-outage.sh
outage_start
# Halfway, the broker goes away for a moment, and comes back with the same data.
say "stopping RabbitMQ's application (connections dropped, queues down)"
scripts/services.sh ctl stop_app >/dev/null
sleep 2
scripts/services.sh ctl start_app >/dev/null
scripts/services.sh ctl await_startup >/dev/null
say "RabbitMQ is back"
outage_check "the broker was away"
[ "$status" -ne 0 ] || say "passed"
exit "$status"
