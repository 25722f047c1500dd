#!/usr/bin/env python3
"""A local IronMQ v3 server: the pull-queue API of Iron.io's v3 reference, for tests.

    ironmq_emulator.py --port P --token T --project ID [--host 127.0.0.1] [--data FILE]
                       [--fail-rate X] [--min-timeout S] [--verbose]

Python 3 standard library only, one file. It serves `/3/projects/{ID}/...` over HTTP/1.1 with
keep-alive, a thread per connection, and prints one line to stderr when it is ready:

    ironmq-emulator: listening on http://HOST:PORT project ID

`--port 0` binds a free port (read it from that line). SIGTERM or SIGINT stops it with status 0
after a last save of `--data`.

What it implements (Iron.io docs, mq/3/reference/api and mq/3/reference/dlq):
  queues    PUT/GET/PATCH/DELETE /queues/{name}, GET /queues?per_page&previous&prefix
  messages  POST /queues/{name}/messages (creates the queue), POST .../webhook,
            POST .../reservations (n <= 100, timeout, wait <= 30 s long poll, delete),
            GET .../messages/{id}, GET .../messages?n= (peek), DELETE .../messages/{id},
            DELETE .../messages {"ids": [...]} (batch) or {} (clear),
            POST .../messages/{id}/touch and /release
  dead letters, reserved_count, message_expiration, delays, 401/403/404/400 as documented.
Not implemented: push queues, subscribers and alerts (501 or 400, never a silent success).

Choices where the docs are silent:
  * Authentication: `Authorization: OAuth TOKEN` or the v1 docs' `?oauth=TOKEN`; anything else 401
    {"msg": "Unauthorized"}. Another project id: 404 {"msg": "Project not found"}.
  * Bounds that the docs give are enforced with 400: n 1..100, reservation and touch timeout
    30..86400 (`--min-timeout` lowers 30 for tests), wait 0..30, delay 0..604800,
    max_reservations 1..1000, per_page 1..100; message_expiration 1..2592000 (v1's maximum).
    Numbers must be JSON integers (not booleans, not 1.5).
  * size counts every message on the queue, reserved and delayed ones too (the official client's
    own tests expect size 1 after reserving the only message); total_messages counts every
    message ever put on the queue (posts and dead letters), and survives a clear.
  * PUT on an existing queue updates it like PATCH (200), so "create" is idempotent.
  * Timed-out and released messages go to the front of the queue (docs, "Changes"); new and
    delayed messages to the back. Peek shows only messages a reserve could return now.
  * A stale reservation id (timed out, released, replaced by a touch or by another reserve) is
    403 {"msg": "Reservation timed out"}; deleting a reserved message without a reservation id
    is 403 too. A missing message is 404 {"msg": "Message not found"}, a missing queue 404
    {"msg": "Queue not found"}.
  * Batch delete is all or nothing: the first id that is missing (404) or whose reservation is
    stale (403) fails the request and nothing is deleted. An empty "ids" list is 400, never a
    clear; a body without "ids" clears the queue.
  * Touch increments reserved_count (dlq docs); a message reserved when its reserved_count
    already reached dead_letter.max_reservations moves to the dead letter queue at that reserve,
    with the same id, body and reserved_count, and the dead letter queue's expiration.
  * message_expiration is stamped on each message when it enters a queue; an expired message
    disappears whatever its state (a later delete of it is 404).

Persistence (`--data FILE`): the state is saved as JSON (temp file, fsync, os.replace) by one
writer thread with group commit: a request that changed state is answered only after a save that
includes its change, so nothing acknowledged is lost even on a crash. Times are stored as
wall-clock times, so reservations and delays keep running while the server is down.

`--fail-rate X`: that fraction of requests is answered 503 {"msg": ...} before anything else is
looked at (no side effect). The official client retries 503 five times with backoff.

Where the time goes (`test_emulator.py bench --profile`: post 100, reserve 100, batch-delete
100 over one keep-alive connection; CPython 3.11 on 2 cores): about 210 us of emulator CPU per
request, 60-75k messages/s end to end. Some 60% of it is the queue operations (per message about
1 us to post, 1.5 us to reserve including its JSON, 0.9 us to delete), 15% decoding request JSON,
25% HTTP: one readline per header (parse_request below, not email.parser, which alone cost a
sixth of a request), one sendall per answer, thread switches. No operation scans a queue: ready
messages are an OrderedDict (O(1) pop-front, push-front and delete by id); reservations and
expirations are OrderedDicts per timeout value, whose insertion order is their expiry order;
delays are a heap. The official client opens a new connection per request (requests without a
Session): accept and a new thread per request triple the CPU per request. With --data, each
change also waits for its save (snapshot, json.dumps, fsync), about 1 ms, shared by concurrent
requests.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import heapq
import http.server
import itertools
import json
import os
import random
import signal
import socket
import sys
import threading
import time
import urllib.parse

READY, DELAYED, RESERVED, GONE = 0, 1, 2, 3

MAX_N = 100
MAX_TIMEOUT = 86_400
MAX_WAIT = 30
MAX_DELAY = 604_800
MAX_EXPIRATION = 2_592_000
DEFAULT_TIMEOUT = 60
DEFAULT_EXPIRATION = 604_800
DEFAULT_MAX_RESERVATIONS = 10
FORMAT = "ironmq-emulator/1"


class ApiError(Exception):
    """An answer other than success: status and the `msg` of its JSON body."""

    def __init__(self, status: int, msg: str):
        super().__init__(msg)
        self.status = status
        self.msg = msg


def bad(msg: str) -> ApiError:
    return ApiError(400, msg)


QUEUE_NOT_FOUND = "Queue not found"
MESSAGE_NOT_FOUND = "Message not found"
RESERVATION_TIMED_OUT = "Reservation timed out"

# A reserved message as JSON; ids are digits and reservation ids hex, so only the body needs
# escaping, by the C function that json.dumps uses.
MESSAGE_JSON = '{"id":"%s","body":%s,"reserved_count":%d,"reservation_id":"%s"}'
encode_string = json.encoder.encode_basestring_ascii


class Message:
    __slots__ = ("id", "body", "reserved_count", "state", "token", "rid", "until",
                 "res_group", "expires_at", "exp_group")

    def __init__(self, mid: str, body: str, reserved_count: int = 0, exp_group: int = 0,
                 expires_at: float = 0.0):
        self.id = mid
        self.body = body
        self.reserved_count = reserved_count
        self.state = READY
        self.token = 0  # changes whenever the message enters the delayed heap: stale entries differ
        self.rid = None  # the current (or last) reservation id
        self.until = 0.0  # monotonic end of the current reservation
        self.res_group = 0  # the reservation's timeout: key in Queue.reserved
        self.exp_group = exp_group  # the expiration it was stamped with: key in Queue.expiry
        self.expires_at = expires_at  # monotonic


class Queue:
    __slots__ = ("name", "message_timeout", "message_expiration", "dead_letter",
                 "total_messages", "messages", "ready", "reserved", "delayed", "expiry",
                 "cond", "waiters")

    def __init__(self, name: str, lock: threading.Lock):
        self.name = name
        self.message_timeout = DEFAULT_TIMEOUT
        self.message_expiration = DEFAULT_EXPIRATION
        self.dead_letter = None  # {"queue_name": str, "max_reservations": int}
        self.total_messages = 0
        self.messages = {}  # id -> Message: everything on the queue, in any state
        self.ready = collections.OrderedDict()  # id -> Message, the front first
        # timeout -> OrderedDict(id -> Message): within one timeout, insertion order is expiry
        # order (until = now + timeout, now never decreases under the lock).
        self.reserved = {}
        self.delayed = []  # heap of (available_at, token, Message, to_front)
        self.expiry = {}  # expiration -> OrderedDict(id -> Message), likewise in expiry order
        self.cond = threading.Condition(lock)  # long polls on this queue wait here
        self.waiters = 0


class Broker:
    """All state, behind one lock; every method runs with the lock held."""

    def __init__(self, project_id: str, min_timeout: int, data_path: str | None):
        self.project_id = project_id
        self.min_timeout = min_timeout
        self.lock = threading.Lock()
        self.queues: dict[str, Queue] = {}
        self.names: list[str] = []  # sorted, for listing
        self.next_id = int(time.time() * 1_000_000) * 1000  # 19 digits, like IronMQ's ids
        self.next_token = 0
        self.rid_prefix = os.urandom(8).hex()
        self.rid_counter = 0
        self.stopping = False
        # persistence: group commit
        self.data_path = data_path
        self.version = 0
        self.saved_version = 0
        self.persist_error: str | None = None
        self.persist_needed = threading.Condition(self.lock)
        self.persist_done = threading.Condition(self.lock)
        self.writer: threading.Thread | None = None

    # --- helpers ---------------------------------------------------------------------------

    def _new_rid(self) -> str:
        # Unique per process (random prefix) and cheap: no urandom call per message.
        self.rid_counter += 1
        return f"{self.rid_prefix}{self.rid_counter:016x}"

    def _queue(self, name: str) -> Queue:
        q = self.queues.get(name)
        if q is None:
            raise ApiError(404, QUEUE_NOT_FOUND)
        return q

    def _create(self, name: str) -> Queue:
        q = Queue(name, self.lock)
        self.queues[name] = q
        bisect.insort(self.names, name)
        return q

    def _int(self, obj: dict, key: str, lo: int, hi: int, default):
        value = obj.get(key)
        if value is None:
            return default
        if type(value) is not int:
            raise bad(f"{key} must be an integer")
        if not lo <= value <= hi:
            raise bad(f"{key} must be between {lo} and {hi}")
        return value

    def _expire_stamp(self, q: Queue, m: Message, now: float) -> None:
        m.exp_group = q.message_expiration
        m.expires_at = now + m.exp_group
        group = q.expiry.get(m.exp_group)
        if group is None:
            group = q.expiry[m.exp_group] = collections.OrderedDict()
        group[m.id] = m

    def _to_ready(self, q: Queue, m: Message, front: bool) -> None:
        m.state = READY
        q.ready[m.id] = m
        if front:
            q.ready.move_to_end(m.id, last=False)

    def _to_delayed(self, q: Queue, m: Message, at: float, front: bool) -> None:
        earliest = self._earliest_due(q) if q.waiters else None
        m.state = DELAYED
        self.next_token += 1
        m.token = self.next_token
        heapq.heappush(q.delayed, (at, m.token, m, front))
        if q.waiters and (earliest is None or at < earliest):
            q.cond.notify_all()  # a long poll sleeps until the old earliest: wake it earlier

    def _to_reserved(self, q: Queue, m: Message, timeout: int, now: float) -> None:
        earliest = self._earliest_due(q) if q.waiters else None
        m.state = RESERVED
        m.rid = self._new_rid()
        m.until = now + timeout
        m.res_group = timeout
        group = q.reserved.get(timeout)
        if group is None:
            group = q.reserved[timeout] = collections.OrderedDict()
        group[m.id] = m
        if q.waiters and (earliest is None or m.until < earliest):
            q.cond.notify_all()

    def _detach(self, q: Queue, m: Message) -> None:
        """Takes m out of its state's container (a delayed heap entry just goes stale)."""
        if m.state == READY:
            del q.ready[m.id]
        elif m.state == RESERVED:
            group = q.reserved[m.res_group]
            del group[m.id]
            if not group:
                del q.reserved[m.res_group]
        m.state = GONE

    def _remove(self, q: Queue, m: Message) -> None:
        self._detach(q, m)
        del q.messages[m.id]
        group = q.expiry[m.exp_group]
        del group[m.id]
        if not group:
            del q.expiry[m.exp_group]

    def _earliest_due(self, q: Queue):
        """When a message may next become ready without a request: a delay or a reservation
        ending (None: never)."""
        due = q.delayed[0][0] if q.delayed else None
        for group in q.reserved.values():
            until = next(iter(group.values())).until
            if due is None or until < due:
                due = until
        return due

    def _refresh(self, q: Queue, now: float) -> None:
        """Applies what time did since the last request: expirations, ended reservations,
        ended delays. Cost: O(1) when nothing is due, else O(k log n) for k due items."""
        if q.expiry:
            for exp in list(q.expiry):
                group = q.expiry[exp]
                while group:
                    m = next(iter(group.values()))
                    if m.expires_at > now:
                        break
                    self._remove(q, m)
                    if exp not in q.expiry:
                        break
        moved = 0
        if q.reserved:
            back = []
            for timeout in list(q.reserved):
                group = q.reserved[timeout]
                while group:
                    m = next(iter(group.values()))
                    if m.until > now:
                        break
                    group.popitem(last=False)
                    back.append(m)
                if not group:
                    del q.reserved[timeout]
            if back:
                back.sort(key=lambda m: m.until)
                for m in reversed(back):  # the earliest timed out ends up first
                    self._to_ready(q, m, front=True)
                moved += len(back)
        delayed = q.delayed
        while delayed and delayed[0][0] <= now:
            _, token, m, front = heapq.heappop(delayed)
            if m.state == DELAYED and m.token == token:
                self._to_ready(q, m, front)
                moved += 1
        if moved and q.waiters:
            q.cond.notify(moved)

    def _changed(self) -> None:
        self.version += 1

    def _info(self, q: Queue, counts: bool = True) -> dict:
        info = {"project_id": self.project_id, "name": q.name}
        if counts:
            info["size"] = len(q.messages)
            info["total_messages"] = q.total_messages
        info["message_timeout"] = q.message_timeout
        info["message_expiration"] = q.message_expiration
        info["type"] = "pull"
        if q.dead_letter:
            info["dead_letter"] = dict(q.dead_letter)
        return info

    # --- queues ----------------------------------------------------------------------------

    def _parse_config(self, name: str, body: dict, existing: Queue | None) -> dict:
        """Validates a create/update body completely before anything changes."""
        cfg = body.get("queue", {})
        if cfg is None:
            cfg = {}
        if not isinstance(cfg, dict):
            raise bad("queue must be an object")
        out = {}
        kind = cfg.get("type")
        if kind is not None:
            if kind not in ("pull", "unicast", "multicast"):
                raise bad("type must be one of pull, unicast, multicast")
            if kind != "pull":
                if existing is not None:
                    raise bad("Queue type cannot be changed")
                raise ApiError(501, "ironmq-emulator: push queues are not implemented")
        if cfg.get("push") is not None:
            if existing is not None:
                raise bad("Cannot set push settings on a pull queue")
            raise ApiError(501, "ironmq-emulator: push queues are not implemented")
        if cfg.get("alerts") is not None:
            raise ApiError(501, "ironmq-emulator: alerts are not implemented")
        timeout = self._int(cfg, "message_timeout", self.min_timeout, MAX_TIMEOUT, None)
        if timeout is not None:
            out["message_timeout"] = timeout
        expiration = self._int(cfg, "message_expiration", 1, MAX_EXPIRATION, None)
        if expiration is not None:
            out["message_expiration"] = expiration
        if "dead_letter" in cfg:
            dl = cfg["dead_letter"]
            if not isinstance(dl, dict):
                raise bad("dead_letter must be an object")
            target = dl.get("queue_name", "")
            if not isinstance(target, str):
                raise bad("dead_letter.queue_name must be a string")
            if target == "":
                # Removes it (dlq docs); without one to remove, the docs say "error".
                if existing is None or existing.dead_letter is None:
                    raise bad("dead_letter.queue_name must not be empty")
                out["dead_letter"] = None
            else:
                if target == name:
                    raise bad("dead_letter.queue_name must name another queue")
                # Choice: an update without max_reservations keeps the current value.
                keep = existing.dead_letter["max_reservations"] if (
                    existing is not None and existing.dead_letter) else DEFAULT_MAX_RESERVATIONS
                limit = self._int(dl, "max_reservations", 1, 1000, keep)
                out["dead_letter"] = {"queue_name": target, "max_reservations": limit}
        return out

    def _apply_config(self, q: Queue, cfg: dict) -> None:
        for key, value in cfg.items():
            setattr(q, key, value)
        dl = q.dead_letter
        if dl and dl["queue_name"] not in self.queues:
            self._create(dl["queue_name"])  # dlq docs: created with the defaults

    def create_queue(self, name, body, now):
        existing = self.queues.get(name)
        cfg = self._parse_config(name, body, existing)
        q = existing or self._create(name)
        self._apply_config(q, cfg)
        self._changed()
        return 200, {"queue": self._info(q, counts=False)}, True

    def update_queue(self, name, body, now):
        q = self._queue(name)
        cfg = self._parse_config(name, body, q)
        self._apply_config(q, cfg)
        self._refresh(q, now)
        self._changed()
        return 200, {"queue": self._info(q)}, True

    def queue_info(self, name, now):
        q = self._queue(name)
        self._refresh(q, now)
        return 200, {"queue": self._info(q)}, False

    def delete_queue(self, name, now):
        q = self._queue(name)
        del self.queues[name]
        self.names.remove(name)
        for m in q.messages.values():
            m.state = GONE
        q.cond.notify_all()  # long polls on it answer 404
        self._changed()
        return 200, {"msg": "Deleted"}, True

    def list_queues(self, query):
        per_page = self._query_int(query, "per_page", 1, 100, 30)
        previous = query.get("previous", "")
        prefix = query.get("prefix", "")
        names = self.names
        i = bisect.bisect_right(names, previous) if previous else 0
        if prefix:
            i = max(i, bisect.bisect_left(names, prefix))
        out = []
        while i < len(names) and len(out) < per_page:
            name = names[i]
            if prefix and not name.startswith(prefix):
                break
            out.append({"name": name})
            i += 1
        return 200, {"queues": out}, False

    def _query_int(self, query, key, lo, hi, default):
        raw = query.get(key)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise bad(f"{key} must be an integer") from None
        if not lo <= value <= hi:
            raise bad(f"{key} must be between {lo} and {hi}")
        return value

    # --- messages ----------------------------------------------------------------------------

    def post_messages(self, name, body, now):
        items = body.get("messages")
        if type(items) is not list or not items:
            raise bad("messages must be a non-empty array")
        parsed = []
        for item in items:
            if type(item) is not dict:
                raise bad("each message must be an object")
            text = item.get("body")
            if type(text) is not str:
                raise bad("each message needs a string body")
            delay = item.get("delay")
            if delay is not None:
                delay = self._int(item, "delay", 0, MAX_DELAY, 0)
            parsed.append((text, delay))
        return self._put(name, parsed, now)

    def post_webhook(self, name, raw: bytes, now):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise bad("the webhook body must be UTF-8") from None
        return self._put(name, [(text, 0)], now)

    def _put(self, name, parsed, now):
        q = self.queues.get(name) or self._create(name)  # posting creates the queue (docs)
        self._refresh(q, now)
        # The hot loop of a post: what _expire_stamp and _to_ready do, inlined.
        exp = q.message_expiration
        expires_at = now + exp
        group = q.expiry.get(exp)
        if group is None:
            group = q.expiry[exp] = collections.OrderedDict()
        messages, ready = q.messages, q.ready
        ids = []
        next_id = self.next_id
        n_ready = 0
        for text, delay in parsed:
            next_id += 1
            mid = str(next_id)
            m = Message(mid, text, 0, exp, expires_at)
            messages[mid] = m
            group[mid] = m
            if delay:
                self._to_delayed(q, m, now + delay, front=False)
            else:
                ready[mid] = m
                n_ready += 1
            ids.append(mid)
        self.next_id = next_id
        q.total_messages += len(parsed)
        if n_ready and q.waiters:
            q.cond.notify(n_ready)
        self._changed()
        return 201, {"ids": ids, "msg": "Messages put on queue."}, True

    def reserve(self, name, body, now):
        n = self._int(body, "n", 1, MAX_N, 1)
        timeout = self._int(body, "timeout", self.min_timeout, MAX_TIMEOUT, None)
        wait = self._int(body, "wait", 0, MAX_WAIT, 0)
        delete = body.get("delete", False)
        if delete is None:
            delete = False
        if not isinstance(delete, bool):
            raise bad("delete must be a boolean")
        q = self._queue(name)
        deadline = now + wait
        out = []
        while True:
            self._refresh(q, now)
            self._take(q, n, timeout, delete, now, out)
            if out or self.stopping:
                break
            remaining = deadline - now
            if remaining <= 0:
                break
            due = self._earliest_due(q)
            # Sleeps until a post/release notifies, the next delay or reservation ends, or
            # the long poll's end, whichever is first: no polling.
            sleep = remaining if due is None else min(remaining, max(due - now, 0.001))
            q.waiters += 1
            try:
                q.cond.wait(sleep)
            finally:
                q.waiters -= 1
            now = time.monotonic()
            if self.queues.get(name) is not q:
                raise ApiError(404, QUEUE_NOT_FOUND)
        if out:
            self._changed()
        # Encoded by _take (MESSAGE_JSON): half the time json.dumps takes.
        return 200, '{"messages":[' + ",".join(out) + "]}", bool(out)

    def _take(self, q, n, timeout, delete, now, out):
        """Reserves up to n ready messages into out (JSON texts); the hot loop of a reserve,
        with _to_reserved and _remove inlined."""
        if timeout is None:
            timeout = q.message_timeout
        dl = q.dead_letter
        ready = q.ready
        if not ready:
            return
        until = now + timeout
        earliest = self._earliest_due(q) if q.waiters else None
        group = q.reserved.get(timeout)
        if group is None and not delete:
            group = q.reserved[timeout] = collections.OrderedDict()
        prefix = self.rid_prefix
        counter = self.rid_counter
        messages, expiry = q.messages, q.expiry
        taken = 0
        while taken < n and ready:
            mid, m = ready.popitem(last=False)
            if dl and m.reserved_count >= dl["max_reservations"]:
                self._dead_letter(q, m, dl["queue_name"], now)
                continue
            m.reserved_count += 1
            counter += 1
            rid = f"{prefix}{counter:016x}"
            if delete:
                m.state = GONE
                del messages[mid]
                exp = expiry[m.exp_group]
                del exp[mid]
                if not exp:
                    del expiry[m.exp_group]
            else:
                m.state = RESERVED
                m.rid = rid
                m.until = until
                m.res_group = timeout
                group[mid] = m
            out.append(MESSAGE_JSON % (mid, encode_string(m.body), m.reserved_count, rid))
            taken += 1
        self.rid_counter = counter
        if group is not None and not group:
            del q.reserved[timeout]  # everything went to the dead letter queue
        elif taken and not delete and q.waiters and (earliest is None or until < earliest):
            q.cond.notify_all()  # a long poll sleeps until the old earliest: wake it earlier

    def _dead_letter(self, q, m, target_name, now):
        # m has left q.ready already.
        del q.messages[m.id]
        group = q.expiry[m.exp_group]
        del group[m.id]
        if not group:
            del q.expiry[m.exp_group]
        target = self.queues.get(target_name) or self._create(target_name)
        self._refresh(target, now)
        target.messages[m.id] = m
        self._expire_stamp(target, m, now)  # dlq docs: the dead letter queue's expiration
        m.rid = None
        self._to_ready(target, m, front=False)
        target.total_messages += 1
        if target.waiters:
            target.cond.notify(1)

    def _message(self, name, mid, now):
        q = self._queue(name)
        self._refresh(q, now)
        m = q.messages.get(mid)
        if m is None:
            raise ApiError(404, MESSAGE_NOT_FOUND)
        return q, m

    def get_message(self, name, mid, now):
        _, m = self._message(name, mid, now)
        return 200, {"message": {"id": m.id, "body": m.body,
                                 "reserved_count": m.reserved_count}}, False

    def peek(self, name, query, now):
        n = self._query_int(query, "n", 1, MAX_N, 1)
        q = self._queue(name)
        self._refresh(q, now)
        out = []
        for m in q.ready.values():
            out.append({"id": m.id, "body": m.body, "reserved_count": m.reserved_count})
            if len(out) == n:
                break
        return 200, {"messages": out}, False

    @staticmethod
    def _rid(body, required: bool):
        rid = body.get("reservation_id")
        if rid is None or rid == "":
            if required:
                raise bad("reservation_id is required")
            return None
        if not isinstance(rid, str):
            raise bad("reservation_id must be a string")
        return rid

    @staticmethod
    def _check_reservation(m: Message, rid) -> None:
        if m.state == RESERVED:
            if rid is None:
                raise ApiError(403, "Message is reserved: reservation_id required")
            if rid != m.rid:
                raise ApiError(403, RESERVATION_TIMED_OUT)
        elif rid is not None:
            raise ApiError(403, RESERVATION_TIMED_OUT)

    def delete_message(self, name, mid, body, now):
        rid = self._rid(body, required=False)
        q, m = self._message(name, mid, now)
        self._check_reservation(m, rid)
        self._remove(q, m)
        self._changed()
        return 200, {"msg": "Deleted"}, True

    def delete_messages(self, name, body, now):
        if "ids" not in body:
            return self.clear(name, now)
        items = body["ids"]
        if type(items) is not list or not items:
            raise bad("ids must be a non-empty array")
        if len(items) > MAX_N:
            raise bad(f"at most {MAX_N} messages can be deleted at once")
        wanted = []
        for item in items:
            if type(item) is not dict:
                raise bad("each of ids must be an object with an id")
            mid = item.get("id")
            if type(mid) is not str:
                if type(mid) is not int:
                    raise bad("each of ids needs an id")
                mid = str(mid)
            rid = item.get("reservation_id")
            if rid is not None and type(rid) is not str:
                raise bad("reservation_id must be a string")
            wanted.append((mid, rid or None))
        q = self._queue(name)
        self._refresh(q, now)
        messages = q.messages
        doomed = {}
        for mid, rid in wanted:  # all or nothing: check everything first
            if mid in doomed:
                continue
            m = messages.get(mid)
            if m is None:
                raise ApiError(404, MESSAGE_NOT_FOUND)
            if m.state != RESERVED or rid != m.rid:
                self._check_reservation(m, rid)
            doomed[mid] = m
        ready, reserved, expiry = q.ready, q.reserved, q.expiry
        for mid, m in doomed.items():  # _remove, inlined
            state = m.state
            if state == RESERVED:
                group = reserved[m.res_group]
                del group[mid]
                if not group:
                    del reserved[m.res_group]
            elif state == READY:
                del ready[mid]
            m.state = GONE
            del messages[mid]
            group = expiry[m.exp_group]
            del group[mid]
            if not group:
                del expiry[m.exp_group]
        self._changed()
        return 200, {"msg": "Deleted"}, True

    def clear(self, name, now):
        q = self._queue(name)
        for m in q.messages.values():
            m.state = GONE
        q.messages.clear()
        q.ready.clear()
        q.reserved.clear()
        q.delayed.clear()
        q.expiry.clear()
        self._changed()
        return 200, {"msg": "Cleared"}, True

    def touch(self, name, mid, body, now):
        rid = self._rid(body, required=True)
        q = self._queue(name)
        timeout = self._int(body, "timeout", self.min_timeout, MAX_TIMEOUT, q.message_timeout)
        q, m = self._message(name, mid, now)
        self._check_reservation(m, rid)
        self._detach(q, m)
        m.reserved_count += 1  # dlq docs: touch counts as a reservation
        self._to_reserved(q, m, timeout, now)
        self._changed()
        return 200, {"reservation_id": m.rid, "msg": "Touched"}, True

    def release(self, name, mid, body, now):
        rid = self._rid(body, required=True)
        delay = self._int(body, "delay", 0, MAX_DELAY, 0)
        q, m = self._message(name, mid, now)
        self._check_reservation(m, rid)
        self._detach(q, m)
        if delay:
            self._to_delayed(q, m, now + delay, front=True)
        else:
            self._to_ready(q, m, front=True)
            if q.waiters:
                q.cond.notify(1)
        self._changed()
        return 200, {"msg": "Released"}, True

    # --- persistence ----------------------------------------------------------------------

    def _snapshot(self) -> dict:
        mono, wall = time.monotonic(), time.time()
        off = wall - mono
        queues = []
        for q in self.queues.values():
            rows = []
            for m in q.ready.values():
                rows.append(["r", m.id, m.body, m.reserved_count, m.expires_at + off,
                             m.exp_group])
            for group in q.reserved.values():
                for m in group.values():
                    rows.append(["s", m.id, m.body, m.reserved_count, m.expires_at + off,
                                 m.exp_group, m.rid, m.until + off, m.res_group])
            for at, token, m, front in q.delayed:
                if m.state == DELAYED and m.token == token:
                    rows.append(["d", m.id, m.body, m.reserved_count, m.expires_at + off,
                                 m.exp_group, at + off, front])
            queues.append({"name": q.name, "message_timeout": q.message_timeout,
                           "message_expiration": q.message_expiration,
                           "dead_letter": q.dead_letter, "total_messages": q.total_messages,
                           "messages": rows})
        return {"format": FORMAT, "saved_at": wall, "next_id": self.next_id,
                "queues": queues}

    def restore(self, path: str) -> None:
        with open(path, encoding="utf-8") as f:
            snap = json.load(f)
        if snap.get("format") != FORMAT:
            raise ValueError(f"{path} is not an {FORMAT} file")
        off = time.time() - time.monotonic()
        self.next_id = max(self.next_id, snap["next_id"])
        for qs in snap["queues"]:
            q = self._create(qs["name"])
            q.message_timeout = qs["message_timeout"]
            q.message_expiration = qs["message_expiration"]
            q.dead_letter = qs["dead_letter"]
            q.total_messages = qs["total_messages"]
            reserved = []
            for row in sorted(qs["messages"], key=lambda r: r[4]):  # expiry order per group
                m = Message(row[1], row[2], row[3])
                m.exp_group = row[5]
                m.expires_at = row[4] - off
                group = q.expiry.setdefault(m.exp_group, collections.OrderedDict())
                group[m.id] = m
                q.messages[m.id] = m
            for row in qs["messages"]:
                m = q.messages[row[1]]
                if row[0] == "r":
                    q.ready[m.id] = m
                elif row[0] == "s":
                    m.state = RESERVED
                    m.rid, m.until, m.res_group = row[6], row[7] - off, row[8]
                    reserved.append(m)
                else:
                    self._to_delayed(q, m, row[6] - off, row[7])
            for m in sorted(reserved, key=lambda m: m.until):
                q.reserved.setdefault(m.res_group, collections.OrderedDict())[m.id] = m

    def start_writer(self) -> None:
        self.writer = threading.Thread(target=self._write_loop, name="persist", daemon=True)
        self.writer.start()

    def _write_loop(self) -> None:
        self.lock.acquire()
        try:
            while True:
                while self.version == self.saved_version and not self.stopping:
                    self.persist_needed.wait()
                if self.version == self.saved_version:
                    return  # stopping, and everything is saved
                target = self.version
                snap = self._snapshot()
                self.lock.release()
                error = None
                try:
                    write_atomically(self.data_path, json.dumps(snap, separators=(",", ":")))
                except (OSError, ValueError) as e:
                    error = f"{type(e).__name__}: {e}"
                finally:
                    self.lock.acquire()
                if error:
                    self.persist_error = error
                    print(f"ironmq-emulator: saving {self.data_path} failed: {error}",
                          file=sys.stderr, flush=True)
                    self.persist_done.notify_all()
                    return
                self.saved_version = target
                self.persist_done.notify_all()
        finally:
            self.lock.release()

    def await_saved(self) -> None:
        """Group commit: returns once a save includes every change made so far."""
        target = self.version
        self.persist_needed.notify()
        while self.saved_version < target:
            if self.persist_error:
                raise ApiError(500, "ironmq-emulator: saving state failed: " + self.persist_error)
            self.persist_done.wait()

    def stop(self) -> None:
        with self.lock:
            self.stopping = True
            for q in self.queues.values():
                q.cond.notify_all()
            self.persist_needed.notify_all()
        if self.writer is not None:
            self.writer.join()


