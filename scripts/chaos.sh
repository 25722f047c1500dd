#!/usr/bin/env bash
# Chaos suite: faults and bad input against Ivy on Redis, asserted from Redis and from the bench.
#
#   scripts/chaos.sh [--short]
#
# Starts its own redis-server (AOF, appendfsync always) on a private loopback port, two
# `ivy worker` processes and an `ivy bench --no-worker --phases enqueue` producer, all with durable
# results. While the bench sends, each round SIGKILLs a worker in the middle of long tasks (and
# starts a replacement), then kill -9s redis-server and restarts it on the same port and data;
# the first round also writes poison messages straight into the stream. Then it checks, from the
# bench's JSON and from Redis (its keys, and its AOF for what became of a lost call):
#   - every call the queue accepted got its result, and Redis holds a result for every call
#     that reached the stream; the bench's errors are the sends Redis never got (plus the few
#     whose reply was lost with the connection: in doubt, at most those in flight);
#   - the killed worker's tasks ran again, within CHAOS_RESUME_LIMIT seconds;
#   - every poison message is in the dead letter with a reason (the odd but valid ones ran),
#     and nothing is left in the stream, reserved or delayed;
#   - no worker died unasked; the workers are alive at the end and exit 0 on SIGTERM.
# It prints a table and exits 1 if a check failed, 2 if it could not run. Events are awaited by
# polling Redis or the processes under a deadline.
#
# --short is the form `make test` runs (well under a minute when all is well); the default is
# larger (`make chaos`). Environment:
#   IVY_BINARY          the ivy to run (default .build/debug/ivy); IVY_WORKER_BINARY, if set,
#                       runs the workers instead (to check one build's workers against another)
#   CHAOS_REDIS_PORT    the private Redis's port (default 6391)
#   CHAOS_TASKS, CHAOS_RATE, CHAOS_ROUNDS   calls, sends per second, rounds of faults
#   CHAOS_OUTAGE        whole seconds Redis stays down; CHAOS_KILL_REDIS=0 kills workers only
#   CHAOS_VISIBILITY    the workers' --visibility (default 30, their own default)
#   CHAOS_RESUME_LIMIT  seconds a killed worker's tasks may take to run again (default 10)
#   CHAOS_TIMEOUT       the bench's --timeout; CHAOS_SETTLE: seconds for the queue to settle after
# Logs and Redis data are in .chaos/PORT/, kept when a check fails and removed otherwise.
set -uo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
  --short) mode=short ;;
  "") ;;
  -h | --help) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0"; exit 0 ;;
  *) awk 'NR > 1 && !/^#/ {exit} NR > 1 {sub(/^# ?/, ""); print}' "$0" >&2; exit 2 ;;
esac
if [[ $mode == short ]]; then
  tasks=${CHAOS_TASKS:-3000} rate=${CHAOS_RATE:-250} rounds=${CHAOS_ROUNDS:-1} outage=${CHAOS_OUTAGE:-1}
  timeout=${CHAOS_TIMEOUT:-60} settle=${CHAOS_SETTLE:-45}
else
  tasks=${CHAOS_TASKS:-30000} rate=${CHAOS_RATE:-800} rounds=${CHAOS_ROUNDS:-3} outage=${CHAOS_OUTAGE:-2}
  timeout=${CHAOS_TIMEOUT:-90} settle=${CHAOS_SETTLE:-60}
fi
visibility=${CHAOS_VISIBILITY:-30} resume_limit=${CHAOS_RESUME_LIMIT:-10} kill_redis=${CHAOS_KILL_REDIS:-1}
port=${CHAOS_REDIS_PORT:-6391}
ivy=${IVY_BINARY:-.build/debug/ivy}
worker_ivy=${IVY_WORKER_BINARY:-$ivy}   # to run workers of another build than the bench
in_flight=32
queue_url="redis://127.0.0.1:$port"
notify_url="redis://127.0.0.1:$port?retain_results=120"
stream='ivy:{testpackage}:stream' dead='ivy:{testpackage}:dead'
leases='ivy:{testpackage}:leases' delayed='ivy:{testpackage}:delayed'
# Long tasks that are surely running on the worker when it is SIGKILLed: testpackage.sleep calls
# on a queue of their own that only worker slot 0 serves, results kept on their own channel.
sleep_queue=chaos-sleep sleepers=4 sleep_ms=2000
sleep_stream="ivy:{$sleep_queue}:stream" sleep_leases="ivy:{$sleep_queue}:leases"
sleep_delayed="ivy:{$sleep_queue}:delayed"
root=$PWD/.chaos/$port   # per port, so that runs on different ports do not share it

