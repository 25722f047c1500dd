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
  [ -n "$worker_pid" ] && kill "$worker_pid" 2>/dev/null && wait "$worker_pid" 2>/dev/null
  scripts/services.sh ctl start_app >/dev/null 2>&1 || true
  delete_queues
  rm -rf "$work"
}
trap cleanup EXIT

delete_queues
"$ivy" worker --queue "$queue_url" --notify "$notify_url" --concurrency 16 --events 2>"$work/worker.log" &
worker_pid=$!
for _ in $(seq 1 300); do grep -q serving "$work/worker.log" && break; sleep 0.1; done
grep -q serving "$work/worker.log" || { say "FAIL: the worker did not start"; cat "$work/worker.log" >&2; exit 1; }

"$ivy" bench --no-worker --queue "$queue_url" --notify "$notify_url" -n 2000 --rate 200 -c 32 \
  --timeout 120 --phases enqueue --json >"$work/bench.out" 2>"$work/bench.err" &
bench_pid=$!
# Halfway (500 tasks run, as the worker's events show), the broker goes away for a moment, and
# comes back with the same data.
for _ in $(seq 1 600); do
  [ "$(grep -c 'event: succeeded' "$work/worker.log" || true)" -ge 500 ] && break
  sleep 0.1
done
say "stopping RabbitMQ's application (connections dropped, queues down)"
scripts/services.sh ctl stop_app >/dev/null
sleep 2
scripts/services.sh ctl start_app >/dev/null
scripts/services.sh ctl await_startup >/dev/null
say "RabbitMQ is back"

status=0
wait "$bench_pid" || true
line=$(tail -1 "$work/bench.out")
say "bench: $line"
python3 - "$line" <<'EOF' || status=1
import json, sys
run = json.loads(sys.argv[1])
# A send the broker never confirmed is reported to its caller (a send error); every call it
# did confirm must come back with its result.
assert run["result_errors"] == 0, f"{run['result_errors']} confirmed calls got no result"
assert run["tasks"] - run["send_errors"] >= 1000, f"only {run['tasks'] - run['send_errors']} calls went through"
print(f"amqp-restart: ok   {run['tasks'] - run['send_errors']} confirmed calls all answered, "
      f"{run['send_errors']} refused while the broker was away", file=sys.stderr)
EOF
if grep -q "lost the connection to the broker; reconnecting" "$work/worker.log"; then
  say "ok   the worker saw the connection go (and the call below shows it came back)"
else
  say "FAIL: the worker did not notice the broker going away"
  status=1
fi
kill -0 "$worker_pid" 2>/dev/null || { say "FAIL: the worker died"; status=1; }
# Still serving after the restart: one more call goes through.
if "$ivy" demo --no-worker -n 6 --queue "$queue_url" --notify "$notify_url" >"$work/demo.out" 2>&1; then
  say "ok   $(tail -1 "$work/demo.out") after the restart"
else
  say "FAIL: a call after the restart failed: $(tail -3 "$work/demo.out")"
  status=1
fi
# rabbitmqctl's counts are statistics the broker refreshes every few seconds: wait for them.
left=unknown
for _ in $(seq 1 60); do
  left=$(scripts/services.sh ctl -s list_queues -p ivytest name messages_ready messages_unacknowledged 2>/dev/null |
    awk '$1 == "testpackage" { print $2 + $3 }')
  [ "${left:-0}" = 0 ] && break
  sleep 0.5
done
if [ "${left:-0}" = 0 ]; then say "ok   nothing left in the queue"; else
  say "FAIL: $left messages left in the queue"
  status=1
fi
if [ "$status" = 0 ]; then say "passed"; else
  say "worker log:"
  tail -20 "$work/worker.log" >&2
  tail -5 "$work/bench.err" >&2
fi
exit $status
