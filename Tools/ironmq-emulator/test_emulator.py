#!/usr/bin/env python3
"""Tests of ironmq_emulator.py: with Iron.io's official Python client (PyPI `iron-mq`, module
`iron_mq`) where it can express the request, and with raw http.client for the rest.

    python3 test_emulator.py [-v] [unittest options]     the tests
    python3 test_emulator.py bench [--batches N] [--profile]
                                                         messages/s of post-100, reserve-100,
                                                         batch-delete-100 loops; --profile
                                                         prints where the emulator's time goes

scripts/ironmq-emulator-test.sh runs them in a virtualenv that has `iron-mq`; without the package
the official-client tests are skipped (IVY_IRONMQ_CLIENT_MISSING says why) and the raw ones run.

Each test starts no sleep to wait for something: it waits on the long poll itself, or polls a
condition under a deadline (`wait_until`).
"""

from __future__ import annotations

import http.client
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "ironmq_emulator.py")
TOKEN = "test-token-123"
PROJECT = "test-project-abc"
START_WITHIN = 20.0

sys.dont_write_bytecode = True

try:
    import iron_mq  # the official client
    import requests

    OFFICIAL_SKIP = None
except ImportError as e:  # pragma: no cover - depends on the machine
    iron_mq = None
    OFFICIAL_SKIP = os.environ.get("IVY_IRONMQ_CLIENT_MISSING") or f"iron_mq not importable ({e})"


