#!/usr/bin/env bash
# Builds the Examples package (a separate package that depends on Ivy by path, as a user's
# would) and runs it with its queue on Redis, then on the local IronMQ server, then on the
# private RabbitMQ node (results through Redis every time): its worker in the background, its producer, whose output must be the
# expected results, then SIGTERM: the worker drains and exits 0.
#
# Environment: IVY_REDIS_URL (default redis://127.0.0.1:6390), IVY_IRONMQ_PORT (default 8690)
# and IVY_AMQP_URL (default the node's), the servers scripts/services.sh up starts. Each run's waits for the worker, the producer
# and the worker's exit share one deadline of 120 s (IVY_EXAMPLES_DEADLINE).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

url=${IVY_REDIS_URL:-redis://127.0.0.1:6390}
ironmq_url="ironmq+http://ivy-test-token@127.0.0.1:${IVY_IRONMQ_PORT:-8690}/ivytest?min_timeout=1"
amqp_url="${IVY_AMQP_URL:-amqp://ivy:ivy-test-password@127.0.0.1:${IVY_AMQP_PORT:-5690}/ivytest}"
amqp_url="$amqp_url$(case $amqp_url in *\?*) echo '&' ;; *) echo '?' ;; esac)queue_type=quorum"
within=${IVY_EXAMPLES_DEADLINE:-120}
unset IVY_QUEUE_URL IVY_NOTIFY_URL IVY_NOTIFICATION_CHANNEL_NAME

say() { echo "examples-test: $*"; }
fail() {
  echo "examples-test: FAIL: $*" >&2
  exit 1
}

logs=$(mktemp -d "${TMPDIR:-/tmp}/ivy-examples.XXXXXX")
worker_pid=""

cleanup() {
  local status=$?
  if [ -n "$worker_pid" ] && kill -0 "$worker_pid" 2>/dev/null; then
    kill -KILL "$worker_pid" 2>/dev/null || true
    wait "$worker_pid" 2>/dev/null || true
  fi
  if [ "$status" -ne 0 ]; then
    for log in "$logs"/*; do
      [ -f "$log" ] || continue
      echo "---- $(basename "$log") (last 40 lines) ----" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$logs"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

say "building the Examples package"
if ! swift build --package-path Examples >"$logs/build.log" 2>&1; then
  # Examples/.build holds Ivy built as a dependency, and SwiftPM does not always notice that
  # Ivy's own sources were added or moved since ("missing inputs", "cannot find … in scope"):
  # once more, from clean, before calling it a failure.
  say "the build failed; building again from clean"
  rm -rf Examples/.build
  swift build --package-path Examples >"$logs/build.log" 2>&1 || fail "swift build --package-path Examples failed"
fi
if grep -E "warning:|prohibited flag" "$logs/build.log" >&2; then fail "the Examples build has warnings"; fi
bin=$(swift build --package-path Examples --show-bin-path)
# run QUEUE_URL LABEL: the worker and the producer of the Examples package on that queue.
run() {
  local queue=$1 label=$2 status=0
  deadline=$((SECONDS + within))
  : >"$logs/worker.log"
  "$bin/worker" "$queue" "$url" >"$logs/worker.log" 2>&1 &
  worker_pid=$!
  until grep -q "worker info: serving" "$logs/worker.log"; do
    kill -0 "$worker_pid" 2>/dev/null || fail "$label: the worker exited before serving"
    [ "$SECONDS" -lt "$deadline" ] || fail "$label: the worker did not start serving within ${within} s"
    sleep 0.1
  done
  say "$label: worker $worker_pid serving"

  timeout "$(remaining)" "$bin/producer" "$queue" "$url" >"$logs/producer.out" 2>"$logs/producer.log" \
    || fail "$label: the producer failed (status $?)"
  expected=$'shop.price(apple, 3) = 1.5\nshop.slowHello(Ada) = Hello, Ada!\nstatus: succeeded'
  [ "$(cat "$logs/producer.out")" = "$expected" ] \
    || fail "$label: unexpected producer output: $(cat "$logs/producer.out")"
  grep -q "greeting Ada on attempt 1" "$logs/worker.log" \
    || fail "$label: the task did not log its attempt (TaskContext)"
  say "$label: producer printed the expected results"

  kill -TERM "$worker_pid"
  while kill -0 "$worker_pid" 2>/dev/null; do
    [ "$SECONDS" -lt "$deadline" ] || fail "$label: the worker did not exit within ${within} s of starting"
    sleep 0.1
  done
  wait "$worker_pid" || status=$?
  worker_pid=""
  [ "$status" -eq 0 ] || fail "$label: the worker exited with status $status after SIGTERM"
  grep -q "worker info: stopped" "$logs/worker.log" || fail "$label: the worker did not report its drain"
  say "$label: worker drained and exited 0"
}

# remaining: seconds left before the deadline (at least 1).
remaining() { local left=$((deadline - SECONDS)); echo $((left > 0 ? left : 1)); }

run "$url" "redis"
run "$ironmq_url" "ironmq"
run "$amqp_url" "amqp"
say "passed in $((SECONDS - started)) s"
