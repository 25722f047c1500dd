"""Ivy on IronMQ side by side with node ivy's consumer loop and with the server's raw capacity,
in one run, rounds interleaved (the machine is noisy: compare within a round, report medians).

Contenders, each on a fresh local IronMQ server (ironmq_emulator.py) so that none inherits
another's queue, and each measured the same way (messages through the queue per second, the
server's answers and CPU per message, the client's CPU per message):

  node ivy      node ivy's IronMQ loop as src/queues/ironmq.coffee has it, driven by Iron.io's
                client: the producer posts one message per request; the consumer reserves one
                message (`n` 1) per tick of CONSUME_INTERVAL (1000 ms) and deletes it by id.
  official      Iron.io's Python client (PyPI iron-mq) posting, reserving (`n` 100) and deleting
                in batches of 100: the raw capacity as that client reaches it.
  http.client   the same batches over one keep-alive http.client connection: the server's
                capacity without the client library's own costs.
  ivy           `ivy bench --phases roundtrip --json` with its results through Redis;
                a round trip is a call sent, run by the in-process worker, acknowledged and its
                result received by the caller.

usage: side_by_side.py --ivy PATH --redis URL [--rounds R] [--tasks N] [--in-flight C]
                       [--batches B] [--node-seconds S] [--profile]
Needs iron_mq importable (scripts/ironmq-bench.sh runs it from the virtualenv that
scripts/ironmq-emulator-test.sh makes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import test_emulator as harness  # noqa: E402  (the Emulator and Api helpers of the server's tests)

if harness.iron_mq is None:
    sys.exit(f"side_by_side: Iron.io's client is not importable: {harness.OFFICIAL_SKIP}")

NODE_CONSUME_INTERVAL = 1.0  # node ivy's CONSUME_INTERVAL default, 1000 ms
BODY = json.dumps({"name": "testpackage.echo", "options": {}, "args": ["x" * 16]},
                  separators=(",", ":"))


class Measure:
    """Wall time, the emulator's CPU and this process's (or a child's) CPU across one phase."""

    def __init__(self, emulator: harness.Emulator, redis: tuple[str, int] | None = None):
        self.emulator, self.redis = emulator, redis

    def __enter__(self):
        self.wall = time.perf_counter()
        self.server_cpu = cpu_seconds(self.emulator.proc.pid)
        self.own_cpu = time.process_time()
        self.child_cpu = children_cpu()
        self.redis_cpu = redis_cpu(self.redis) if self.redis else 0.0
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.server_cpu = cpu_seconds(self.emulator.proc.pid) - self.server_cpu
        self.own_cpu = time.process_time() - self.own_cpu
        self.child_cpu = children_cpu() - self.child_cpu
        self.redis_cpu = redis_cpu(self.redis) - self.redis_cpu if self.redis else 0.0


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(address: tuple[str, int]) -> float:
    """redis-server's user + system CPU seconds, from INFO cpu (a bulk string reply)."""
    with socket.create_connection(address, timeout=10) as s:
        s.sendall(b"INFO cpu\r\n")
        data = b""
        while b"\r\n" not in data or len(data) < data.index(b"\r\n") + 4 + int(
                data[1:data.index(b"\r\n")]):
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"Redis closed the connection: {data[:200]!r}")
            data += chunk
    info = dict(line.split(":", 1) for line in data.decode().split("\r\n") if ":" in line)
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def answers_of(emulator: harness.Emulator) -> int:
    emulator.stop()
    for line in reversed(emulator.lines):
        if line.startswith("ironmq-emulator: stopped after "):
            return int(line.split()[3])
    raise RuntimeError(f"the emulator did not say how many answers it gave: {emulator.lines[-3:]}")


def row(name, messages, m: Measure, answers, client_cpu, **extra):
    return {"contender": name, "messages": messages, "per_s": messages / m.wall,
            "answers_per_message": answers / messages,
            "server_us_per_message": m.server_cpu / messages * 1e6,
            "client_us_per_message": client_cpu / messages * 1e6,
            "redis_us_per_message": m.redis_cpu / messages * 1e6, **extra}


def node_ivy(seconds: float) -> dict:
    """node ivy: one post per message; a reserve of one message per 1000 ms tick."""
    e = harness.Emulator()
    try:
        q = e.client().queue("node-ivy")
        posted = int(seconds) + 2
        for _ in range(posted):  # never idle: a message waits at every tick
            q.post(BODY)
        done = 0
        with Measure(e) as m:
            next_tick = time.monotonic() + NODE_CONSUME_INTERVAL
            deadline = time.monotonic() + seconds
            while next_tick <= deadline:
                time.sleep(max(next_tick - time.monotonic(), 0))
                next_tick += NODE_CONSUME_INTERVAL
                got = q.reserve(max=1, timeout=60)["messages"]
                for message in got:
                    json.loads(message["body"])
                    q.delete(message["id"], reservation_id=message["reservation_id"])
                    done += 1
        # The posts of messages left over are not part of what was measured.
        return row("node ivy (n=1, 1 s interval)", done, m, answers_of(e) - (posted - done),
                   m.own_cpu)
    finally:
        e.stop()


def official(batches: int) -> dict:
    """Iron.io's client: post 100, reserve 100, delete 100."""
    e = harness.Emulator()
    try:
        q = e.client().queue("official")
        bodies = [BODY] * 100
        with Measure(e) as m:
            for _ in range(batches):
                q.post(*bodies)
                got = q.reserve(max=100, timeout=60)
                assert len(got["messages"]) == 100, got
                q.delete_multiple(messages=got)
        return row("official client, batches of 100", batches * 100, m, answers_of(e),
                   m.own_cpu)
    finally:
        e.stop()