for binary in "$ivy" "$worker_ivy"; do
  [[ -x $binary ]] || { echo "chaos: no ivy binary at $binary (build it, or set IVY_BINARY)" >&2; exit 2; }
done
for tool in redis-server redis-cli python3; do
  command -v "$tool" >/dev/null || { echo "chaos: $tool is not installed" >&2; exit 2; }
done
if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
  echo "chaos: something already answers on 127.0.0.1:$port; set CHAOS_REDIS_PORT" >&2
  exit 2
fi
rm -rf "$root" && mkdir -p "$root/redis"

# ---------------------------------------------------------------- processes we own
redis_pid="" bench_pid=""
declare -a worker_pid=() worker_log=()
worker_count=0           # worker processes started, for log names
declare -a unexpected=() # one line per worker that died unasked: its log, pid, exit status, why
declare -a events=()
restarts_left=20         # replacements for crashed workers, so a crash loop cannot run forever

now_ms() { local t=${EPOCHREALTIME//[.,]/}; echo $((t / 1000)); }
start_ms=$(now_ms)
elapsed() { local ms=$(($(now_ms) - start_ms)); printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100)); }
note() { events+=("$(printf '%7s s  %s' "$(elapsed)" "$1")"); echo "chaos: $1" >&2; }

cleanup() {
  local pid
  for pid in "${worker_pid[@]}" $bench_pid $redis_pid; do
    [[ -n $pid ]] && kill -KILL "$pid" 2>/dev/null
  done
  wait 2>/dev/null
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rcli() { redis-cli -h 127.0.0.1 -p "$port" "$@" 2>/dev/null; }
seconds() { awk -v ms="$1" 'BEGIN {printf "%.1f", ms / 1000}'; }
redis_ms() { rcli TIME | awk 'NR == 1 {s = $1} NR == 2 {printf "%.0f", s * 1000 + int($1 / 1000)}'; }

start_redis() {
  redis-server --bind 127.0.0.1 --port "$port" --dir "$root/redis" --appendonly yes --appendfsync always \
    --auto-aof-rewrite-percentage 0 --save "" --protected-mode yes --logfile "$root/redis/redis.log" &
  redis_pid=$!
}

redis_ready() { [[ $(rcli ping) == PONG ]]; }

start_worker() {  # start_worker SLOT: slot 0 also serves the sleepers' queue, so it is the one they run on
  worker_count=$((worker_count + 1))
  local log=$root/worker-$worker_count.log queues=testpackage
  (($1 == 0)) && queues=testpackage,$sleep_queue
  "$worker_ivy" worker --queue "$queue_url" --notify "$notify_url" --queues "$queues" --concurrency 16 \
    --visibility "$visibility" --grace 10 2>"$log" &
  worker_pid[$1]=$! worker_log[$1]=$log
}

signal_name() { (($1 > 128)) && echo "$1 (SIG$(kill -l $(($1 - 128))))" || echo "$1"; }

# The reason a Swift process trapped and the first frame of ours, from its backtrace on stderr.
crash_summary() {
  awk '(/\*\*\* .* \*\*\*/ && !/Backtracing/ || /Fatal error/) && !reason {reason = $0}
       / crashed:$/ {crashed = 1}
       crashed && / in ivy at \/[^\/]/ && !frame {
         function_name = $0; sub(/^ *[0-9]+ .*0x[0-9a-f]+ /, "", function_name); sub(/ \+ [0-9]+ in ivy at .*/, "", function_name)
         place = $0; sub(/.* in ivy at /, "", place); n = split(place, parts, "/"); frame = function_name " (" parts[n] ")"
       }
       END {gsub(/\*\*\* ?| ?\*\*\*/, "", reason); sub(/ +$/, "", reason); print reason (frame ? " in " frame : "")}' "$1" | cut -c1-200
}

# Reaps workers that died unasked, records why, and starts replacements.
supervise() {
  local slot pid status
  for slot in "${!worker_pid[@]}"; do
    pid=${worker_pid[$slot]}
    kill -0 "$pid" 2>/dev/null && continue
    wait "$pid"; status=$?
    local why; why=$(crash_summary "${worker_log[$slot]}")
    unexpected+=("worker log $(basename "${worker_log[$slot]}") (pid $pid): exit $(signal_name $status)${why:+: $why}")
    note "worker pid $pid died unasked: exit $(signal_name $status)"
    if ((restarts_left > 0)); then
      restarts_left=$((restarts_left - 1))
      start_worker "$slot"
      note "started replacement worker pid ${worker_pid[$slot]}"
    fi
  done
}

# wait_until SECONDS DESCRIPTION COMMAND...: polls COMMAND every 0.1 s, supervising the workers,
# until it succeeds (0) or the deadline passes (1, with a note).
wait_until() {
  local limit=$1 description=$2; shift 2
  local deadline=$((SECONDS + limit))
  while ((SECONDS < deadline)); do
    supervise
    if "$@"; then return 0; fi
    sleep 0.1
  done
  note "gave up after ${limit} s waiting for: $description"
  return 1
}

# hold SECONDS: lets a fault last, supervising meanwhile (the fault's length, not a wait for state).
hold() {
  local deadline=$(($(now_ms) + $1 * 1000))
  while (($(now_ms) < deadline)); do supervise; sleep 0.1; done
}

worker_serving() { grep -q 'serving' "${worker_log[$1]}" 2>/dev/null; }
all_serving() { local slot; for slot in "${!worker_pid[@]}"; do worker_serving "$slot" || return 1; done; }
bench_running() { kill -0 "$bench_pid" 2>/dev/null; }
bench_done() { ! bench_running; }

entries_added() {  # XADDs the stream has ever had (0 before the first)
  rcli XINFO STREAM "$stream" | awk 'prev == "entries-added" {print; found = 1; exit} {prev = $0} END {if (!found) print 0}'
}
poison_written=0
sends_reached() {  # sends_reached N: the bench's sends (warm-up included) reached N, or it ended
  bench_running || return 0
  local added; added=$(entries_added)
  [[ $added =~ ^[0-9]+$ ]] && ((added - poison_written >= $1))
}

# ---------------------------------------------------------------- poison messages
# name|expectation|body. "dead": must reach the dead letter with a reason. "run": odd but valid,
# must run and leave the stream without a dead letter.
deep=$(printf '%.0s[' {1..200})1$(printf '%.0s]' {1..200})
poison=(
  "not-json|dead|this is not json"
  "truncated|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\""
  "empty-body|dead|"
  "json-array|dead|[1,2,3]"
  "invalid-utf8|dead|$(printf '{"name":"testpackage.echo","args":["\xff\xfe"]}')"
  "no-args|dead|{\"name\":\"testpackage.echo\"}"
  "name-not-string|dead|{\"name\":42,\"args\":[]}"
  "bad-task-name|dead|{\"name\":\"no dots here\",\"args\":[]}"
  "long-task-name|dead|{\"name\":\"testpackage.$(printf 'x%.0s' {1..5000})\",\"args\":[]}"
  "unknown-task|dead|{\"name\":\"testpackage.nosuch\",\"args\":[1],\"id\":\"chaos-unknown\"}"
  "arg-wrong-type|dead|{\"name\":\"testpackage.echo\",\"args\":[42]}"
  "arg-count|dead|{\"name\":\"testpackage.add\",\"args\":[1]}"
  "arg-huge-integer|dead|{\"name\":\"testpackage.factorial\",\"args\":[123456789012345678901234567890]}"
  "arg-1e400|dead|{\"name\":\"testpackage.factorial\",\"args\":[1e400]}"
  "arg-deep-nesting|dead|{\"name\":\"testpackage.echo\",\"args\":$deep}"
  "result-overflow|dead|{\"name\":\"testpackage.add\",\"args\":[9223372036854775807,1]}"
  "attempt-int64-max|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":9223372036854775807}"
  "attempt-1e400|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":1e400}"
  "attempt-2^64|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":18446744073709551616}"
  "attempt-zero|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":0}"
  "attempt-int64-min|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":-9223372036854775808}"
  "attempt-string|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"attempt\":\"1\"}"
  "deadline-past|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"deadline\":\"2000-01-01T00:00:00Z\"}"
  "deadline-garbage|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"deadline\":\"yesterday\"}"
  "options-not-object|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"options\":5}"
  "notify-not-string|dead|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"notify\":5}"
  "deadline-year-9999|run|{\"name\":\"testpackage.echo\",\"args\":[\"x\"],\"deadline\":\"9999-12-31T23:59:59.999Z\"}"
  "duplicate-name-key|run|{\"name\":\"testpackage.nosuch\",\"name\":\"testpackage.echo\",\"args\":[\"x\"]}"
)
declare -a poison_id=()

