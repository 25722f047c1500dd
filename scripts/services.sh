#!/usr/bin/env bash
# Starts or stops the servers the integration tests talk to, on loopback and private ports,
# with their data in .services/ (git-ignored).
#   scripts/services.sh up | down | env
# Ports: IVY_REDIS_PORT (default 6390), IVY_IRONMQ_PORT (default 8690: the local IronMQ v3
# server, Tools/ironmq-emulator, project `ivytest`, token `ivy-test-token`, reservations from 1 s).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/.services
redis_port=${IVY_REDIS_PORT:-6390}
ironmq_port=${IVY_IRONMQ_PORT:-8690}
ironmq_token=ivy-test-token
ironmq_project=ivytest

wait_for() {  # wait_for DESCRIPTION COMMAND...: readiness check, bounded to 30 s
  local description=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "services: $description did not become ready" >&2
  return 1
}

redis_up() {
  mkdir -p "$root/redis"
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
    echo "services: redis already answers on 127.0.0.1:$redis_port" >&2
    return 0
  fi
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$root/redis" --appendonly yes \
    --daemonize yes --pidfile "$root/redis/redis.pid" --logfile "$root/redis/redis.log" --save "" \
    --protected-mode yes
  wait_for "redis on 127.0.0.1:$redis_port" redis-cli -h 127.0.0.1 -p "$redis_port" ping
  echo "services: redis on 127.0.0.1:$redis_port" >&2
}

redis_down() {
  if [ -f "$root/redis/redis.pid" ]; then
    redis-cli -h 127.0.0.1 -p "$redis_port" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$root/redis/redis.pid")" 2>/dev/null || true
    rm -f "$root/redis/redis.pid"
  fi
}

ironmq_answers() {  # the queue list, authorised: HTTP 200
  python3 -c 'import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "OAuth " + sys.argv[2]})
urllib.request.urlopen(request, timeout=2).read()' \
    "http://127.0.0.1:$ironmq_port/3/projects/$ironmq_project/queues" "$ironmq_token"
}

ironmq_up() {
  mkdir -p "$root/ironmq"
  if ironmq_answers 2>/dev/null; then
    echo "services: IronMQ already answers on 127.0.0.1:$ironmq_port" >&2
    return 0
  fi
  nohup python3 Tools/ironmq-emulator/ironmq_emulator.py --host 127.0.0.1 --port "$ironmq_port" \
    --token "$ironmq_token" --project "$ironmq_project" --min-timeout 1 \
    >"$root/ironmq/ironmq.log" 2>&1 &
  echo $! >"$root/ironmq/ironmq.pid"
  wait_for "IronMQ on 127.0.0.1:$ironmq_port" ironmq_answers
  echo "services: IronMQ on 127.0.0.1:$ironmq_port" >&2
}

ironmq_down() {
  if [ -f "$root/ironmq/ironmq.pid" ]; then
    kill "$(cat "$root/ironmq/ironmq.pid")" 2>/dev/null || true
    rm -f "$root/ironmq/ironmq.pid"
  fi
}

case "${1:-}" in
  up) redis_up; ironmq_up ;;
  down) redis_down; ironmq_down; rm -rf "$root" ;;
  env)
    echo "IVY_REDIS_URL=redis://127.0.0.1:$redis_port"
    echo "IVY_IRONMQ_URL=ironmq+http://$ironmq_token@127.0.0.1:$ironmq_port/$ironmq_project?min_timeout=1" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