def http_client(batches: int) -> dict:
    """The same batches over one keep-alive connection of Python's http.client."""
    e = harness.Emulator()
    try:
        api = e.api()
        api.call("PUT", "/queues/raw", {})
        body = {"messages": [{"body": BODY}] * 100}
        with Measure(e) as m:
            for _ in range(batches):
                status, _ = api.call("POST", "/queues/raw/messages", body)
                assert status == 201
                got = api.reserve("raw", n=100, timeout=60)
                ids = [{"id": g["id"], "reservation_id": g["reservation_id"]} for g in got]
                assert len(ids) == 100
                status, _ = api.call("DELETE", "/queues/raw/messages", {"ids": ids})
                assert status == 200
        api.close()
        return row("http.client keep-alive, batches of 100", batches * 100, m,
                   answers_of(e) - 1, m.own_cpu)
    finally:
        e.stop()


def ivy(binary: str, redis_url: str, tasks: int, in_flight: int, prelude: str | None) -> dict:
    """`ivy bench`, its round-trip phase: each call sent, run, deleted and answered."""
    e = harness.Emulator(prelude=prelude)
    parsed = urllib.parse.urlsplit(redis_url)
    address = (parsed.hostname or "127.0.0.1", parsed.port or 6379)
    try:
        url = f"ironmq+http://{harness.TOKEN}@127.0.0.1:{e.port}/{harness.PROJECT}?min_timeout=1"
        command = [binary, "bench", "--queue", url, "--notify", redis_url, "-n", str(tasks),
                   "-c", str(in_flight), "--phases", "roundtrip", "--json"]
        with Measure(e, address) as m:
            done = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise RuntimeError(f"ivy bench exited {done.returncode}: {done.stderr[-2000:]}")
        report = json.loads(done.stdout.strip().splitlines()[-1])
        assert report["errors"] == 0, report
        # The rate is the bench's own (its timed part); CPU and answers cover the whole process,
        # its start and its warm-up included, so they overstate the cost per message a little.
        result = row("ivy round trips (results via Redis)", tasks, m, answers_of(e), m.child_cpu)
        result["per_s"] = report["roundtrip_per_s"]
        return result
    finally:
        e.stop()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="side_by_side.py")
    parser.add_argument("--ivy", required=True, help="the ivy binary (a release build)")
    parser.add_argument("--redis", required=True, help="the notifier, redis://host:port")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tasks", type=int, default=10000, help="ivy bench -n")
    parser.add_argument("--in-flight", type=int, default=64, help="ivy bench -c")
    parser.add_argument("--batches", type=int, default=200, help="100-message batches")
    parser.add_argument("--node-seconds", type=float, default=5.0)
    parser.add_argument("--profile", action="store_true",
                        help="after the rounds, the server's threads under cProfile for ivy")
    parser.add_argument("--json", action="store_true", help="print every row as JSON too")
    args = parser.parse_args(argv)

    rounds: list[list[dict]] = []
    for r in range(args.rounds):
        contenders = [lambda: node_ivy(args.node_seconds), lambda: official(args.batches),
                      lambda: http_client(args.batches),
                      lambda: ivy(args.ivy, args.redis, args.tasks, args.in_flight, None)]
        order = contenders if r % 2 == 0 else contenders[::-1]  # neither goes first every time
        results = [run() for run in order]
        rounds.append(sorted(results, key=lambda x: x["contender"]))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{x['contender'].split(' (')[0].split(',')[0]} {x['per_s']:,.1f}/s" for x in results),
            file=sys.stderr, flush=True)

    print(f"\n{args.rounds} rounds, medians; ivy bench -n {args.tasks} -c {args.in_flight}; "
          f"batches {args.batches} x 100; node loop {args.node_seconds:g} s; python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    header = ("| contender | messages/s | × node ivy | × official | server answers /msg "
              "| server CPU µs/msg | client CPU µs/msg | Redis CPU µs/msg |")
    print(header)
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    names = [x["contender"] for x in rounds[0]]

    def median(name: str, key: str) -> float:
        return statistics.median(next(x for x in rd if x["contender"] == name)[key]
                                 for rd in rounds)

    def ratio(name: str, base: str) -> float:  # per round, then the median
        return statistics.median(
            next(x for x in rd if x["contender"] == name)["per_s"]
            / next(x for x in rd if x["contender"] == base)["per_s"] for rd in rounds)

    node = "node ivy (n=1, 1 s interval)"
    base = "official client, batches of 100"
    def cpu(name: str, key: str) -> str:
        # CPU clocks tick every 10 ms: a few messages (node ivy's loop) give no figure.
        if median(name, "messages") < 1000:
            return "–"
        return f"{median(name, key):,.0f}"

    for name in sorted(names, key=lambda n: median(n, "per_s")):
        print(f"| {name} | {median(name, 'per_s'):,.1f} | {ratio(name, node):,.0f} "
              f"| {ratio(name, base):.2f} | {median(name, 'answers_per_message'):.3f} "
              f"| {cpu(name, 'server_us_per_message')} | {cpu(name, 'client_us_per_message')} "
              f"| {cpu(name, 'redis_us_per_message')} |")
    if args.json:
        print(json.dumps(rounds))

    if args.profile:
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "profile.txt")
            prelude = harness.PROFILE_PRELUDE % {"emulator": harness.EMULATOR, "here": HERE,
                                                 "out": out}
            ivy(args.ivy, args.redis, args.tasks, args.in_flight, prelude)
            print(f"\n---- cProfile of the server's request threads under ivy bench ----")
            with open(out) as f:
                print(f.read())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