declare -a kill_ms=()
declare -a sleeper_entries=()   # this round's sleepers' stream entry ids
write_sleepers() {  # write_sleepers ROUND: as a producer would (XADD, then the signal push)
  local i id
  sleeper_entries=()
  for ((i = 0; i < sleepers; i++)); do
    id=$(rcli XADD "$sleep_stream" '*' b "{\"name\":\"testpackage.sleep\",\"args\":[$sleep_ms],\"id\":\"chaos-sleep-$1-$i\",\"notify\":\"chaos-sleepers\",\"attempt\":1}")
    sleeper_entries+=("$id")
  done
  rcli LPUSH "ivy:{$sleep_queue}:signal" 1 >/dev/null
}
sleepers_running() {  # every sleeper of this round holds a lease (is running on worker slot 0)
  local held id; held=$(rcli ZRANGE "$sleep_leases" 0 -1)
  for id in "${sleeper_entries[@]}"; do grep -q "^$id|" <<<"$held" || return 1; done
}

round_sleepers_done() {  # round_sleepers_done ROUND: every sleeper of that round stored its result
  python3 scripts/chaos-inspect.py sleepers "$port" 2>/dev/null | awk -v r="$1" -v n="$sleepers" '$1 == r && $2 >= n {found = 1} END {exit !found}'
}

