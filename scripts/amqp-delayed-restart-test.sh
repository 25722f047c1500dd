#!/usr/bin/env bash
# A call for later survives a RabbitMQ restart: `ivy call --in 8` sends a call onto a quorum
# queue, where it waits in a durable delay queue as a persistent message; the broker's
# application is stopped and started again (every connection dropped, the queues down); only
# then an `ivy worker` starts. Passes when the worker runs the call, at attempt 1, no sooner
# than its eta (less 10 ms: the eta's millisecond and the worker's 5 ms tolerance; a lower
# bound, which a loaded machine cannot break).
#
# Classic queues by default (IVY_QUEUE_TYPE=quorum for quorum queues): on RabbitMQ 3.10 (Debian's
# package) a quorum delay queue does not expire a message whose TTL ran out while the broker was
# down until something else is published to that queue (rabbitmq/rabbitmq-server#10718 reports
# quorum TTL expiry stalling), so the quorum form fails there; see PROTOCOL.md §9.
#
# usage: scripts/amqp-delayed-restart-test.sh      (needs `scripts/services.sh up`; run by `make test`)
# IVY_BINARY: the ivy to test (default .build/debug/ivy).
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
say() { echo "amqp-delayed-restart: $*" >&2; }
while IFS= read -r line; do export "$line"; done < <(scripts/services.sh env)  # not eval: paths may hold spaces
queue_type=${IVY_QUEUE_TYPE:-classic}
queue_url="$IVY_AMQP_URL?queue_type=$queue_type&connection_timeout=5"
work=$(mktemp -d)
worker_pid=
delete_queues() {
  local name
  for name in $(scripts/services.sh ctl -s list_queues -p ivytest name 2>/dev/null | grep -E '^testpackage(\.|$)'); do
    scripts/services.sh ctl delete_queue -p ivytest "$name" >/dev/null 2>&1 || true
  done
}
cleanup() {
  if [ -n "$worker_pid" ]; then { kill "$worker_pid" && wait "$worker_pid"; } 2>/dev/null || true; fi
  scripts/services.sh ctl start_app >/dev/null 2>&1 || true
  delete_queues
  rm -rf "$work"
}
trap cleanup EXIT

delete_queues
sent_at=$(date +%s.%N)
id=$("$ivy" call testpackage.add 2 3 --in 8 --queue "$queue_url" 2>"$work/call.err")
say "sent $id for 8 s later"
say "stopping RabbitMQ's application (connections dropped, queues down)"
scripts/services.sh ctl stop_app >/dev/null
scripts/services.sh ctl start_app >/dev/null
scripts/services.sh ctl await_startup >/dev/null
say "RabbitMQ is back; starting a worker"
"$ivy" worker --queue "$queue_url" --notify memory:// --json >"$work/events" 2>"$work/worker.log" &
worker_pid=$!
for _ in $(seq 1 600); do grep -q "\"succeeded\"" "$work/events" 2>/dev/null && break; sleep 0.1; done
status=0
python3 - "$work/events" "$id" "$sent_at" <<'PY' || status=$?
import datetime, json, sys
path, task_id, sent_at = sys.argv[1], sys.argv[2], float(sys.argv[3])
events = [json.loads(line) for line in open(path) if line.strip()]
started = [e for e in events if e.get("id") == task_id and e["event"] == "started"]
succeeded = [e for e in events if e.get("id") == task_id and e["event"] == "succeeded"]
if not succeeded:
    print(f"FAIL: the call never ran; events: {events}")
    sys.exit(1)
at = datetime.datetime.fromisoformat(started[0]["time"].replace("Z", "+00:00")).timestamp()
if at < sent_at + 8 - 0.010:
    print(f"FAIL: ran {sent_at + 8 - at:.3f} s before its eta")
    sys.exit(1)
if started[0].get("attempt") != 1:
    print(f"FAIL: ran at attempt {started[0].get('attempt')}")
    sys.exit(1)
print(f"ok   ran {at - sent_at:.3f} s after it was sent (eta 8 s), attempt 1, after the broker restarted")
PY
if [ "$status" -ne 0 ]; then say "the worker's log:"; cat "$work/worker.log" >&2; else say "passed"; fi
exit "$status"