def unique(prefix: str = "q") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02, what: str = "condition"):
    """Polls `predicate` until it returns a truthy value, failing after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def read_response(f):
    """One HTTP/1.1 response with a Content-Length from a socket file, leaving the next."""
    status = int(f.readline().split()[1])
    length = None
    while True:
        line = f.readline()
        if line in (b"\r\n", b""):
            break
        key, _, value = line.decode("latin-1").partition(":")
        if key.strip().lower() == "content-length":
            length = int(value)
    assert length is not None, "no Content-Length"
    return status, json.loads(f.read(length))


class Emulator:
    """The emulator as a subprocess on a free port (--port 0, read from its ready line)."""

    def __init__(self, *extra: str, data: str | None = None, min_timeout: int = 1,
                 python: str | None = None, prelude: str | None = None):
        args = ["--port", "0", "--token", TOKEN, "--project", PROJECT,
                "--min-timeout", str(min_timeout), *extra]
        if data:
            args += ["--data", data]
        if prelude is None:
            cmd = [python or sys.executable, EMULATOR, *args]
        else:
            cmd = [python or sys.executable, "-c", prelude, *args]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        self.lines: list[str] = []
        line = self._read_line(START_WITHIN)
        prefix = "ironmq-emulator: listening on http://"
        if not line.startswith(prefix):
            self.proc.kill()
            raise RuntimeError(f"unexpected first line from the emulator: {line!r}")
        address, _, rest = line[len(prefix):].partition(" ")
        self.host, _, port = address.rpartition(":")
        self.port = int(port)
        if rest.strip() != f"project {PROJECT}":
            raise RuntimeError(f"unexpected ready line: {line!r}")
        self.drain = threading.Thread(target=self._drain, daemon=True)
        self.drain.start()

    def _read_line(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        buf = b""
        fd = self.proc.stderr.fileno()
        while not buf.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
                self.proc.kill()
                raise RuntimeError(f"the emulator did not start: {buf!r}")
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 1)
                if not chunk:
                    continue
                buf += chunk
        return buf.decode().rstrip("\n")

    def _drain(self):
        for raw in self.proc.stderr:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def stop(self, sig=signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the emulator ignored signal {sig} for {timeout} s")
        self.drain.join(5)
        self.proc.stderr.close()
        return code

    def api(self, **kw) -> "Api":
        return Api(self.port, **kw)

    def client(self):
        return iron_mq.IronMQ(host="127.0.0.1", port=self.port, protocol="http",
                              project_id=PROJECT, token=TOKEN)


class Api:
    """A raw keep-alive connection; every answer is checked for Content-Length and JSON."""

    def __init__(self, port: int, token: str | None = TOKEN, project: str = PROJECT):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.token = token
        self.project = project

    def close(self):
        self.conn.close()

    def send(self, method, path, body=None, raw: bytes | str | None = None, token="default",
             project=None, headers=None):
        token = self.token if token == "default" else token
        hdrs = {}
        if token:
            hdrs["Authorization"] = f"OAuth {token}"
        data = raw if raw is not None else (json.dumps(body) if body is not None else None)
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        full = f"/3/projects/{project or self.project}{path}" if path.startswith("/") else path
        self.conn.request(method, full, body=data, headers=hdrs)

    def receive(self):
        r = self.conn.getresponse()
        payload = r.read()
        assert r.getheader("Content-Length") == str(len(payload)), r.getheaders()
        assert r.getheader("Content-Type", "").startswith("application/json"), r.getheaders()
        return r.status, json.loads(payload)

    def call(self, method, path, body=None, **kw):
        self.send(method, path, body, **kw)
        return self.receive()

    # shorthands
    def post(self, queue, *bodies, delay=None):
        msgs = [{"body": b} if delay is None else {"body": b, "delay": delay} for b in bodies]
        status, out = self.call("POST", f"/queues/{queue}/messages", {"messages": msgs})
        assert status == 201, (status, out)
        return out["ids"]

    def reserve(self, queue, **params):
        status, out = self.call("POST", f"/queues/{queue}/reservations", params)
        assert status == 200, (status, out)
        return out["messages"]

    def info(self, queue):
        status, out = self.call("GET", f"/queues/{queue}")
        assert status == 200, (status, out)
        return out["queue"]

    def peek(self, queue, n=100):
        status, out = self.call("GET", f"/queues/{queue}/messages?n={n}")
        assert status == 200, (status, out)
        return out["messages"]


EMU: Emulator | None = None


def setUpModule():
    global EMU
    EMU = Emulator()


def tearDownModule():
    code = EMU.stop()
    assert code == 0, f"the emulator exited with {code} on SIGTERM: {EMU.lines}"


# --- the official client -----------------------------------------------------------------------


@unittest.skipIf(OFFICIAL_SKIP, f"official client iron-mq unavailable: {OFFICIAL_SKIP}")
class OfficialClientTests(unittest.TestCase):
    def setUp(self):
        self.mq = EMU.client()
        self.name = unique("official")
        self.q = self.mq.queue(self.name)

    def status_of(self, call, *args, **kw) -> int:
        with self.assertRaises(requests.HTTPError) as caught:
            call(*args, **kw)
        return caught.exception.response.status_code

    def test_queue_lifecycle(self):
        created = self.mq.create_queue(self.name, {"message_timeout": 120,
                                                   "message_expiration": 3600})
        self.assertEqual(created["name"], self.name)
        self.assertEqual(created["message_timeout"], 120)
        self.assertNotIn("size", created)  # docs: create answers without size/total_messages
        info = self.q.info()
        self.assertEqual((info["size"], info["total_messages"]), (0, 0))
        self.assertEqual(info["project_id"], PROJECT)
        self.assertEqual(info["message_expiration"], 3600)
        self.assertEqual(info["type"], "pull")
        updated = self.q.update({"message_timeout": 90})
        self.assertEqual(updated["message_timeout"], 90)
        self.assertEqual(updated["message_expiration"], 3600)
        self.assertEqual(self.mq.update_queue(self.name, {"message_expiration": 60})
                         ["message_expiration"], 60)
        self.assertEqual(self.q.delete_queue(), {"msg": "Deleted"})
        self.assertEqual(self.status_of(self.q.info), 404)
        self.assertEqual(self.status_of(self.q.delete_queue), 404)

    def test_list_queues_through_the_clients_transport(self):
        # IronMQ.queues() calls urllib.urlencode, which Python 3 lacks: it cannot list at all.
        with self.assertRaises(AttributeError):
            self.mq.queues(per_page=2)
        base = unique("list")
        for suffix in ("a", "b", "c"):
            self.mq.create_queue(f"{base}-{suffix}")
        out = self.mq.client.get(f"queues?prefix={base}&per_page=2")["body"]["queues"]
        self.assertEqual([q["name"] for q in out], [f"{base}-a", f"{base}-b"])
        out = self.mq.client.get(f"queues?prefix={base}&previous={base}-b")["body"]["queues"]
        self.assertEqual([q["name"] for q in out], [f"{base}-c"])

    def test_post_reserve_delete(self):
        posted = self.q.post("m0", "m1", "m2")
        self.assertEqual(posted["msg"], "Messages put on queue.")
        ids = posted["ids"]
        self.assertEqual(len(ids), 3)
        self.assertTrue(all(isinstance(i, str) for i in ids))
        self.assertEqual(self.q.size(), 3)
        self.assertEqual(self.q.total_messages(), 3)
        got = self.q.reserve(3, 60)["messages"]
        self.assertEqual([m["id"] for m in got], ids)  # FIFO
        self.assertEqual([m["body"] for m in got], ["m0", "m1", "m2"])
        self.assertTrue(all(m["reserved_count"] == 1 and m["reservation_id"] for m in got))
        self.assertEqual(self.q.size(), 3)  # reserved messages still count
        self.assertEqual(self.q.reserve()["messages"], [])
        self.assertEqual(self.q.delete(ids[0], got[0]["reservation_id"]), {"msg": "Deleted"})
        self.assertEqual(self.q.size(), 2)
        self.assertEqual(self.q.delete_multiple(messages={"messages": got[1:]}),
                         {"msg": "Deleted"})
        self.assertEqual(self.q.size(), 0)
        self.assertEqual(self.q.total_messages(), 3)

    def test_delete_unreserved_and_delete_multiple_ids(self):
        ids = self.q.post("a", "b", "c")["ids"]
        self.q.delete(ids[0])
        self.q.delete_multiple(ids=ids[1:])
        self.assertEqual(self.q.size(), 0)
        self.assertEqual(self.status_of(self.q.delete, ids[0]), 404)

    def test_reserved_message_needs_its_reservation(self):
        mid = self.q.post("x")["ids"][0]
        self.q.reserve()
        self.assertEqual(self.status_of(self.q.delete, mid), 403)
        self.assertEqual(self.status_of(self.q.delete, mid, "not-a-reservation"), 403)

    def test_delay_peek_and_get_by_id(self):
        first = self.q.post({"body": "later", "delay": 1})["ids"][0]
        second = self.q.post("now")["ids"][0]
        peeked = self.q.peek(5)["messages"]
        self.assertEqual([m["id"] for m in peeked], [second])
        self.assertEqual(peeked[0], {"id": second, "body": "now", "reserved_count": 0})
        self.assertEqual(self.q.peek()["messages"][0]["id"], second)  # n defaults to 1
        self.assertEqual(self.q.get_message_by_id(first),
                         {"id": first, "body": "later", "reserved_count": 0})
        self.q.delete(second)
        got = self.q.reserve(1, wait=10)["messages"]  # the long poll waits out the delay
        self.assertEqual([m["id"] for m in got], [first])
        self.assertEqual(self.q.get_message_by_id(first)["reserved_count"], 1)
        self.assertEqual(self.status_of(self.q.get_message_by_id, "123"), 404)

    def test_touch_replaces_the_reservation(self):
        mid = self.q.post("t")["ids"][0]
        old = self.q.reserve(1, 30)["messages"][0]["reservation_id"]
        touched = self.q.touch(mid, old, 60)
        self.assertEqual(touched["msg"], "Touched")
        new = touched["reservation_id"]
        self.assertNotEqual(new, old)
        self.assertEqual(self.status_of(self.q.touch, mid, old), 403)
        self.assertEqual(self.status_of(self.q.release, mid, old), 403)
        self.assertEqual(self.status_of(self.q.delete, mid, old), 403)
        self.assertEqual(self.q.get_message_by_id(mid)["reserved_count"], 2)  # dlq docs
        newer = self.q.touch(mid, new)["reservation_id"]  # timeout: the queue's
        self.q.delete(mid, newer)
        self.assertEqual(self.q.size(), 0)

    def test_release_to_the_front_and_with_delay(self):
        a, b = self.q.post("a", "b")["ids"]
        got = self.q.reserve()["messages"][0]
        self.assertEqual(got["id"], a)
        self.assertEqual(self.q.release(a, got["reservation_id"]), {"msg": "Released"})
        self.assertEqual([m["id"] for m in self.q.peek(2)["messages"]], [a, b])
        again = self.q.reserve()["messages"][0]
        self.assertEqual((again["id"], again["reserved_count"]), (a, 2))
        self.assertEqual(self.status_of(self.q.delete, a, got["reservation_id"]), 403)
        self.q.release(a, again["reservation_id"], delay=1)
        self.assertEqual([m["id"] for m in self.q.peek(2)["messages"]], [b])
        self.q.delete(b)
        late = self.q.reserve(1, wait=10)["messages"]
        self.assertEqual([(m["id"], m["reserved_count"]) for m in late], [(a, 3)])

    def test_reservation_timeout_brings_the_message_back(self):
        mid = self.q.post("slow")["ids"][0]
        first = self.q.reserve(1, 1)["messages"][0]
        again = self.q.reserve(1, 60, wait=10)["messages"]  # wakes when the reservation ends
        self.assertEqual([(m["id"], m["reserved_count"]) for m in again], [(mid, 2)])
        self.assertEqual(self.status_of(self.q.delete, mid, first["reservation_id"]), 403)
        self.q.delete(mid, again[0]["reservation_id"])

    def test_reserve_with_delete_and_clear(self):
        self.q.post("gone")
        got = self.q.reserve(1, delete=True)["messages"]
        self.assertEqual(len(got), 1)
        self.assertEqual(self.q.size(), 0)
        self.q.post("x", "y")
        self.q.reserve()
        self.assertEqual(self.q.clear(), {"msg": "Cleared"})
        self.assertEqual(self.q.size(), 0)
        self.assertEqual(self.q.reserve()["messages"], [])

    def test_dead_letter(self):
        dlq = unique("dlq")
        created = self.mq.create_queue(self.name, {"dead_letter": {"queue_name": dlq,
                                                                   "max_reservations": 1}})
        self.assertEqual(created["dead_letter"], {"queue_name": dlq, "max_reservations": 1})
        self.assertEqual(self.mq.queue(dlq).size(), 0)  # created with the defaults
        mid = self.q.post("poison")["ids"][0]
        first = self.q.reserve()["messages"][0]
        self.q.release(mid, first["reservation_id"])
        self.assertEqual(self.q.reserve()["messages"], [])  # moved, not returned
        self.assertEqual(self.q.size(), 0)
        dead = self.mq.queue(dlq).reserve()["messages"]
        self.assertEqual([(m["id"], m["body"], m["reserved_count"]) for m in dead],
                         [(mid, "poison", 2)])  # the dlq's own reservation counted on
        self.assertEqual(self.mq.queue(dlq).total_messages(), 1)
        off = self.q.update({"dead_letter": {"queue_name": ""}})
        self.assertNotIn("dead_letter", off)

    def test_missing_queue(self):
        self.assertEqual(self.status_of(self.q.reserve), 404)
        self.assertEqual(self.status_of(self.q.peek), 404)
        self.assertEqual(self.status_of(self.q.clear), 404)
        self.assertEqual(self.status_of(self.q.update, {"message_timeout": 60}), 404)
        self.q.post("creates it")
        self.assertEqual(self.q.size(), 1)

    def test_long_poll_wakes_on_post(self):
        self.q.post("warm-up")
        self.q.delete_multiple(messages=self.q.reserve(1))
        result = {}
        started = threading.Event()

        def consumer():
            started.set()
            t0 = time.monotonic()
            result["messages"] = EMU.client().queue(self.name).reserve(1, wait=30)["messages"]
            result["elapsed"] = time.monotonic() - t0

        thread = threading.Thread(target=consumer)
        thread.start()
        started.wait()
        mid = self.q.post("wake up")["ids"][0]
        thread.join(40)
        self.assertEqual([m["id"] for m in result["messages"]], [mid])
        self.assertLess(result["elapsed"], 10)


@unittest.skipIf(OFFICIAL_SKIP, f"official client iron-mq unavailable: {OFFICIAL_SKIP}")
class OfficialClientRetryTests(unittest.TestCase):
    def test_client_retries_503_and_nothing_is_duplicated(self):
        # iron_core retries 503 and 504 up to five times (0.5 s, 1 s, 2 s... apart); a 503 has
        # no side effect, so every post lands exactly once.
        e = Emulator("--fail-rate", "0.2")
        try:
            q = e.client().queue(unique("retry"))
            ids = [q.post(f"m{i}")["ids"][0] for i in range(10)]
            self.assertEqual(q.size(), 10)
            got = q.reserve(10)["messages"]
            self.assertEqual([m["id"] for m in got], ids)
        finally:
            self.assertEqual(e.stop(), 0)
            e.proc.stderr.close()


# --- raw HTTP ---------------------------------------------------------------------------------


class RawHttpTests(unittest.TestCase):
    def setUp(self):
        self.api = EMU.api()
        self.name = unique("raw")

    def tearDown(self):
        self.api.close()

    def test_authentication(self):
        status, out = self.api.call("GET", "/queues", token=None)
        self.assertEqual((status, out), (401, {"msg": "Unauthorized"}))
        status, _ = self.api.call("GET", "/queues", token="wrong")
        self.assertEqual(status, 401)
        status, _ = self.api.call("GET", "/queues", token=None,
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        self.assertEqual(status, 401)
        status, _ = self.api.call("GET", f"/queues?oauth={TOKEN}", token=None)
        self.assertEqual(status, 200)
        status, out = self.api.call("GET", "/queues", project="other-project")
        self.assertEqual((status, out), (404, {"msg": "Project not found"}))
        # nothing was created by the refused requests
        status, _ = self.api.call("POST", f"/queues/{self.name}/messages",
                                  {"messages": [{"body": "x"}]}, token="wrong")
        self.assertEqual(status, 401)
        self.assertEqual(self.api.call("GET", f"/queues/{self.name}")[0], 404)

    def test_not_found_and_method_errors(self):
        self.assertEqual(self.api.call("GET", f"/queues/{self.name}"),
                         (404, {"msg": "Queue not found"}))
        self.api.post(self.name, "x")
        self.assertEqual(self.api.call("GET", f"/queues/{self.name}/messages/1"),
                         (404, {"msg": "Message not found"}))
        self.assertEqual(self.api.call("DELETE", f"/queues/{self.name}/messages/1", {}),
                         (404, {"msg": "Message not found"}))
        self.assertEqual(self.api.call("GET", "/nonsense")[0], 404)
        self.assertEqual(self.api.call("GET", "/nope", project=None, token=None)[0], 404)
        self.assertEqual(self.api.call("POST", f"/queues/{self.name}")[0], 405)
        self.assertEqual(self.api.call("GET", f"/queues/{self.name}/reservations")[0], 405)
        # push queues are outside the emulator: said, not faked
        self.assertEqual(self.api.call("PUT", f"/queues/{unique()}",
                                       {"queue": {"type": "multicast"}})[0], 501)
        self.assertEqual(self.api.call("POST", f"/queues/{self.name}/subscribers",
                                       {"subscribers": []})[0], 400)

    def test_bad_requests(self):
        q = f"/queues/{self.name}"
        self.api.post(self.name, "x")
        cases = [
            ("POST", f"{q}/messages", None, b"{not json"),
            ("POST", f"{q}/messages", None, b"[1, 2]"),
            ("POST", f"{q}/messages", None, "\"x\""),
            ("POST", f"{q}/messages", {"messages": []}, None),
            ("POST", f"{q}/messages", {"messages": [{"nobody": 1}]}, None),
            ("POST", f"{q}/messages", {"messages": [{"body": 5}]}, None),
            ("POST", f"{q}/messages", {"messages": [{"body": "x", "delay": -1}]}, None),
            ("POST", f"{q}/messages", {"messages": [{"body": "x", "delay": 604801}]}, None),
            ("POST", f"{q}/messages", {"messages": [{"body": "x", "delay": 1.5}]}, None),
            ("POST", f"{q}/reservations", {"n": 0}, None),
            ("POST", f"{q}/reservations", {"n": 101}, None),
            ("POST", f"{q}/reservations", {"n": "1"}, None),
            ("POST", f"{q}/reservations", {"n": True}, None),
            ("POST", f"{q}/reservations", {"timeout": 0}, None),
            ("POST", f"{q}/reservations", {"timeout": 86401}, None),
            ("POST", f"{q}/reservations", {"wait": 31}, None),
            ("POST", f"{q}/reservations", {"delete": "yes"}, None),
            ("POST", f"{q}/reservations", None, b"{\"n\": "),
            ("GET", f"{q}/messages?n=0", None, None),
            ("GET", f"{q}/messages?n=abc", None, None),
            ("GET", "/queues?per_page=0", None, None),
            ("GET", "/queues?per_page=101", None, None),
            ("PUT", q, {"queue": {"message_timeout": 86401}}, None),
            ("PUT", q, {"queue": {"message_expiration": 0}}, None),
            ("PUT", q, {"queue": {"dead_letter": {"queue_name": ""}}}, None),
            ("PUT", q, {"queue": {"dead_letter": {"queue_name": "d", "max_reservations": 0}}},
             None),
            ("PUT", q, {"queue": {"dead_letter": {"queue_name": self.name}}}, None),
            ("PATCH", q, {"queue": {"type": "unicast"}}, None),
            ("PATCH", q, {"queue": "x"}, None),
            ("DELETE", f"{q}/messages", {"ids": []}, None),
            ("DELETE", f"{q}/messages", {"ids": ["bare-string"]}, None),
            ("DELETE", f"{q}/messages", {"ids": [{"id": str(i)} for i in range(101)]}, None),
            ("POST", f"{q}/messages/1/touch", {}, None),
            ("POST", f"{q}/messages/1/release", {}, None),
            ("DELETE", f"{q}/messages/1", {"reservation_id": 7}, None),
        ]
        for method, path, body, raw in cases:
            with self.subTest(method=method, path=path, body=body, raw=raw):
                status, out = self.api.call(method, path, body, raw=raw)
                self.assertEqual(status, 400, out)
                self.assertIsInstance(out.get("msg"), str)
        info = self.api.info(self.name)  # none of them changed anything
        self.assertEqual((info["size"], info["total_messages"], info["message_timeout"]),
                         (1, 1, 60))
        self.assertNotIn("dead_letter", info)

    def test_stale_reservation_is_403_after_expiry(self):
        mid = self.api.post(self.name, "x")[0]
        rid = self.api.reserve(self.name, timeout=1)[0]["reservation_id"]
        # the message comes back on its own once the reservation ends
        wait_until(lambda: self.api.peek(self.name), what="the reservation to time out")
        for method, path, body in [
            ("DELETE", f"/queues/{self.name}/messages/{mid}", {"reservation_id": rid}),
            ("POST", f"/queues/{self.name}/messages/{mid}/touch", {"reservation_id": rid}),
            ("POST", f"/queues/{self.name}/messages/{mid}/release", {"reservation_id": rid}),
            ("DELETE", f"/queues/{self.name}/messages",
             {"ids": [{"id": mid, "reservation_id": rid}]}),
        ]:
            with self.subTest(method=method, path=path):
                self.assertEqual(self.api.call(method, path, body),
                                 (403, {"msg": "Reservation timed out"}))
        again = self.api.reserve(self.name, wait=5)
        self.assertEqual(again[0]["reserved_count"], 2)
        status, _ = self.api.call("DELETE", f"/queues/{self.name}/messages/{mid}",
                                  {"reservation_id": rid})
        self.assertEqual(status, 403)  # replaced by the new reservation
        status, _ = self.api.call("DELETE", f"/queues/{self.name}/messages/{mid}",
                                  {"reservation_id": again[0]["reservation_id"]})
        self.assertEqual(status, 200)

    def test_touch_extends_the_reservation(self):
        mid = self.api.post(self.name, "x")[0]
        rid = self.api.reserve(self.name, timeout=1)[0]["reservation_id"]
        status, out = self.api.call("POST", f"/queues/{self.name}/messages/{mid}/touch",
                                    {"reservation_id": rid, "timeout": 60})
        self.assertEqual(status, 200)
        # without the touch the message would come back after 1 s, within this long poll
        self.assertEqual(self.api.reserve(self.name, wait=3), [])
        status, _ = self.api.call("DELETE", f"/queues/{self.name}/messages/{mid}",
                                  {"reservation_id": out["reservation_id"]})
        self.assertEqual(status, 200)

    def test_timed_out_message_goes_to_the_front(self):
        a, b = self.api.post(self.name, "a", "b")
        self.api.reserve(self.name, timeout=1)
        wait_until(lambda: len(self.api.peek(self.name)) == 2, what="a to come back")
        self.assertEqual([m["id"] for m in self.api.peek(self.name)], [a, b])

    def test_batch_delete_is_all_or_nothing(self):
        self.api.post(self.name, "a", "b", "c")
        got = self.api.reserve(self.name, n=3)
        ids = [{"id": m["id"], "reservation_id": m["reservation_id"]} for m in got]
        stale = ids[:2] + [{"id": got[2]["id"], "reservation_id": "stale"}]
        path = f"/queues/{self.name}/messages"
        self.assertEqual(self.api.call("DELETE", path, {"ids": stale})[0], 403)
        missing = ids + [{"id": "999"}]
        self.assertEqual(self.api.call("DELETE", path, {"ids": missing})[0], 404)
        self.assertEqual(self.api.info(self.name)["size"], 3)
        numeric = [{"id": int(i["id"]), "reservation_id": i["reservation_id"]} for i in ids]
        self.assertEqual(self.api.call("DELETE", path, {"ids": numeric + numeric[:1]}),
                         (200, {"msg": "Deleted"}))
        self.assertEqual(self.api.info(self.name)["size"], 0)
        self.api.post(self.name, "x")
        self.assertEqual(self.api.call("DELETE", path, {}), (200, {"msg": "Cleared"}))
        self.assertEqual(self.api.call("DELETE", path), (200, {"msg": "Cleared"}))
        self.assertEqual(self.api.info(self.name)["size"], 0)

    def test_queue_create_update_list(self):
        q = f"/queues/{self.name}"
        status, out = self.api.call("PUT", q, {"queue": {"message_timeout": 45}})
        self.assertEqual(status, 200)
        self.assertEqual(out["queue"], {"project_id": PROJECT, "name": self.name,
                                        "message_timeout": 45, "message_expiration": 604800,
                                        "type": "pull"})
        status, out = self.api.call("PUT", q, {})  # idempotent, keeps the settings
        self.assertEqual((status, out["queue"]["message_timeout"]), (200, 45))
        dlq = unique("dlq")
        status, out = self.api.call("PATCH", q, {"queue": {"dead_letter": {"queue_name": dlq}}})
        self.assertEqual(out["queue"]["dead_letter"], {"queue_name": dlq,
                                                       "max_reservations": 10})
        self.assertEqual(out["queue"]["size"], 0)
        self.assertEqual(self.api.info(dlq)["size"], 0)
        status, out = self.api.call("PATCH", q, {"queue": {"dead_letter": {"queue_name": ""}}})
        self.assertNotIn("dead_letter", out["queue"])
        self.assertEqual(self.api.call("PATCH", f"/queues/{unique()}", {})[0], 404)
        base = unique("ls")
        for suffix in ("d", "b", "a", "c"):
            self.api.call("PUT", f"/queues/{base}-{suffix}", {})
        names = lambda out: [q["name"] for q in out["queues"]]  # noqa: E731
        _, out = self.api.call("GET", f"/queues?prefix={base}&per_page=2")
        self.assertEqual(names(out), [f"{base}-a", f"{base}-b"])
        _, out = self.api.call("GET", f"/queues?prefix={base}&per_page=2&previous={base}-b")
        self.assertEqual(names(out), [f"{base}-c", f"{base}-d"])
        _, out = self.api.call("GET", f"/queues?prefix={base}&previous={base}-bb")
        self.assertEqual(names(out), [f"{base}-c", f"{base}-d"])
        _, out = self.api.call("GET", f"/queues?prefix={base}-zz")
        self.assertEqual(out, {"queues": []})
        _, out = self.api.call("GET", "/queues?per_page=100")
        listed = names(out)
        self.assertEqual(listed, sorted(listed))
        self.assertEqual(self.api.call("DELETE", f"/queues/{base}-a"), (200, {"msg": "Deleted"}))
        _, out = self.api.call("GET", f"/queues?prefix={base}")
        self.assertEqual(names(out), [f"{base}-b", f"{base}-c", f"{base}-d"])

    def test_queue_names_are_url_decoded(self):
        name = f"{self.name} with space/and slash"
        quoted = name.replace(" ", "%20").replace("/", "%2F")
        self.assertEqual(self.api.call("POST", f"/queues/{quoted}/messages",
                                       {"messages": [{"body": "x"}]})[0], 201)
        self.assertEqual(self.api.info(quoted)["name"], name)

    def test_webhook(self):
        status, out = self.api.call("POST", f"/queues/{self.name}/webhook", raw=b"raw text")
        self.assertEqual(status, 201)
        got = self.api.reserve(self.name)
        self.assertEqual([(m["id"], m["body"]) for m in got], [(out["ids"][0], "raw text")])

    def test_message_expiration(self):
        self.api.call("PUT", f"/queues/{self.name}", {"queue": {"message_expiration": 1}})
        a, b = self.api.post(self.name, "a", "b")
        rid = self.api.reserve(self.name)[0]["reservation_id"]
        wait_until(lambda: self.api.info(self.name)["size"] == 0, what="expiry")
        self.assertEqual(self.api.peek(self.name), [])
        status, _ = self.api.call("DELETE", f"/queues/{self.name}/messages/{a}",
                                  {"reservation_id": rid})
        self.assertEqual(status, 404)
        self.assertEqual(self.api.info(self.name)["total_messages"], 2)

    def test_dead_letter_after_max_reservations(self):
        dlq = unique("dlq")
        self.api.call("PUT", f"/queues/{self.name}",
                      {"queue": {"dead_letter": {"queue_name": dlq, "max_reservations": 2}}})
        mid = self.api.post(self.name, "poison")[0]
        for count in (1, 2):
            got = self.api.reserve(self.name)
            self.assertEqual(got[0]["reserved_count"], count)
            status, _ = self.api.call("POST", f"/queues/{self.name}/messages/{mid}/release",
                                      {"reservation_id": got[0]["reservation_id"]})
            self.assertEqual(status, 200)
        self.assertEqual(self.api.reserve(self.name), [])
        self.assertEqual(self.api.peek(dlq), [{"id": mid, "body": "poison", "reserved_count": 2}])
        self.assertEqual(self.api.info(self.name)["size"], 0)
        # a dead letter queue deleted meanwhile is created again
        self.api.call("DELETE", f"/queues/{dlq}")
        mid2 = self.api.post(self.name, "second")[0]
        for _ in range(2):
            got = self.api.reserve(self.name)
            self.api.call("POST", f"/queues/{self.name}/messages/{mid2}/release",
                          {"reservation_id": got[0]["reservation_id"]})
        self.assertEqual(self.api.reserve(self.name), [])
        self.assertEqual([m["id"] for m in self.api.peek(dlq)], [mid2])

    def test_keep_alive_reuses_one_connection(self):
        self.api.post(self.name, "x")
        sock = self.api.conn.sock
        self.assertIsNotNone(sock)
        for i in range(30):
            self.api.info(self.name)
            self.api.call("GET", f"/queues/{self.name}/messages/nope")  # errors keep it too
            self.api.call("POST", f"/queues/{self.name}/messages", raw=b"{bad")
            self.api.call("GET", "/queues", token="wrong")
            self.assertIs(self.api.conn.sock, sock, f"reconnected at round {i}")

    def test_pipelined_requests_on_one_socket(self):
        body = json.dumps({"messages": [{"body": "p"}]}).encode()
        request = (f"POST /3/projects/{PROJECT}/queues/{self.name}/messages HTTP/1.1\r\n"
                   f"Host: x\r\nAuthorization: OAuth {TOKEN}\r\nContent-Length: {len(body)}"
                   "\r\n\r\n").encode() + body
        with socket.create_connection(("127.0.0.1", EMU.port), timeout=30) as s:
            s.sendall(request * 3)
            with s.makefile("rb") as f:
                for _ in range(3):
                    status, out = read_response(f)
                    self.assertEqual(status, 201)
                    self.assertEqual(len(out["ids"]), 1)
        self.assertEqual(self.api.info(self.name)["size"], 3)

    def test_expect_100_continue(self):
        # libcurl sends Expect: 100-continue before larger bodies.
        body = json.dumps({"messages": [{"body": "y" * 4096}]}).encode()
        head = (f"POST /3/projects/{PROJECT}/queues/{self.name}/messages HTTP/1.1\r\n"
                f"Host: x\r\nAuthorization: OAuth {TOKEN}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", EMU.port), timeout=30) as s:
            s.sendall(head)
            f = s.makefile("rb")
            self.assertEqual(f.readline(), b"HTTP/1.1 100 Continue\r\n")
            while f.readline() not in (b"\r\n", b""):
                pass
            s.sendall(body)
            status, out = read_response(f)
            f.close()
            self.assertEqual(status, 201)
            self.assertEqual(len(out["ids"]), 1)

    def test_chunked_request_body(self):
        body = json.dumps({"messages": [{"body": "chunked"}]}).encode()
        self.api.conn.putrequest("POST", f"/3/projects/{PROJECT}/queues/{self.name}/messages")
        self.api.conn.putheader("Authorization", f"OAuth {TOKEN}")
        self.api.conn.putheader("Transfer-Encoding", "chunked")
        self.api.conn.endheaders()
        for part in (body[:10], body[10:]):
            self.api.conn.send(b"%x\r\n%s\r\n" % (len(part), part))
        self.api.conn.send(b"0\r\n\r\n")
        status, out = self.api.receive()
        self.assertEqual(status, 201)
        self.assertEqual(self.api.peek(self.name)[0]["body"], "chunked")

    def test_long_poll_returns_as_soon_as_a_message_is_posted(self):
        self.api.post(self.name, "make the queue")
        self.api.reserve(self.name, delete=True)
        poller = EMU.api()
        poller.send("POST", f"/queues/{self.name}/reservations", {"n": 5, "wait": 30})
        t0 = time.monotonic()
        ids = self.api.post(self.name, "one")
        status, out = poller.receive()
        elapsed = time.monotonic() - t0
        poller.close()
        self.assertEqual(status, 200)
        self.assertEqual([m["id"] for m in out["messages"]], ids)
        self.assertLess(elapsed, 5)

    def test_long_poll_wakes_for_release_and_for_a_shorter_delay(self):
        self.api.post(self.name, "x")
        got = self.api.reserve(self.name, timeout=600)[0]
        poller = EMU.api()
        poller.send("POST", f"/queues/{self.name}/reservations", {"wait": 30})
        t0 = time.monotonic()
        self.api.call("POST", f"/queues/{self.name}/messages/{got['id']}/release",
                      {"reservation_id": got["reservation_id"]})
        status, out = poller.receive()
        self.assertEqual([m["id"] for m in out["messages"]], [got["id"]])
        self.assertLess(time.monotonic() - t0, 5)
        # the poller sleeps until its deadline; a delayed message due earlier must wake it
        poller.send("POST", f"/queues/{self.name}/reservations", {"wait": 30})
        t0 = time.monotonic()
        ids = self.api.post(self.name, "soon", delay=1)
        status, out = poller.receive()
        poller.close()
        self.assertEqual([m["id"] for m in out["messages"]], ids)
        self.assertLess(time.monotonic() - t0, 10)

    def test_long_poll_on_a_deleted_queue_is_404(self):
        self.api.post(self.name, "x")
        self.api.reserve(self.name, delete=True)
        poller = EMU.api()
        poller.send("POST", f"/queues/{self.name}/reservations", {"wait": 30})
        # the DELETE may come before the poller waits; either way the answer is 404
        self.assertEqual(self.api.call("DELETE", f"/queues/{self.name}")[0], 200)
        status, out = poller.receive()
        poller.close()
        self.assertEqual((status, out), (404, {"msg": "Queue not found"}))

    def test_long_poll_timeout_and_idle_waiters_use_no_cpu(self):
        stat = f"/proc/{EMU.proc.pid}/stat"
        if not os.path.exists(stat):
            self.skipTest("no /proc on this system")

        def cpu_seconds():
            with open(stat) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

        self.api.call("PUT", f"/queues/{self.name}", {})
        pollers = [EMU.api() for _ in range(20)]
        before = cpu_seconds()
        t0 = time.monotonic()
        for p in pollers:
            p.send("POST", f"/queues/{self.name}/reservations", {"wait": 2})
        for p in pollers:
            self.assertEqual(p.receive(), (200, {"messages": []}))
            p.close()
        elapsed = time.monotonic() - t0
        used = cpu_seconds() - before
        self.assertGreaterEqual(elapsed, 1.9)
        self.assertLess(elapsed, 10)
        self.assertLess(used, 0.25, f"20 idle long polls used {used:.2f} s of CPU")

    def test_concurrent_consumers_get_each_message_once(self):
        total, producers, consumers = 2000, 4, 4
        received: list[str] = []
        posted: list[str] = []
        lock = threading.Lock()
        errors: list[BaseException] = []

        def produce(k):
            try:
                api = EMU.api()
                for i in range(total // producers // 50):
                    ids = api.post(self.name, *[f"{k}-{i}-{j}" for j in range(50)])
                    with lock:
                        posted.extend(ids)
                api.close()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        def consume():
            try:
                api = EMU.api()
                while True:
                    with lock:
                        if len(received) >= total or errors:
                            break
                    got = api.reserve(self.name, n=25, wait=1)
                    if not got:
                        continue
                    ids = [{"id": m["id"], "reservation_id": m["reservation_id"]} for m in got]
                    status, _ = api.call("DELETE", f"/queues/{self.name}/messages", {"ids": ids})
                    assert status == 200
                    with lock:
                        received.extend(m["id"] for m in got)
                api.close()
            except BaseException as e:  # noqa: BLE001
                errors.append(e)

        self.api.call("PUT", f"/queues/{self.name}", {})
        threads = [threading.Thread(target=produce, args=(k,)) for k in range(producers)]
        threads += [threading.Thread(target=consume) for _ in range(consumers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        self.assertEqual(errors, [])
        self.assertEqual(len(received), total)
        self.assertEqual(sorted(received), sorted(posted))
        self.assertEqual(len(set(received)), total)
        self.assertEqual(self.api.info(self.name)["size"], 0)


class RestartTests(unittest.TestCase):
    """Emulators of their own: persistence, --fail-rate, signals."""

    def setUp(self):
        self.dir = tempfile.TemporaryDirectory(prefix="ironmq-emulator-")
        self.data = os.path.join(self.dir.name, "state.json")
        self.emulators: list[Emulator] = []

    def tearDown(self):
        for e in self.emulators:
            if e.proc.poll() is None:
                e.proc.kill()
                e.proc.wait()
            e.drain.join(5)
            e.proc.stderr.close()
        self.dir.cleanup()

    def start(self, *extra, **kw) -> Emulator:
        e = Emulator(*extra, **kw)
        self.emulators.append(e)
        return e

    def test_state_survives_a_restart(self):
        e = self.start(data=self.data)
        api = e.api()
        dlq = unique("dlq")
        api.call("PUT", "/queues/kept", {"queue": {"message_timeout": 40, "dead_letter": {
            "queue_name": dlq, "max_reservations": 3}}})
        a, b, c = api.post("kept", "a", "b", "c")
        d = api.post("kept", "d", delay=2)[0]
        held = api.reserve("kept", n=1, timeout=600)[0]
        short = api.reserve("kept", n=1, timeout=1)[0]
        self.assertEqual((held["id"], short["id"]), (a, b))
        # group commit: the acknowledged changes are on disk before any shutdown
        with open(self.data) as f:
            saved = json.load(f)
        rows = {row[1]: row for q in saved["queues"] if q["name"] == "kept"
                for row in q["messages"]}
        self.assertEqual(set(rows), {a, b, c, d})
        self.assertEqual(rows[a][6], held["reservation_id"])
        api.close()
        self.assertEqual(e.stop(), 0)

        e2 = self.start(data=self.data)
        api = e2.api()
        info = api.info("kept")
        self.assertEqual((info["size"], info["total_messages"], info["message_timeout"]),
                         (4, 4, 40))
        self.assertEqual(info["dead_letter"], {"queue_name": dlq, "max_reservations": 3})
        self.assertEqual(api.info(dlq)["size"], 0)
        # the long reservation is still held, and its id still works
        self.assertEqual(api.call("POST", f"/queues/kept/messages/{a}/touch",
                                  {"reservation_id": "x"})[0], 403)
        self.assertEqual(api.call("DELETE", f"/queues/kept/messages/{a}",
                                  {"reservation_id": held["reservation_id"]})[0], 200)
        # the short one ended (during or after the restart); the delayed one arrives
        seen = {}
        deadline = time.monotonic() + 20
        while set(seen) != {b, c, d} and time.monotonic() < deadline:
            for m in api.reserve("kept", n=10, wait=5):
                seen[m["id"]] = m["reserved_count"]
        self.assertEqual(seen, {b: 2, c: 1, d: 1})
        status, _ = api.call("DELETE", f"/queues/kept/messages/{b}",
                             {"reservation_id": short["reservation_id"]})
        self.assertEqual(status, 403)
        new = api.post("kept", "new")[0]
        self.assertGreater(int(new), max(int(a), int(b), int(c), int(d)))
        api.close()
        self.assertEqual(e2.stop(signal.SIGINT), 0)

    def test_acknowledged_posts_survive_sigkill(self):
        e = self.start(data=self.data)
        api = e.api()
        ids = []
        for i in range(20):
            ids += api.post("crash", f"m{i}")
        api.close()
        self.assertEqual(e.stop(signal.SIGKILL), -signal.SIGKILL)
        e2 = self.start(data=self.data)
        api = e2.api()
        self.assertEqual([m["id"] for m in api.peek("crash")], ids)
        api.close()
        self.assertEqual(e2.stop(), 0)

    def test_unreadable_data_file_is_an_error(self):
        with open(self.data, "w") as f:
            f.write("{broken")
        proc = subprocess.run([sys.executable, EMULATOR, "--port", "0", "--token", TOKEN,
                               "--project", PROJECT, "--data", self.data],
                              capture_output=True, text=True, timeout=30)
        self.assertEqual(proc.returncode, 2)
        self.assertIn("cannot load", proc.stderr)

    def test_fail_rate_answers_503_without_side_effects(self):
        e = self.start("--fail-rate", "0.5", data=self.data)
        api = e.api()
        accepted, failed = [], 0
        for i in range(200):
            status, out = api.call("POST", "/queues/flaky/messages",
                                   {"messages": [{"body": f"m{i}"}]})
            if status == 503:
                self.assertIsInstance(out["msg"], str)
                failed += 1
            else:
                self.assertEqual(status, 201)
                accepted += out["ids"]
        self.assertTrue(30 < failed < 170, failed)  # it is random, but not that random

        def until_ok(method, path, body=None):
            while True:
                status, out = api.call(method, path, body)
                if status != 503:
                    return status, out

        status, out = until_ok("GET", "/queues/flaky")
        self.assertEqual((out["queue"]["size"], out["queue"]["total_messages"]),
                         (len(accepted), len(accepted)))
        # a failed reserve must not hide messages behind a reservation
        got = []
        while len(got) < len(accepted):
            status, out = api.call("POST", "/queues/flaky/reservations", {"n": 7})
            if status == 200:
                self.assertTrue(out["messages"], "messages are missing")
                got += [m["id"] for m in out["messages"]]
        self.assertEqual(got, accepted)
        api.close()
        self.assertEqual(e.stop(), 0)

    def test_fail_rate_one_fails_everything(self):
        e = self.start("--fail-rate", "1")
        api = e.api()
        for _ in range(5):
            self.assertEqual(api.call("POST", "/queues/x/messages",
                                      {"messages": [{"body": "x"}]})[0], 503)
        api.close()
        self.assertEqual(e.stop(), 0)

    def test_sigterm_during_a_long_poll_exits_cleanly(self):
        e = self.start(data=self.data)
        api = e.api()
        api.post("lp", "x")
        api.reserve("lp", delete=True)
        poller = e.api()
        poller.send("POST", "/queues/lp/reservations", {"wait": 30})
        api.info("lp")
        t0 = time.monotonic()
        self.assertEqual(e.stop(), 0)
        self.assertLess(time.monotonic() - t0, 10)
        poller.close()
        api.close()


# --- bench -------------------------------------------------------------------------------------

PROFILE_PRELUDE = r"""
import cProfile, pstats, sys, threading, io
sys.dont_write_bytecode = True
sys.argv[0] = %(emulator)r
sys.path.insert(0, %(here)r)
import ironmq_emulator as e
done = []
lock = threading.Condition()
started = [0]
original = e.Handler.handle
def handle(self):
    p = cProfile.Profile()
    with lock:
        started[0] += 1
    p.enable()
    try:
        original(self)
    finally:
        p.disable()
        with lock:
            done.append(p)
            lock.notify_all()
