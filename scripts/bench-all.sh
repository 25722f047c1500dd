#!/usr/bin/env bash
# `make bench`: `ivy bench --json` on every backend, with the servers `make test` uses, and one
# table at the end. Each row's command is printed above the table, as BENCHMARKS.md quotes it.
#
# usage: scripts/bench-all.sh [IVY_BENCH_ARGUMENTS...]   (default: -n 20000 -c 64 --latency-calls 1000)
# IVY_BINARY picks the binary (default .build/release/ivy). Servers already running on the
# ports of `scripts/services.sh` are used as they are; servers this script started are stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=${IVY_BINARY:-.build/release/ivy}
[[ -x $ivy ]] || { echo "bench-all: no $ivy; run \`swift build -c release --product ivy\` first" >&2; exit 2; }
arguments=("$@")
[[ ${#arguments[@]} -gt 0 ]] || arguments=(-n 20000 -c 64 --latency-calls 1000)

started=0
if ! (exec 3<>/dev/tcp/127.0.0.1/"${IVY_REDIS_PORT:-6390}") 2>/dev/null; then
  scripts/services.sh up || { scripts/services.sh down; exit 1; }
  started=1
fi
cleanup() { if [[ $started == 1 ]]; then scripts/services.sh down; fi; }
trap cleanup EXIT
while IFS='=' read -r variable value; do export "$variable=$value"; done < <(scripts/services.sh env)

# name, queue URL, notifier URL: IronMQ and RabbitMQ carry no results, Redis does.
backends=(
  "memory|memory://|memory://"
  "redis|$IVY_REDIS_URL|$IVY_REDIS_URL"
  "ironmq|$IVY_IRONMQ_URL|$IVY_REDIS_URL"
  "rabbitmq|$IVY_AMQP_URL|$IVY_REDIS_URL"
)
results=$(mktemp)
errors=$(mktemp)
trap 'rm -f "$results" "$errors"; cleanup' EXIT
# A URL's password or token as ***: user:password@ and token@ alike.
masked() { sed -E 's#//([^:@/]+):[^@/]*@#//\1:***@#g; s#//([^:@/]+)@#//***@#g' <<<"$1"; }
status=0
for entry in "${backends[@]}"; do
  IFS='|' read -r name queue notify <<<"$entry"
  # The command as BENCHMARKS.md shows it: the URLs of `scripts/services.sh env`, secrets masked.
  echo "bench-all: $name: $(masked "ivy bench --queue '$queue' --notify '$notify' ${arguments[*]} --json")" >&2
  if json=$("$ivy" bench --queue "$queue" --notify "$notify" "${arguments[@]}" --json 2>"$errors"); then
    echo "$name $json" >>"$results"
  else
    echo "bench-all: $name failed; its last lines:" >&2
    tail -5 "$errors" >&2
    echo "$name $json" >>"$results"
    status=1
  fi
done

python3 - "$results" <<'PY'
import json, sys
print(f"{'backend':<10} {'enqueue/s':>11} {'round trips/s':>14} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'errors':>7}")
for line in open(sys.argv[1]):
    name, _, text = line.strip().partition(" ")
    try:
        r = json.loads(text)
    except ValueError:
        print(f"{name:<10} (no result)")
        continue
    def number(key, form="{:,.0f}"):
        return form.format(r[key]) if key in r else "-"
    print(f"{name:<10} {number('enqueue_per_s'):>11} {number('roundtrip_per_s'):>14} "
          f"{number('p50_ms', '{:.3f}'):>8} {number('p90_ms', '{:.3f}'):>8} {number('p99_ms', '{:.3f}'):>8} "
          f"{r.get('errors', '-'):>7}")
PY
exit $status
