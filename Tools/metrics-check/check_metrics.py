#!/usr/bin/env python3
"""Reads a worker's /metrics with Prometheus's own text-format parser (PyPI prometheus_client)
and checks it against what scripts/metrics-test.sh made the worker do: three factorial calls
that succeeded and one fail call that failed for good.

usage: check_metrics.py URL
"""
import sys
import time
import urllib.request

from prometheus_client.parser import text_string_to_metric_families


def scrape(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.headers.get("Content-Type", ""), response.read().decode("utf-8")


def main(url):
    # A caller hears of its result as the worker settles the message: the worker may still hold
    # it for a moment. Scraped again until it holds none, for at most 10 s.
    deadline = time.monotonic() + 10
    while True:
        content_type, text = scrape(url)
        idle = 'ivy_tasks_in_flight{queue="testpackage"} 0\n' in text
        if idle or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    problems = []

    def check(condition, what):
        print(("ok   " if condition else "FAIL ") + what)
        if not condition:
            problems.append(what)

    check(content_type.startswith("text/plain; version=0.0.4"), f"content type {content_type!r}")
    # The parser raises on anything the format does not allow; a counter family is named without
    # its _total suffix, its samples with it.
    families = {family.name: family for family in text_string_to_metric_families(text)}
    types = {name: family.type for name, family in families.items()}
    check(
        types.get("ivy_tasks_started") == "counter" and types.get("ivy_tasks") == "counter"
        and types.get("ivy_task_run_seconds") == "histogram" and types.get("ivy_tasks_in_flight") == "gauge"
        and types.get("ivy_queue_messages") == "gauge",
        f"families and types: {types}")

    def value(family, name, **labels):
        for sample in families[family].samples if family in families else []:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        return None

    factorial = {"task": "testpackage.factorial", "queue": "testpackage"}
    fail = {"task": "testpackage.fail", "queue": "testpackage"}
    check(value("ivy_tasks_started", "ivy_tasks_started_total", **factorial) == 3, "3 factorial attempts started")
    check(value("ivy_tasks", "ivy_tasks_total", outcome="succeeded", **factorial) == 3, "3 succeeded")
    check(value("ivy_tasks", "ivy_tasks_total", outcome="failed", **fail) == 1, "the fail call failed for good")
    check(value("ivy_tasks", "ivy_tasks_total", outcome="succeeded", **fail) == 0, "and did not succeed")
    buckets = [
        (float(sample.labels["le"]), sample.value)
        for sample in families["ivy_task_run_seconds"].samples
        if sample.name == "ivy_task_run_seconds_bucket" and sample.labels.get("task") == factorial["task"]
    ]
    counts = [count for _, count in sorted(buckets)]
    check(counts == sorted(counts) and counts and counts[-1] == 3, f"run-time buckets cumulative to 3: {counts}")
    check(value("ivy_task_run_seconds", "ivy_task_run_seconds_count", **factorial) == 3, "3 run times observed")
    latency = "ivy_task_result_latency_seconds"
    check(types.get(latency) == "histogram", f"{latency} is a histogram")
    check(value(latency, latency + "_count", **factorial) == 3, "3 factorial results' latency observed")
    check(value(latency, latency + "_count", **fail) == 1, "and the failed call's")
    check(value("ivy_tasks_in_flight", "ivy_tasks_in_flight", queue="testpackage") == 0, "nothing in flight")
    dead = value("ivy_queue_messages", "ivy_queue_messages", queue="testpackage", state="dead")
    check(dead == 1, f"the failed call's message counted dead: {dead}")
    if problems:
        print(text, file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(sys.argv[1])