e.Handler.handle = handle
code = e.main(sys.argv[1:])
with lock:
    lock.wait_for(lambda: len(done) >= started[0], timeout=10)
stats = pstats.Stats(done[0])
for p in done[1:]:
    stats.add(p)
out = io.StringIO()
stats.stream = out
stats.sort_stats("tottime").print_stats(25)
stats.sort_stats("cumulative").print_stats(30)
with open(%(out)r, "w") as f:
    f.write(out.getvalue())
sys.exit(code)
"""


def bench(argv):
    import argparse

    parser = argparse.ArgumentParser(prog="test_emulator.py bench")
    parser.add_argument("--batches", type=int, default=200, help="100-message batches per run")
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args(argv)

    def raw_loop(e, batches):
        api = e.api()
        api.call("PUT", "/queues/bench-raw", {})
        body = {"messages": [{"body": f"message body {i:04d} " + "x" * 40} for i in range(100)]}
        t0 = time.perf_counter()
        for _ in range(batches):
            status, _ = api.call("POST", "/queues/bench-raw/messages", body)
            assert status == 201
            got = api.reserve("bench-raw", n=100)
            ids = [{"id": m["id"], "reservation_id": m["reservation_id"]} for m in got]
            status, _ = api.call("DELETE", "/queues/bench-raw/messages", {"ids": ids})
            assert status == 200 and len(ids) == 100
        elapsed = time.perf_counter() - t0
        api.close()
        return batches * 100 / elapsed, elapsed / batches / 3

    def official_loop(e, batches):
        q = e.client().queue("bench-official")
        bodies = [f"message body {i:04d} " + "x" * 40 for i in range(100)]
        t0 = time.perf_counter()
        for _ in range(batches):
            q.post(*bodies)
            got = q.reserve(100)
            assert len(got["messages"]) == 100
            q.delete_multiple(messages=got)
        elapsed = time.perf_counter() - t0
        return batches * 100 / elapsed, elapsed / batches / 3

    def cpu_seconds(pid):
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def run(label, loop, batches, **kw):
        e = Emulator(**kw)
        try:
            loop(e, max(batches // 10, 1))  # warm-up
            cpu = cpu_seconds(e.proc.pid)
            rate, per_request = loop(e, batches)
            cpu = cpu_seconds(e.proc.pid) - cpu
        finally:
            code = e.stop()
        print(f"{label:<46} {rate:>9,.0f} messages/s  ({per_request * 1e3:.2f} ms/request; "
              f"emulator CPU {cpu / (batches * 3) * 1e6:.0f} us/request)")
        assert code == 0, e.lines
        return rate

    print(f"python {sys.version.split()[0]}, {args.batches} rounds of post 100 / reserve 100 / "
          "delete 100")
    run("raw http.client, keep-alive", raw_loop, args.batches)
    with tempfile.TemporaryDirectory() as d:
        run("raw http.client, keep-alive, --data (fsync)", raw_loop, args.batches,
            data=os.path.join(d, "s.json"))
    if iron_mq is not None:
        run("official iron_mq client (requests, new conn.)", official_loop, args.batches)
    else:
        print(f"official client: skipped ({OFFICIAL_SKIP})")
    if args.profile:
        for label, loop in [("raw http.client", raw_loop)] + (
                [("official client", official_loop)] if iron_mq is not None else []):
            with tempfile.TemporaryDirectory() as d:
                out = os.path.join(d, "profile.txt")
                prelude = PROFILE_PRELUDE % {"emulator": EMULATOR, "here": HERE, "out": out}
                run(f"{label} under cProfile", loop, args.batches, prelude=prelude)
                print(f"---- cProfile of the emulator's request threads, {label} ----")
                with open(out) as f:
                    print(f.read())


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "bench":
        bench(sys.argv[2:])
    else:
        if OFFICIAL_SKIP:
            print(f"test_emulator: official-client tests SKIPPED: {OFFICIAL_SKIP}",
                  file=sys.stderr)
        result = unittest.main(exit=False).result
        failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
        skipped = len(result.skipped)
        print(f"ironmq-emulator: {result.testsRun - failed - skipped} passed, {failed} failed, "
              f"{skipped} skipped")
        sys.exit(0 if result.wasSuccessful() and result.testsRun else 1)
