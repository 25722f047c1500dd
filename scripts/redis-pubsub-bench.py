#!/usr/bin/env python3
"""Classic against sharded pub/sub on a Redis Cluster (BENCHMARKS.md): a subscriber on one
node, N messages of SIZE bytes published pipelined on another, and the CPU every node of the
cluster spent on them (INFO cpu before and after). RESP over plain sockets, stdlib only.

usage: scripts/redis-pubsub-bench.py bench PORTS MODE SUB_PORT PUB_PORT [N] [SIZE] [CHANNEL]
  PORTS  comma-separated ports of every node of the cluster (for the CPU sums)
  MODE   classic (SUBSCRIBE/PUBLISH) or sharded (SSUBSCRIBE/SPUBLISH; both ports must be the
         channel's master)
"""
import socket, sys, threading, time


def enc(*args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        if isinstance(a, str):
            a = a.encode()
        elif isinstance(a, int):
            a = str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


class Conn:
    def __init__(self, port, timeout=30):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def _fill(self):
        d = self.s.recv(1 << 20)
        if not d:
            raise ConnectionError("closed")
        self.buf += d

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line, self.buf = self.buf[:i], self.buf[i + 2:]
                return line
            self._fill()

    def reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b":"):
            return rest.decode() if t == b"+" else int(rest)
        if t == b"-":
            return Exception(rest.decode())
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                self._fill()
            v, self.buf = self.buf[:n], self.buf[n + 2:]
            return v
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self.reply() for _ in range(n)]
        raise ValueError("bad reply %r" % line)

    def cmd(self, *args):
        self.send(enc(*args))
        return self.reply()


def info_cpu(port):
    r = Conn(port).cmd("INFO", "cpu").decode()
    d = dict(l.split(":", 1) for l in r.split("\r\n") if ":" in l)
    return float(d["used_cpu_sys"]) + float(d["used_cpu_user"])


def cpus(ports):
    return {p: info_cpu(p) for p in ports}


def slot_owner(port, key):
    c = Conn(port)
    slot = c.cmd("CLUSTER", "KEYSLOT", key)
    for start, end, master, *_ in c.cmd("CLUSTER", "SLOTS"):
        if start <= slot <= end:
            return slot, master[1]
    raise RuntimeError("no owner")


def counter(conn, marker, n, state):
    """Counts pushes whose kind is `marker` on conn's socket until n arrived."""
    got = conn.buf.count(marker)
    tail = conn.buf[-(len(marker) - 1):]
    while got < n:
        d = conn.s.recv(1 << 20)
        if not d:
            break
        if got == 0:
            state["first"] = time.monotonic()
        chunk = tail + d
        got += chunk.count(marker)
        tail = chunk[-(len(marker) - 1):]
    state["got"] = got
    state["last"] = time.monotonic()


def bench(ports, mode, sub_port, pub_port, n=100000, size=200, channel="ivy-notifier:bench0001", batch=1000):
    sub_cmd, pub_cmd, marker = (
        ("SUBSCRIBE", "PUBLISH", b"*3\r\n$7\r\nmessage\r\n") if mode == "classic"
        else ("SSUBSCRIBE", "SPUBLISH", b"*3\r\n$8\r\nsmessage\r\n"))
    sub = Conn(sub_port, timeout=60)
    ack = sub.cmd(sub_cmd, channel)
    assert isinstance(ack, list) and ack[0].decode().lower() == sub_cmd.lower(), ack
    pub = Conn(pub_port, timeout=60)
    payload = b"x" * size
    one = enc(pub_cmd, channel, payload)
    state = {"got": 0}
    before = cpus(ports)
    t = threading.Thread(target=counter, args=(sub, marker, n, state))
    t.start()
    t0 = time.monotonic()
    sent = 0
    receivers = []
    while sent < n:
        k = min(batch, n - sent)
        pub.send(one * k)
        for _ in range(k):
            r = pub.reply()
            if isinstance(r, Exception):
                raise r
            receivers.append(r)
        sent += k
    t_pub = time.monotonic() - t0
    t.join(timeout=120)
    t_all = state.get("last", time.monotonic()) - t0
    after = cpus(ports)
    d = {p: after[p] - before[p] for p in ports}
    tot = sum(d.values())
    print(f"{mode:8s} sub@{sub_port} pub@{pub_port} nodes={len(ports)}: received {state['got']}/{n} "
          f"in {t_all:.3f}s = {state['got'] / t_all:,.0f} msg/s (publish side {n / t_pub:,.0f}/s; "
          f"publish replies: receivers {min(receivers)}..{max(receivers)}); "
          f"redis CPU total {tot:.3f}s = {tot * 1e6 / n:.2f} us/msg; per node us/msg "
          + " ".join(f"{p}:{d[p] * 1e6 / n:.2f}" for p in ports), flush=True)
    sub.s.close()
    pub.s.close()
    return tot * 1e6 / n


if __name__ == "__main__":
    what = sys.argv[1]
    ports = [int(p) for p in sys.argv[2].split(",")]
    if what == "bench":
        mode, sp, pp = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        n = int(sys.argv[6]) if len(sys.argv) > 6 else 100000
        size = int(sys.argv[7]) if len(sys.argv) > 7 else 200
        ch = sys.argv[8] if len(sys.argv) > 8 else "ivy-notifier:bench0001"
        bench(ports, mode, sp, pp, n, size, ch)
    else:
        sys.exit(__doc__)
