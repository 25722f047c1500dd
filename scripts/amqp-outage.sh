# Sourced by scripts/amqp-restart-test.sh and scripts/amqp-cluster-test.sh: an `ivy worker` and an
# `ivy bench --no-worker` producer through an outage of the broker, and the checks after it.
# The caller sets ivy, queue_url, notify_url, work (a directory) and say(), defines amqpctl()
# (rabbitmqctl against a node that is up after the outage), and calls, in order:
#   outage_start; <the outage>; outage_check WHAT-THE-OUTAGE-WAS
# which sets status (0: passed). worker_pid is the worker's, for the caller's cleanup.

worker_pid=
bench_pid=
status=0

# The worker, and the producer's 2,000 calls at 200 a second; returns once 500 tasks have run.
outage_start() {
  "$ivy" worker --queue "$queue_url" --notify "$notify_url" --concurrency 16 --events 2>"$work/worker.log" &
  worker_pid=$!
  for _ in $(seq 1 300); do grep -q serving "$work/worker.log" && break; sleep 0.1; done
  grep -q serving "$work/worker.log" || { say "FAIL: the worker did not start"; cat "$work/worker.log" >&2; exit 1; }
  "$ivy" bench --no-worker --queue "$queue_url" --notify "$notify_url" -n 2000 --rate 200 -c 32 \
    --timeout 120 --phases enqueue --json >"$work/bench.out" 2>"$work/bench.err" &
  bench_pid=$!
  for _ in $(seq 1 600); do
    [ "$(grep -c ' succeeded testpackage\.' "$work/worker.log" || true)" -ge 500 ] && break
    sleep 0.1
  done
}

# Every call the broker confirmed answered (a send it never confirmed is reported to its caller),
# the worker back by itself and still serving, nothing left in the queue.
outage_check() {
  local line left
  wait "$bench_pid" || true
  line=$(tail -1 "$work/bench.out")
  say "bench: $line"
  if verdict=$(python3 - "$line" "$1" 2>&1 <<'PY'
import json, sys
run, outage = json.loads(sys.argv[1]), sys.argv[2]
through = run["tasks"] - run["send_errors"]
if run["result_errors"] or through < 1000:
    print(f"FAIL: {run['result_errors']} confirmed calls got no result; {through} calls went through")
    sys.exit(1)
print(f"ok   {through} confirmed calls all answered, {run['send_errors']} refused while {outage}")
PY
  ); then say "$verdict"; else
    say "${verdict:-FAIL: no report from the bench}"
    status=1
  fi
  if grep -q "lost the connection to the broker; reconnecting" "$work/worker.log"; then
    say "ok   the worker saw its connection go"
  else
    say "FAIL: the worker did not notice its connection go"
    status=1
  fi
  kill -0 "$worker_pid" 2>/dev/null || { say "FAIL: the worker died"; status=1; }
  if "$ivy" demo --no-worker -n 6 --queue "$queue_url" --notify "$notify_url" >"$work/demo.out" 2>&1; then
    say "ok   $(tail -1 "$work/demo.out"): the worker serves again"
  else
    say "FAIL: a call after the outage failed: $(tail -3 "$work/demo.out")"
    status=1
  fi
  # rabbitmqctl's counts are statistics the broker refreshes every few seconds: wait for them.
  left=unknown
  for _ in $(seq 1 60); do
    left=$(amqpctl -s list_queues -p ivytest name messages 2>/dev/null | awk '$1 == "testpackage" { print $2 }' || true)
    [ "${left:-unknown}" = 0 ] && break
    sleep 0.5
  done
  if [ "${left:-unknown}" = 0 ]; then say "ok   nothing left in the queue"; else
    say "FAIL: ${left:-unknown} messages left in the queue"
    status=1
  fi
  if [ "$status" -ne 0 ]; then
    say "the worker's log, without its task events:"
    { grep -v '^event:' "$work/worker.log" | tail -20 >&2; } || true
    say "the producer's:"
    tail -5 "$work/bench.err" >&2 || true
  fi
}
