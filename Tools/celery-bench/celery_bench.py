"""Celery beside Ivy: the same echo task, its round trips through RabbitMQ with results in Redis,
measured as `ivy bench` measures its own (BENCHMARKS.md, AMQP).

usage: celery_bench.py --broker AMQP_URL --backend REDIS_URL [--tasks N] [--in-flight C]
                       [--latency-calls K] [--concurrency W] [--pool threads|prefork|solo]
Starts a Celery worker (a subprocess of this interpreter, W workers), waits until it answers,
runs N calls C at a time (each waits for its result), then K sequential calls for the latency
percentiles, stops the worker, and prints one JSON line: roundtrip_per_s, p50_ms, p90_ms, p99_ms,
errors, celery (its version).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import time

from celery import Celery

QUEUE = "ivybench-celery"

app = Celery("celery_bench")
app.conf.update(
    broker_url=os.environ.get("CELERY_BENCH_BROKER", "amqp://guest:guest@127.0.0.1//"),
    result_backend=os.environ.get("CELERY_BENCH_BACKEND", "redis://127.0.0.1:6379/0"),
    task_default_queue=QUEUE,
    task_serializer="json", result_serializer="json", accept_content=["json"],
    # The fair comparison with Ivy's defaults: acknowledged after the task ran, durable messages.
    task_acks_late=True, worker_prefetch_multiplier=4, broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task(name="testpackage.echo")
def echo(text):
    return text


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="celery_bench.py")
    parser.add_argument("--broker", required=True)
    parser.add_argument("--backend", required=True)
    parser.add_argument("--tasks", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--latency-calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument("--payload", type=int, default=16)
    args = parser.parse_args(argv)

    environment = dict(os.environ, CELERY_BENCH_BROKER=args.broker, CELERY_BENCH_BACKEND=args.backend,
                       PYTHONDONTWRITEBYTECODE="1")
    app.conf.broker_url, app.conf.result_backend = args.broker, args.backend
    here = os.path.dirname(os.path.abspath(__file__))
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_bench", "worker", "--pool", args.pool,
         "--concurrency", str(args.concurrency), "-Q", QUEUE, "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle", "--without-heartbeat"],
        cwd=here, env=environment, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE)
    errors = 0
    try:
        app.control.purge()
        payload = "x" * args.payload
        # Ready when a call comes back (bounded: a worker that does not start fails the run).
        deadline = time.monotonic() + 120
        while True:
            try:
                echo.delay("warm-up").get(timeout=5)
                break
            except Exception:
                if time.monotonic() > deadline or worker.poll() is not None:
                    raise RuntimeError("the Celery worker did not answer: "
                                       + (worker.stderr.read().decode()[-2000:] if worker.poll() is not None else ""))
        for _ in range(3):  # warm the paths, as ivy bench does
            echo.delay(payload).get(timeout=30)

        started = time.perf_counter()
        sent = 0
        while sent < args.tasks:
            batch = [echo.delay(payload) for _ in range(min(args.in_flight, args.tasks - sent))]
            for result in batch:
                try:
                    if result.get(timeout=60) != payload:
                        errors += 1
                except Exception:
                    errors += 1
            sent += len(batch)
        roundtrip_per_s = args.tasks / (time.perf_counter() - started)

        latencies = []
        for _ in range(args.latency_calls):
            t0 = time.perf_counter()
            try:
                echo.delay(payload).get(timeout=60)
            except Exception:
                errors += 1
            latencies.append((time.perf_counter() - t0) * 1000)
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
    import celery
    print(json.dumps({
        "celery": celery.__version__, "pool": args.pool, "concurrency": args.concurrency,
        "tasks": args.tasks, "in_flight": args.in_flight, "roundtrip_per_s": roundtrip_per_s,
        "p50_ms": statistics.median(latencies), "p90_ms": percentile(latencies, 0.9),
        "p99_ms": percentile(latencies, 0.99), "errors": errors,
    }))
    return 0 if errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
