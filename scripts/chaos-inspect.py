#!/usr/bin/env python3
# Reads what scripts/chaos.sh needs from its Redis (standard library only; RESP over a socket).
#
#   chaos-inspect.py poison PORT ID...       one line per poison message id, in order:
#                                            "index<TAB>outcome<TAB>detail", outcome one of
#                                            dead (detail: reason), gone (ran), in stream, unwritten
#   chaos-inspect.py sleepers PORT           per round, "ROUND COUNT LAST_MS": the sleepers' results
#                                            stored on channel chaos-sleepers, and when the last was
#   chaos-inspect.py results PORT AOF_DIR    first line "DISTINCT ENTRIES": results kept in the
#                                            producer's durable results stream; then, for every call
#                                            the stream took whose result was never stored, what
#                                            the AOF shows happened to it
import glob
import json
import os
import socket
import sys

STREAM = b"ivy:{testpackage}:stream"
DEAD = b"ivy:{testpackage}:dead"


class Redis:
    def __init__(self, port):
        self.connection = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.reader = self.connection.makefile("rb")

    def __call__(self, *words):
        words = [w if isinstance(w, bytes) else str(w).encode() for w in words]
        self.connection.sendall(b"*%d\r\n" % len(words) + b"".join(b"$%d\r\n%s\r\n" % (len(w), w) for w in words))
        return self.reply()

    def reply(self):
        line = self.reader.readline()
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest
        if kind == b"-":
            raise RuntimeError(rest.decode(errors="replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            return None if int(rest) < 0 else self.reader.read(int(rest) + 2)[:-2]
        if kind == b"*":
            return None if int(rest) < 0 else [self.reply() for _ in range(int(rest))]
        raise RuntimeError(f"unexpected reply {line!r}")


def fields(entry):
    return dict(zip(entry[1][0::2], entry[1][1::2]))


def one_line(text, limit=150):
    return text.replace("\n", " ").replace("\t", " ")[:limit]


def poison(port, ids):
    redis = Redis(port)
    letters = {fields(entry).get(b"o", b"").decode(): fields(entry) for entry in redis("XRANGE", DEAD, "-", "+")}
    for index, id in enumerate(ids):
        if not id:
            print(f"{index}\tunwritten\t")
        elif id in letters:
            record = letters[id]
            reason = one_line(record.get(b"r", b"").decode(errors="replace"))
            print(f"{index}\tdead\t{reason} (deliveries {record.get(b'c', b'?').decode()})")
        elif redis("XRANGE", STREAM, id, id):
            pending = redis("XPENDING", STREAM, "ivy", id, id, 1)
            detail = f"delivered {pending[0][3]} times, last to {pending[0][1].decode()}" if pending else "never delivered"
            print(f"{index}\tin stream\t{detail}")
        else:
            print(f"{index}\tgone\t")


def aof_commands(directory):
    """Every command in the AOF's incremental files, in order (the chaos Redis never rewrites it)."""
    for path in sorted(glob.glob(os.path.join(directory, "*.incr.aof")), key=lambda p: int(p.split(".")[-3])):
        data, i = open(path, "rb").read(), 0
        while i < len(data) and data[i:i + 1] == b"*":
            end = data.index(b"\r\n", i)
            count, i, words = int(data[i + 1:end]), end + 2, []
            for _ in range(count):
                end = data.index(b"\r\n", i)
                length, i = int(data[i + 1:end]), end + 2
                words.append(data[i:i + length])
                i += length + 2
            yield words


def results(port, aof_directory):
    redis = Redis(port)
    # The bench is the only producer: its channel is the one results key with a producer id.
    keys = [k for k in redis("KEYS", "ivy:{ivy-notifier:*}:results")]
    stored, entries = set(), 0
    for key in keys:
        for entry in redis("XRANGE", key, "-", "+"):
            entries += 1
            try:
                stored.add(json.loads(fields(entry)[b"p"])["id"])
            except (KeyError, ValueError):
                pass
    print(len(stored), entries)
    channels = {k.decode()[len("ivy:{"):-len("}:results")] for k in keys}
    # Calls sent to those channels, from the AOF, and what became of each whose result is missing.
    sent, history = {}, {}
    for words in aof_commands(aof_directory):
        name = words[0].upper()
        if name == b"XADD" and words[1] == STREAM:
            try:
                body = json.loads(words[words.index(b"b", 2) + 1])
            except (ValueError, IndexError):
                continue
            if isinstance(body, dict) and body.get("notify") in channels:
                sent[body.get("id")] = words[2].decode()
        elif name == b"XCLAIM" and words[1] == STREAM:
            # XCLAIM key group consumer min-idle id... [TIME ms] ...
            options = [i for i, word in enumerate(words) if i > 5 and not word[:1].isdigit()]
            ids = words[5:options[0] if options else len(words)]
            at = words[words.index(b"TIME") + 1].decode() if b"TIME" in words else "?"
            for word in ids:
                history.setdefault(word.decode(), []).append(f"claimed by {words[3].decode()} at {at} ms")
        elif name in (b"XACK", b"XDEL") and words[1] == STREAM:
            for word in words[2 if name == b"XDEL" else 3:]:
                history.setdefault(word.decode(), []).append(name.decode())
        elif name == b"XADD" and words[1] == DEAD:
            record = dict(zip(words[3::2], words[4::2]))
            history.setdefault(record.get(b"o", b"").decode(), []).append("dead-lettered")
    missing = [(task, entry) for task, entry in sent.items() if task not in stored]
    for task, entry in missing[:10]:
        steps = ", ".join(history.get(entry, [])) or "never claimed"
        print(f"task {task} (entry {entry}): {steps}; no result stored")
    if len(missing) > 10:
        print(f"... and {len(missing) - 10} more")


def sleepers(port):
    rounds = {}
    for entry in Redis(port)("XRANGE", b"ivy:{chaos-sleepers}:results", "-", "+"):
        try:
            notification = json.loads(fields(entry)[b"p"])
        except (KeyError, ValueError):
            continue
        if "result" not in notification:
            continue
        round = notification["id"].split("-")[2]
        ids, last = rounds.get(round, (set(), 0))
        ids.add(notification["id"])
        rounds[round] = (ids, max(last, int(entry[0].split(b"-")[0])))
    for round, (ids, last) in sorted(rounds.items()):
        print(round, len(ids), last)


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "poison":
        poison(int(sys.argv[2]), sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "sleepers":
        sleepers(int(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "results":
        results(int(sys.argv[2]), sys.argv[3])
    else:
        sys.exit(__doc__ or "usage: chaos-inspect.py poison PORT ID... | results PORT AOF_DIR")