write_poison() {
  local index entry name rest body id
  for index in "${!poison[@]}"; do
    entry=${poison[$index]} name=${entry%%|*} rest=${entry#*|} body=${rest#*|}
    # Plain XADD, no signal push: as a producer in another language or a hand-made requeue would.
    if ! id=$(redis-cli -h 127.0.0.1 -p "$port" XADD "$stream" '*' b "$body" 2>&1) || [[ ! $id =~ ^[0-9]+-[0-9]+$ ]]; then
      note "could not write poison message $name: $id"
      id=""
    else
      poison_written=$((poison_written + 1))
    fi
    poison_id[$index]=$id
  done
  note "wrote $poison_written poison messages into $stream"
}

# ---------------------------------------------------------------- the run
start_redis
wait_until 30 "redis-server on 127.0.0.1:$port" redis_ready || exit 2
note "redis-server pid $redis_pid on 127.0.0.1:$port (appendonly, appendfsync always)"
start_worker 0
start_worker 1
wait_until 30 "two workers serving" all_serving || exit 2
note "workers pid ${worker_pid[0]} and ${worker_pid[1]} serving (visibility $visibility s)"

"$ivy" bench --no-worker --queue "$queue_url" --notify "$notify_url" -n "$tasks" -c "$in_flight" \
  --rate "$rate" --phases enqueue --timeout "$timeout" --json >"$root/bench.out" 2>"$root/bench.err" &
bench_pid=$!
note "bench pid $bench_pid: $tasks calls at $rate/s, $in_flight in flight, result timeout $timeout s"

chaos_ok=1
for ((round = 0; round < rounds; round++)); do
  base=$((tasks * round / rounds)) span=$((tasks / rounds))
  wait_until $((timeout + 60)) "bench sends reach $((base + span / 5))" sends_reached $((base + span / 5)) || { chaos_ok=0; break; }
  bench_running || { note "bench ended early"; chaos_ok=0; break; }
  write_sleepers "$round"
  wait_until 20 "worker pid ${worker_pid[0]} running the $sleepers sleepers" sleepers_running || { chaos_ok=0; break; }
  victim=${worker_pid[0]} held=$(rcli ZCARD "$leases") kill_ms[$round]=$(redis_ms)
  kill -KILL "$victim" 2>/dev/null; wait "$victim" 2>/dev/null
  start_worker 0
  note "SIGKILLed worker pid $victim mid-task ($sleepers sleepers, $held bench leases on both workers; redis clock ${kill_ms[$round]} ms); started worker pid ${worker_pid[0]}"

  if ((round == 0)); then
    wait_until $((timeout + 60)) "bench sends reach $((base + span * 35 / 100))" sends_reached $((base + span * 35 / 100)) || { chaos_ok=0; break; }
    write_poison
  fi

  # One fault at a time: the takeover of the killed worker's tasks is measured on its own, and
  # the Redis kill comes after it (a restart right after a SIGKILL adds its own delay, since
  # live workers announce themselves for a whole liveness period before they free anyone's work).
  wait_until $((resume_limit + 30)) "the killed worker's sleepers to run again" round_sleepers_done "$round" || chaos_ok=0
  wait_until $((timeout + 60)) "bench sends reach $((base + span / 2))" sends_reached $((base + span / 2)) || { chaos_ok=0; break; }
  bench_running || { note "bench ended early"; chaos_ok=0; break; }
  ((kill_redis)) || continue
  clock=$(redis_ms)
  kill -KILL "$redis_pid"; wait "$redis_pid" 2>/dev/null
  note "kill -9 redis-server pid $redis_pid (redis clock $clock ms); down for $outage s"
  hold "$outage"
  start_redis
  wait_until 60 "redis-server back on 127.0.0.1:$port" redis_ready || { chaos_ok=0; break; }
  note "redis-server restarted, pid $redis_pid, same port and data"
done
((${#poison_id[@]} == 0)) && redis_ready && write_poison   # if the rounds ended before it

wait_until $((tasks / rate + timeout + 60)) "the bench to finish" bench_done
if bench_running; then
  note "bench still running; killing it"
  kill -KILL "$bench_pid"
fi
wait "$bench_pid"; bench_status=$?
bench_pid=""
note "bench exited $(signal_name $bench_status)"
json=$(grep '^{' "$root/bench.out" | tail -1)
field() { [[ -n $json ]] && python3 -c 'import json, sys; print(json.loads(sys.argv[1]).get(sys.argv[2], ""))' "$json" "$1" 2>/dev/null; }
send_errors=$(field send_errors) result_errors=$(field result_errors) errors=$(field errors)

# The queue settles: the poison messages reach their outcome and nothing is left in the stream,
# reserved or delayed.
poison_outcomes() { python3 scripts/chaos-inspect.py poison "$port" "${poison_id[@]}"; }
settled() {
  redis_ready || return 1
  [[ $(rcli XLEN "$stream") == 0 && $(rcli ZCARD "$leases") == 0 && $(rcli ZCARD "$delayed") == 0 ]] || return 1
  [[ $(rcli XLEN "$sleep_stream") == 0 && $(rcli ZCARD "$sleep_leases") == 0 && $(rcli ZCARD "$sleep_delayed") == 0 ]] || return 1
  poison_outcomes >"$root/poison.tsv" 2>"$root/poison.err" || return 1
  ! grep -q $'\tin stream\t' "$root/poison.tsv"
}
wait_until "$settle" "the queue to settle (stream, leases and delayed empty)" settled
poison_outcomes >"$root/poison.tsv" 2>"$root/poison.err" || note "could not read the poison messages' outcomes: $(tail -1 "$root/poison.err")"
left_stream=$(($(rcli XLEN "$stream") + $(rcli XLEN "$sleep_stream")))
left_leases=$(($(rcli ZCARD "$leases") + $(rcli ZCARD "$sleep_leases")))
left_delayed=$(($(rcli ZCARD "$delayed") + $(rcli ZCARD "$sleep_delayed")))
added=$(entries_added)
dead_total=$(rcli XLEN "$dead")
# Durable results, from Redis: the distinct calls whose result the workers stored.
python3 scripts/chaos-inspect.py results "$port" "$root/redis/appendonlydir" >"$root/results.txt" 2>&1 \
  || note "could not read the durable results: $(tail -1 "$root/results.txt")"
read -r results_stored results_entries _ <"$root/results.txt"
# The sleepers: each round's results, and how long after its SIGKILL the last one was stored.
python3 scripts/chaos-inspect.py sleepers "$port" >"$root/sleepers.txt" 2>&1 \
  || note "could not read the sleepers' results: $(tail -1 "$root/sleepers.txt")"
sleepers_done=0 recovery="" slowest_resume=0
while read -r round count last_ms; do
  [[ $round =~ ^[0-9]+$ && -n ${kill_ms[$round]:-} ]] || continue
  sleepers_done=$((sleepers_done + count))
  resume=$((last_ms - kill_ms[round] - sleep_ms))   # from the SIGKILL until the task ran again
  ((resume > slowest_resume)) && slowest_resume=$resume
  recovery+="${recovery:+, }$(seconds "$resume") s"
done <"$root/sleepers.txt"

# Workers: alive, then a graceful stop.
supervise
alive=0 alive_detail=""
for slot in "${!worker_pid[@]}"; do
  if kill -0 "${worker_pid[$slot]}" 2>/dev/null; then alive=$((alive + 1)); else alive_detail+=" pid ${worker_pid[$slot]} gone"; fi
done
term_ok=0 term_detail=""
for slot in "${!worker_pid[@]}"; do kill -TERM "${worker_pid[$slot]}" 2>/dev/null; done
for slot in "${!worker_pid[@]}"; do
  pid=${worker_pid[$slot]}
  deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid"; wait "$pid" 2>/dev/null; term_detail+=" pid $pid still running after 20 s"
  else
    wait "$pid"; status=$?
    if ((status == 0)); then term_ok=$((term_ok + 1)); else term_detail+=" pid $pid exit $(signal_name $status)"; fi
  fi
done
worker_pid=()
kill -TERM "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; redis_pid=""

# ---------------------------------------------------------------- checks and table
failed=0
rows=()
check() {  # check NAME EXPECTED OBSERVED PASSED(0/1)
  local verdict=PASS
  if [[ $4 != 1 ]]; then verdict=FAIL failed=$((failed + 1)); fi
  rows+=("$(printf '%-44s %-26s %-26s %s' "$1" "$2" "$3" "$verdict")")
}
ok() { "$@" && echo 1 || echo 0; }
in_doubt_bounded() { [[ $in_doubt =~ ^[0-9]+$ ]] && ((in_doubt <= in_flight * rounds)); }

check "chaos schedule ran" "yes" "$( ((chaos_ok)) && echo yes || echo no)" "$chaos_ok"
check "bench finished with a JSON line" "yes" "$([[ -n $json ]] && echo "yes (exit $bench_status)" || echo "no (exit $(signal_name $bench_status))")" "$(ok test -n "$json")"
check "accepted calls without a result" "0" "${result_errors:-?}" "$(ok test "${result_errors:-x}" == 0)"
# Every XADD the stream ever took is a poison message or one of the bench's calls (its warm-up
# call included); the rest of its calls never reached Redis. A send whose connection died after
# Redis took it but before the reply came is counted refused by the bench, yet is in the stream:
# in doubt, at most the sends in flight when Redis was killed.
if [[ $added =~ ^[0-9]+$ && -n $send_errors ]]; then
  reached=$((added - poison_written)) refused_by_redis=$((tasks + 1 - (added - poison_written)))
  in_doubt=$((send_errors - refused_by_redis))
else
  reached="?" refused_by_redis="?" in_doubt="?"
fi
check "bench errors = send + result errors" "${send_errors:-?} + ${result_errors:-?}" "${errors:-?}" \
  "$(ok test -n "$errors" -a "${errors:-x}" == "$((${send_errors:-0} + ${result_errors:-0}))")"
if [[ $in_doubt =~ ^-[0-9]+$ ]]; then
  doubt_text="${send_errors} (${in_doubt#-} accepted sends missing)"
else
  doubt_text="${send_errors:-?} ($in_doubt in doubt)"
fi
check "bench send errors = sends Redis never got" "$refused_by_redis + <= $((in_flight * rounds)) in doubt" \
  "$doubt_text" "$(ok in_doubt_bounded)"
check "sleepers killed mid-task, then finished" "$((sleepers * ${#kill_ms[@]}))" "$sleepers_done" \
  "$(ok test "$sleepers_done" == "$((sleepers * ${#kill_ms[@]}))" -a "${#kill_ms[@]}" -gt 0)"
check "killed worker's tasks ran again within" "$resume_limit s" "$(seconds "$slowest_resume") s" \
  "$(ok test "$sleepers_done" -gt 0 -a "$slowest_resume" -le $((resume_limit * 1000)))"
check "calls in the stream with a stored result" "$reached" "${results_stored:-?}" "$(ok test "${results_stored:-x}" == "$reached")"
dead_ok=0 dead_want=0 run_ok=0 run_want=0
for entry in "${poison[@]}"; do
  rest=${entry#*|}
  if [[ ${rest%%|*} == dead ]]; then dead_want=$((dead_want + 1)); else run_want=$((run_want + 1)); fi
done
declare -a poison_rows=()
while IFS=$'\t' read -r index outcome detail; do
  entry=${poison[$index]} name=${entry%%|*} rest=${entry#*|} expect=${rest%%|*}
  if [[ $expect == dead ]]; then
    if [[ $outcome == dead && -n ${detail%% (deliveries*} ]]; then dead_ok=$((dead_ok + 1)); mark=ok; else mark=FAIL; fi
  else
    if [[ $outcome == gone ]]; then run_ok=$((run_ok + 1)); mark=ok; else mark=FAIL; fi
  fi
  poison_rows+=("$(printf '  %-4s %-20s want %-4s got %-9s %s' "$mark" "$name" "$expect" "$outcome" "$detail")")
done <"$root/poison.tsv"
check "poison messages dead-lettered with a reason" "${#poison[@]} written, $dead_want" "$poison_written written, $dead_ok" \
  "$(ok test "$dead_ok" == "$dead_want" -a "$poison_written" == "${#poison[@]}")"
check "odd but valid messages run" "$run_want" "$run_ok" "$(ok test "$run_ok" == "$run_want")"
check "stream / leases / delayed left over" "0 / 0 / 0" "${left_stream:-?} / ${left_leases:-?} / ${left_delayed:-?}" \
  "$(ok test "${left_stream:-x}/${left_leases:-x}/${left_delayed:-x}" == 0/0/0)"
check "workers that died unasked" "0" "${#unexpected[@]}" "$(ok test "${#unexpected[@]}" == 0)"
check "workers alive after the run (kill -0)" "2" "$alive$alive_detail" "$(ok test "$alive" == 2)"
check "workers exit 0 on SIGTERM" "2" "$term_ok$term_detail" "$(ok test "$term_ok" == 2)"

echo
echo "ivy chaos ($mode): $tasks calls at $rate/s, $rounds round(s) of worker SIGKILL$( ((kill_redis)) && echo " + Redis kill -9 ($outage s down)"),"
echo "  ${#poison[@]} poison messages; redis 127.0.0.1:$port appendfsync always; 2 workers, visibility $visibility s;"
echo "  durable results (retain_results=120); ivy $ivy$([[ $worker_ivy != "$ivy" ]] && echo ", workers $worker_ivy"); $(elapsed) s"
echo
echo "events:"
printf '  %s\n' "${events[@]}"
echo
echo "bench: ${json:-<no JSON line; see $root/bench.err>}"
echo "sleepers: from each SIGKILL until the last of its tasks ran again (visibility $visibility s): ${recovery:-none}"
echo "redis: $added entries added to the stream, $dead_total dead letters, ${results_entries:-?} durable results (${results_stored:-?} calls)"
echo
printf '%-44s %-26s %-26s %s\n' "check" "expected" "observed" "verdict"
printf '%s\n' "${rows[@]}"
echo
echo "poison messages:"
printf '%s\n' "${poison_rows[@]}"
if [[ -s $root/results.txt ]] && (($(wc -l <"$root/results.txt") > 1)); then
  echo
  echo "calls whose result was never stored (from the AOF):"
  tail -n +2 "$root/results.txt" | sed 's/^/  /'
fi
if ((${#unexpected[@]})); then
  echo
  echo "workers that died unasked:"
  printf '  %s\n' "${unexpected[@]}"
fi
echo
if ((failed)); then
  echo "chaos: $failed check(s) FAILED; logs and Redis data kept in $root"
  exit 1
fi
echo "chaos: all checks passed"
rm -rf "$root"
rmdir "$(dirname "$root")" 2>/dev/null
exit 0
