#!/bin/bash
# Compares `ivy bench` builds fairly on a noisy machine: runs alternate between the binaries,
# and each binary's medians are printed at the end, with the CPU each call cost in the bench
# process and (for redis:// URLs) in the redis-server listening on the URL's port.
#
# usage: scripts/bench-compare.sh [-n TASKS] [-c IN_FLIGHT] [-r ROUNDS] [--notify URL] QUEUE_URL IVY_BINARY...
# e.g.   scripts/bench-compare.sh -r 5 redis://127.0.0.1:6390 /tmp/old/ivy .build/release/ivy
set -euo pipefail

tasks=20000 in_flight=64 rounds=5 notify=""
while [[ $# -gt 0 && $1 == -* ]]; do
  case $1 in
    -n) tasks=$2; shift 2 ;;
    -c) in_flight=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    --notify) notify=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[[ $# -ge 2 ]] || { sed -n 2,7p "$0" >&2; exit 2; }
queue=$1; shift
notify=${notify:-$queue}
latency_calls=500
calls=$((2 * tasks + latency_calls))

redis_pid=""
if [[ $queue == redis://* ]]; then
  port=$(sed -E 's|redis://([^@/]*@)?[^:/]*:?([0-9]*).*|\2|' <<<"$queue")
  redis_pid=$(pgrep -f "redis-server .*:${port:-6379}" | head -1 || true)
fi
ticks() { if [[ -n $redis_pid ]]; then awk '{print $14 + $15}' "/proc/$redis_pid/stat"; else echo 0; fi; }
hz=$(getconf CLK_TCK)
field() { grep -o "\"$1\":[0-9.]*" <<<"$2" | cut -d: -f2; }

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for _ in $(seq "$rounds"); do
  for binary in "$@"; do
    before=$(ticks)
    if ! output=$({ /usr/bin/time -f "CPU %U %S" "$binary" bench --queue "$queue" --notify "$notify" \
      -n "$tasks" -c "$in_flight" --latency-calls "$latency_calls" --json; } 2>&1); then
      echo "$binary failed:" >&2
      echo "$output" >&2
      exit 1
    fi
    after=$(ticks)
    json=$(grep '^{' <<<"$output" | tail -1)
    cpu=$(awk '/^CPU/ {print $2 + $3}' <<<"$output")
    ivy_us=$(awk -v c="$cpu" -v n="$calls" 'BEGIN {printf "%.0f", c * 1e6 / n}')
    redis_us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$calls" 'BEGIN {printf "%.0f", t / hz * 1e6 / n}')
    line="$(field enqueue_per_s "$json") $(field roundtrip_per_s "$json") $(field p50_ms "$json") $(field p90_ms "$json") $(field p99_ms "$json") $ivy_us $redis_us"
    echo "$binary: $line" >&2
    echo "$binary $line" >>"$results"
  done
done
echo "medians: enqueue/s, round trips/s, p50, p90, p99 ms, CPU µs per call (bench, redis-server)"
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
for binary in "$@"; do
  row="$binary:"
  for column in 2 3 4 5 6 7 8; do
    row+=" $(awk -v b="$binary" -v c="$column" '$1 == b {print $c}' "$results" | median)"
  done
  echo "$row"
done