def write_atomically(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- HTTP --------------------------------------------------------------------------------------

REASONS = {200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           413: "Payload Too Large", 500: "Internal Server Error", 501: "Not Implemented",
           503: "Service Unavailable"}
MAX_BODY = 64 * 1024 * 1024
MAX_HEADERS = 100


class Headers(dict):
    """Request headers by lower-case name; repeated headers are joined with ", "."""

    def get(self, name, default=None):
        return dict.get(self, name.lower(), default)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive; every answer carries Content-Length
    server_version = "ironmq-emulator"
    broker: Broker
    token: str
    fail_rate: float
    verbose: bool
    answers: itertools.count  # every answer takes one number; next() is atomic under the GIL

    def setup(self):
        super().setup()
        # The answer is one write, but the client's next request must not wait for an ACK.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def parse_request(self):
        """http.server's parse_request without email.parser, which cost a sixth of a request.

        Same contract: sets command, path, request_version, headers, close_connection; answers
        Expect: 100-continue; on a malformed request sends the error and returns False."""
        self.command = None
        self.request_version = "HTTP/0.9"
        self.close_connection = True
        self.requestline = line = str(self.raw_requestline, "iso-8859-1").rstrip("\r\n")
        words = line.split()
        if len(words) != 3:
            self.send_error(400, f"Bad request line {line!r}")
            return False
        command, path, version = words
        if version not in ("HTTP/1.1", "HTTP/1.0"):
            self.send_error(505, f"HTTP version {version} is not supported")
            return False
        self.command, self.path, self.request_version = command, path, version
        headers = Headers()
        while True:
            raw = self.rfile.readline(65537)
            if raw in (b"\r\n", b"\n", b""):
                break
            if len(raw) > 65536 or len(headers) >= MAX_HEADERS:
                self.send_error(431, "Request header fields too large")
                return False
            name, sep, value = raw.decode("iso-8859-1").partition(":")
            key = name.strip().lower()
            if not sep or not key:
                self.send_error(400, "Bad header line")
                return False
            value = value.strip()
            headers[key] = headers[key] + ", " + value if key in headers else value
        self.headers = headers
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.1":
            self.close_connection = "close" in connection
        else:
            self.close_connection = "keep-alive" not in connection
        if version == "HTTP/1.1" and headers.get("expect", "").lower() == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        return True

    def log_message(self, format, *args):
        if self.verbose:
            sys.stderr.write("ironmq-emulator: %s %s\n" % (self.address_string(), format % args))

    def send_error(self, code, message=None, explain=None):
        # http.server's own errors (malformed request line, unknown method): JSON, and close.
        self.close_connection = True
        self._send(code, {"msg": message or REASONS.get(code, "Error")})

    def _send(self, status: int, payload) -> None:
        if type(payload) is str:  # already JSON
            body = payload.encode()
        else:
            body = json.dumps(payload, separators=(",", ":")).encode()
        head = (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")
        if self.close_connection:
            head += "Connection: close\r\n"
        if getattr(self, "command", None) == "HEAD":
            body = b""
        self.wfile.write(head.encode("latin-1") + b"\r\n" + body)  # one write, one segment
        next(self.answers)
        if self.verbose:
            self.log_request(status, len(body))

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                total += size
                if total > MAX_BODY:
                    raise ApiError(413, "Request body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = self.headers.get("Content-Length")
        if not length:
            return b""
        n = int(length)
        if n < 0 or n > MAX_BODY:
            raise ApiError(413, "Request body too large")
        return self.rfile.read(n)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")

    def do_HEAD(self):
        self.close_connection = True  # a HEAD answer has no body to frame
        self._send(405, {"msg": "Method not allowed"})

    do_OPTIONS = do_HEAD

    def _handle(self, method: str) -> None:
        try:
            try:
                raw = self._read_body()
            except (ValueError, ApiError) as e:
                self.close_connection = True  # the framing is lost
                raise e if isinstance(e, ApiError) else bad("Malformed body framing")
            # --fail-rate: before anything is looked at, so a failure has no side effect.
            if self.fail_rate and random.random() < self.fail_rate:
                raise ApiError(503, "Service Unavailable (ironmq-emulator --fail-rate)")
            status, payload = self._route(method, raw)
        except ApiError as e:
            status, payload = e.status, {"msg": e.msg}
        except Exception as e:  # a bug: say so, keep serving
            print(f"ironmq-emulator: internal error on {method} {self.path}: "
                  f"{type(e).__name__}: {e}", file=sys.stderr, flush=True)
            status, payload = 500, {"msg": f"Internal error: {type(e).__name__}"}
        self._send(status, payload)

    def _route(self, method: str, raw: bytes):
        path, _, query_string = self.path.partition("?")
        parts = path.split("/")
        # ['', '3', 'projects', ID, 'queues', NAME, ...]
        if len(parts) < 5 or parts[1] != "3" or parts[2] != "projects" or parts[4] != "queues":
            raise ApiError(404, "Not found")
        query = dict(urllib.parse.parse_qsl(query_string)) if query_string else {}
        broker = self.broker
        auth = self.headers.get("Authorization")
        if auth != "OAuth " + self.token and query.get("oauth") != self.token:
            raise ApiError(401, "Unauthorized")
        if urllib.parse.unquote(parts[3]) != broker.project_id:
            raise ApiError(404, "Project not found")
        rest = [urllib.parse.unquote(p) for p in parts[5:]]
        if rest and rest[-1] == "" and len(rest) > 1:
            rest.pop()  # tolerate one trailing slash
        if not rest or rest == [""]:
            if method != "GET":
                raise ApiError(405, "Method not allowed")
            return self._call(broker.list_queues, query)
        name = rest[0]
        if not name:
            raise ApiError(404, "Not found")
        sub = rest[1:]
        if sub == ["webhook"]:  # the raw body is the message
            if method != "POST":
                raise ApiError(405, "Method not allowed")
            return self._call(broker.post_webhook, name, raw, now=True)
        body = self._json(raw) if method in ("POST", "PUT", "PATCH", "DELETE") else {}
        if not sub:
            if method == "GET":
                return self._call(broker.queue_info, name, now=True)
            if method == "PUT":
                return self._call(broker.create_queue, name, body, now=True)
            if method == "PATCH":
                return self._call(broker.update_queue, name, body, now=True)
            if method == "DELETE":
                return self._call(broker.delete_queue, name, now=True)
            raise ApiError(405, "Method not allowed")
        if sub == ["messages"]:
            if method == "POST":
                return self._call(broker.post_messages, name, body, now=True)
            if method == "GET":
                return self._call(broker.peek, name, query, now=True)
            if method == "DELETE":
                return self._call(broker.delete_messages, name, body, now=True)
            raise ApiError(405, "Method not allowed")
        if sub == ["reservations"]:
            if method != "POST":
                raise ApiError(405, "Method not allowed")
            return self._call(broker.reserve, name, body, now=True)
        if sub[0] == "messages" and len(sub) == 2:
            mid = sub[1]
            if method == "GET":
                return self._call(broker.get_message, name, mid, now=True)
            if method == "DELETE":
                return self._call(broker.delete_message, name, mid, body, now=True)
            raise ApiError(405, "Method not allowed")
        if sub[0] == "messages" and len(sub) == 3 and sub[2] in ("touch", "release"):
            if method != "POST":
                raise ApiError(405, "Method not allowed")
            op = broker.touch if sub[2] == "touch" else broker.release
            return self._call(op, name, sub[1], body, now=True)
        if sub == ["subscribers"] or (sub[0] == "messages" and len(sub) == 3
                                      and sub[2] == "subscribers"):
            with broker.lock:
                broker._queue(name)
            raise bad("Queue is not a push queue")  # docs: subscribers on a pull queue err
        if sub == ["alerts"]:
            raise ApiError(501, "ironmq-emulator: alerts are not implemented")
        raise ApiError(404, "Not found")

    @staticmethod
    def _json(raw: bytes) -> dict:
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise bad("Invalid JSON") from None
        if not isinstance(body, dict):
            raise bad("The JSON body must be an object")
        return body

    def _call(self, op, *args, now=False):
        broker = self.broker
        with broker.lock:
            if now:
                args = args + (time.monotonic(),)  # read under the lock: never decreases
            status, payload, changed = op(*args)
            if changed and broker.data_path:
                broker.await_saved()
        return status, payload


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="A local IronMQ v3 server for tests.")
    parser.add_argument("--port", type=int, required=True, help="0 picks a free port")
    parser.add_argument("--token", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data", help="JSON file that keeps the state across restarts")
    parser.add_argument("--fail-rate", type=float, default=0.0,
                        help="fraction of requests answered 503 without side effects")
    parser.add_argument("--min-timeout", type=int, default=30,
                        help="lowest reservation timeout accepted (IronMQ: 30; tests: 1)")
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    if not 0.0 <= args.fail_rate <= 1.0:
        parser.error("--fail-rate must be between 0 and 1")
    if not 1 <= args.min_timeout <= MAX_TIMEOUT:
        parser.error(f"--min-timeout must be between 1 and {MAX_TIMEOUT}")

    # SIGTERM and SIGINT are blocked in every thread (threads inherit the mask) and taken by
    # sigwait below: no handler runs in the middle of the server's code.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    broker = Broker(args.project, args.min_timeout, args.data)
    if args.data:
        if os.path.exists(args.data):
            try:
                broker.restore(args.data)
            except (OSError, ValueError, KeyError, IndexError, TypeError) as e:
                print(f"ironmq-emulator: cannot load {args.data}: {type(e).__name__}: {e}",
                      file=sys.stderr)
                return 2
        broker.start_writer()

    handler = type("BoundHandler", (Handler,), {
        "broker": broker, "token": args.token, "fail_rate": args.fail_rate,
        "verbose": args.verbose, "answers": itertools.count()})
    server = http.server.ThreadingHTTPServer((args.host, args.port), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]

    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 3600},
                               name="accept", daemon=True)
    serving.start()
    print(f"ironmq-emulator: listening on http://{host}:{port} project {args.project}",
          file=sys.stderr, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    # Long polls answer at once; the last save happens before exit. A request still running
    # after it cannot be acknowledged (it waits for a save that never comes), so nothing
    # acknowledged is lost; the daemon threads end with the process.
    broker.stop()
    # The count benchmarks divide by (scripts/ironmq-bench.sh): the next number is the total.
    print(f"ironmq-emulator: stopped after {next(handler.answers)} answers", file=sys.stderr,
          flush=True)
    if broker.persist_error:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
