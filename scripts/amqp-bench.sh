#!/usr/bin/env bash
# Ivy beside Celery on the same RabbitMQ node, in one run: the same echo task, results in the same
# Redis, rounds taken in turn, and a Markdown table of medians (BENCHMARKS.md, AMQP).
#
# usage: scripts/amqp-bench.sh [ROUNDS [TASKS]]     (defaults: 3 rounds of 5000 calls)
# Needs `scripts/services.sh up` (RabbitMQ on IVY_AMQP_PORT, Redis on IVY_REDIS_PORT). Celery
# comes from PyPI into .build-venv/celery. Measures IVY_BINARY if given, else this checkout's
# release build (brought up to date first). Environment: IVY_BENCH_QUEUE_TYPE (quorum, the
# default, or classic), IVY_BENCH_IN_FLIGHT (64).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1
rounds=${1:-3}
tasks=${2:-5000}
in_flight=${IVY_BENCH_IN_FLIGHT:-64}
queue_type=${IVY_BENCH_QUEUE_TYPE:-quorum}
say() { echo "amqp-bench: $*" >&2; }

while IFS= read -r line; do export "$line"; done < <(scripts/services.sh env)  # not eval: paths may hold spaces
redis_port=${IVY_REDIS_PORT:-6390}
redis-cli -p "$redis_port" PING >/dev/null 2>&1 || {
  say "FAIL: no Redis on 127.0.0.1:$redis_port (scripts/services.sh up)"
  exit 1
}

venv=.build-venv/celery
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c 'import celery, redis' 2>/dev/null; then
  say "installing Celery from PyPI into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'celery[redis]>=5.3' >&2
fi

ivy=${IVY_BINARY:-}
if [ -z "$ivy" ]; then
  swift build -c release --product ivy >&2
  ivy=.build/release/ivy
fi
say "ivy $ivy, $(git rev-parse --short HEAD 2>/dev/null || echo "?")$(git diff --quiet 2>/dev/null || echo ' with uncommitted changes')"

# Each contender has queues of its own; the queue type is Ivy's choice for its queues, while
# Celery declares classic queues (its default).
ivy_queue="$IVY_AMQP_URL?queue_type=$queue_type"
results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$rounds"); do
  say "round $round of $rounds: ivy"
  "$ivy" bench --queue "$ivy_queue" --notify "redis://127.0.0.1:$redis_port/12" -n "$tasks" -c "$in_flight" \
    --latency-calls 500 --phases roundtrip,latency --json | tail -1 | sed 's/^/ivy /' >>"$results"
  say "round $round of $rounds: celery"
  "$venv/bin/python" Tools/celery-bench/celery_bench.py --broker "$IVY_AMQP_URL" \
    --backend "redis://127.0.0.1:$redis_port/11" --tasks "$tasks" --in-flight "$in_flight" \
    --latency-calls 500 | tail -1 | sed 's/^/celery /' >>"$results"
done

python3 - "$results" "$rounds" "$tasks" "$in_flight" "$queue_type" <<'EOF'
import json, statistics, sys
path, rounds, tasks, in_flight, queue_type = sys.argv[1:]
runs = {"ivy": [], "celery": []}
for line in open(path):
    name, _, text = line.partition(" ")
    runs[name].append(json.loads(text))
def median(name, *keys):
    values = []
    for run in runs[name]:
        for key in keys:
            if key in run:
                values.append(float(run[key]))
                break
    return statistics.median(values) if values else float("nan")
ivy_rt = median("ivy", "roundtrip_per_s")
celery_rt = median("celery", "roundtrip_per_s")
ivy_p50 = median("ivy", "latency_p50_ms", "p50_ms")
celery_p50 = median("celery", "p50_ms")
errors = sum(int(run.get("errors", 0)) for name in runs for run in runs[name])
version = runs["celery"][0].get("celery", "?") if runs["celery"] else "?"
print(f"RabbitMQ, {rounds} rounds of {tasks} calls, {in_flight} in flight; medians; Ivy on {queue_type} queues")
print()
print("| | round trips/s | p50 latency |")
print("|---|---:|---:|")
print(f"| ivy | {ivy_rt:,.0f} | {ivy_p50:.2f} ms |")
print(f"| Celery {version} (threads pool) | {celery_rt:,.0f} | {celery_p50:.2f} ms |")
print(f"| ratio | {ivy_rt / celery_rt:.1f}× | {celery_p50 / ivy_p50:.1f}× lower |")
print()
print(f"errors: {errors}")
sys.exit(1 if errors else 0)
EOF
