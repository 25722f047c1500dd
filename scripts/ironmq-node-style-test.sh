#!/usr/bin/env bash
# A node-ivy message posted by Iron.io's own Python client into the local IronMQ server is run by
# `ivy worker`, and its result is published on the base notification channel (PROTOCOL.md §3),
# where node ivy's producers listen: once in plaintext, once sealed in node ivy's own
# `$aes-256-cbc$` format (answered in plaintext, which node ivy's producers read). Needs the
# servers of `scripts/services.sh up` and the virtualenv scripts/ironmq-emulator-test.sh makes;
# without Iron.io's client (no PyPI) it says so and passes, unless IVY_REQUIRE_OFFICIAL_CLIENT=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/debug/ivy}
redis_port=${IVY_REDIS_PORT:-6390}
ironmq_port=${IVY_IRONMQ_PORT:-8690}
python=.build-venv/tools/bin/python
queue_url="ironmq+http://ivy-test-token@127.0.0.1:$ironmq_port/ivytest?min_timeout=1"
within=60
say() { echo "ironmq-node-style: $*"; }

if ! [ -x "$python" ] || ! "$python" -c 'import iron_mq' >/dev/null 2>&1; then
  say "SKIPPED: Iron.io's client is not installed (see scripts/ironmq-emulator-test.sh)"
  [ "${IVY_REQUIRE_OFFICIAL_CLIENT:-0}" = 1 ] && exit 1
  exit 0
fi

logs=$(mktemp -d "${TMPDIR:-/tmp}/ivy-node-style.XXXXXX")
worker_pid="" subscriber_pid=""
cleanup() {
  local status=$?
  [ -n "$subscriber_pid" ] && kill "$subscriber_pid" 2>/dev/null || true
  if [ -n "$worker_pid" ]; then kill -TERM "$worker_pid" 2>/dev/null || true; wait "$worker_pid" 2>/dev/null || true; fi
  if [ "$status" -ne 0 ]; then for log in "$logs"/*; do echo "---- $(basename "$log")" >&2; tail -n 20 "$log" >&2; done; fi
  rm -rf "$logs"
  exit "$status"
}
trap cleanup EXIT
fail() { say "FAIL: $*" >&2; exit 1; }

# await FILE TEXT: waits until FILE holds TEXT, for $within seconds at most.
await() {
  local deadline=$((SECONDS + within))
  until grep -q -- "$2" "$1" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.1
  done
}

redis-cli -p "$redis_port" SUBSCRIBE ivy-notifier >"$logs/subscriber.out" 2>&1 &
subscriber_pid=$!
await "$logs/subscriber.out" "subscribe" || fail "could not subscribe to ivy-notifier"
export MESSAGES_ENCRYPTION_KEY=node-style-test-key # the worker's and `ivy encrypt`'s
"$ivy" worker --queue "$queue_url" --notify "redis://127.0.0.1:$redis_port" --concurrency 2 \
  >"$logs/worker.out" 2>"$logs/worker.err" &
worker_pid=$!
await "$logs/worker.err" "serving" || fail "ivy worker did not start"
# check ARGS_JSON RESULT [--encrypt-with IVY]: posts testpackage.factorial(ARGS) node-style and
# waits for its notification, which must hold RESULT (a grep pattern).
check() {
  local id
  id=$("$python" Tools/ironmq-emulator/post_node_style.py 127.0.0.1 "$ironmq_port" ivytest ivy-test-token \
    testpackage testpackage.factorial "$1" "${@:3}") || fail "Iron.io's client could not post"
  await "$logs/subscriber.out" "\"id\":\"$id\"" || fail "no notification for message $id on ivy-notifier"
  grep -- "\"id\":\"$id\"" "$logs/subscriber.out" | grep -q "\"result\":$2" ||
    fail "the notification for $id does not hold the result $2: $(grep -- "\"id\":\"$id\"" "$logs/subscriber.out")"
}
check '[5]' '\[120\]'
say "a node-ivy message posted by Iron.io's client ran on ivy worker; its result [120] came on ivy-notifier"
check '[6]' '\[720\]' --encrypt-with "$ivy"
say "the same in node ivy's \$aes-256-cbc\$ format; its result [720] came on ivy-notifier in plaintext"
kill -TERM "$worker_pid"
wait "$worker_pid" || fail "ivy worker did not exit 0 after SIGTERM"
worker_pid=""
