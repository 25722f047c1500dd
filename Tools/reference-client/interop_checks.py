#!/usr/bin/env python3
"""Checks that a running Ivy worker (the Swift `ivy worker` or the reference one) behaves as
PROTOCOL.md says, by talking to it on the wire with the reference producer.

Used by scripts/reference-client-test.sh; every command takes the Redis URL of a database the
checks may flush (never db 0).

    interop_checks.py reset URL                  flush that database
    interop_checks.py wait-group URL [QUEUE] [--pid PID]
                                                 until the queue's consumer group exists: after a
                                                 reset only a worker creates it (§8), so a worker
                                                 has started reading; fails if PID ends first
    interop_checks.py consumers URL [QUEUE]      print how many consumers the group has
    interop_checks.py suite URL                  the checks, against the worker serving testpackage
    interop_checks.py probes URL                 edge cases where PROTOCOL.md and a worker may
                                                 disagree: printed, never failing

The worker must run one message at a time (`ivy worker --concurrency 1`; the reference worker
always does): "no notification was published" is then checked without waiting for a time-out,
by sending a sentinel call after the message and reading the channel up to its result, which
comes after any notification of the message before it.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Optional

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True  # no __pycache__ in the source tree

import ivy_reference as ivy  # noqa: E402

QUEUE = "testpackage"
TIMEOUT = 60.0  # per call: generous for a slow shared CI machine
INT64_MAX = 2**63 - 1


class CheckFailed(AssertionError):
    """A worker did something PROTOCOL.md says it does not."""


def expect(condition: bool, what: str) -> None:
    if not condition:
        raise CheckFailed(what)


def expect_equal(actual: Any, expected: Any, what: str) -> None:
    if actual != expected:
        raise CheckFailed(f"{what}: expected {expected!r}, got {actual!r}")


@dataclass
class Outcome:
    """What became of one message: its entry id, the notification (and channel) if one was
    published, and its dead letter's fields if it was dead-lettered."""

    entry_id: str
    channel: Optional[str]
    notification: Optional[dict]
    dead: Optional[dict]


class Harness:
    """A reference producer that also listens on the base channel, plus the raw access the
    checks need: sending any body, and reading the dead-letter stream."""

    def __init__(self, url: str) -> None:
        endpoint = ivy.Endpoint.parse(url)
        self.client = endpoint.connect()
        self.producer = ivy.Producer(self.client, endpoint.connect())
        self.base = ivy.base_channel()
        self.producer.listen(self.base)
        self.keys = ivy.QueueKeys.of(QUEUE)

    def close(self) -> None:
        self.producer.close()

    # Messages.

    def message(self, task_name: str, arguments: list, **changes: Any) -> dict:
        """A §1 message as a dict, to be changed freely (any key) before it is sent."""
        now = time.time()
        body = {
            "name": task_name, "options": {}, "args": arguments, "id": self.producer.new_task_id(),
            "notify": self.producer.channel, "attempt": 1, "created_at": ivy.format_time(now),
            "deadline": ivy.format_time(now + TIMEOUT),
        }
        body.update(changes)
        return body

    def send(self, body: bytes, *, push: bool = True) -> str:
        return ivy.send(self.client, QUEUE, [body], push=push)[0]

    def call(self, task_name: str, *arguments: Any, **changes: Any) -> tuple[dict, dict]:
        """Sends a call and returns (the message sent, its notification)."""
        message = self.message(task_name, list(arguments), **changes)
        self.send(ivy.encode_json(message))
        return message, self.producer.wait(message["id"], until=time.time() + TIMEOUT)

    def run(self, body: bytes, *, task_id: Optional[str] = None, push: bool = True) -> Outcome:
        """Sends a body, then a sentinel call, and reports what became of the body once the
        sentinel's result is in (see the module doc). `task_id` is the id its notification
        would carry; the broker's entry id by default (messages without `id`)."""
        entry_id = self.send(body, push=push)
        self.call("testpackage.echo", "sentinel")
        found = self.producer.take(task_id or entry_id)
        return Outcome(entry_id, found[0] if found else None, found[1] if found else None, self.dead_letter(entry_id))

    def dead_letter(self, entry_id: str) -> Optional[dict]:
        for _, fields in self.client.xrange(self.keys.dead, "-", "+"):
            decoded = {key.decode(): value for key, value in fields.items()}
            if decoded.get("o") == entry_id.encode():
                return {key: (value if key == "b" else value.decode()) for key, value in decoded.items()}
        return None

    def dead_letter_of_call(self, task_id: str) -> Optional[dict]:
        """The dead letter whose body has `task_id` as its `id`."""
        for _, fields in self.client.xrange(self.keys.dead, "-", "+"):
            try:
                body = json.loads(fields.get(b"b", b""))
            except ValueError:
                continue
            if isinstance(body, dict) and body.get("id") == task_id:
                return {key.decode(): (value if key == b"b" else value.decode()) for key, value in fields.items()}
        return None


# --- The checks -----------------------------------------------------------------------------------

SUCCESS_KEYS = {"id", "name", "args", "options", "queue", "notify", "attempt", "result"}
FAILURE_KEYS = SUCCESS_KEYS - {"result"} | {"error"}


def check_notification(notice: dict, message: dict, *, attempt: int = 1) -> None:
    """The §2 shape, and that it echoes the call."""
    keys = FAILURE_KEYS if "error" in notice else SUCCESS_KEYS
    expect_equal(set(notice), keys, f"keys of the notification for {message.get('name')}")
    expect_equal(notice["id"], message["id"], "notification id")
    expect_equal(notice["name"], message["name"], "notification name")
    expect_equal(notice["args"], message["args"], "notification args")
    expect_equal(notice["options"], message.get("options") or {}, "notification options")
    expect_equal(notice["queue"], QUEUE, "notification queue")
    expect(notice["notify"] is True, f"notification notify is {notice['notify']!r}, not true")
    expect_equal(notice["attempt"], attempt, "notification attempt")
    if "error" in notice:
        error = notice["error"]
        expect_equal(set(error), {"name", "message", "retryable"}, "keys of the notification's error")
        expect(isinstance(error["name"], str) and isinstance(error["message"], str)
               and isinstance(error["retryable"], bool), f"error field types: {error!r}")
    else:
        expect(isinstance(notice["result"], list) and len(notice["result"]) == 1,
               f"result is one element: {notice['result']!r}")


def check_result(h: Harness, expected: Any, name: str, *args: Any, **changes: Any) -> dict:
    message, notice = h.call(name, *args, **changes)
    check_notification(notice, message, attempt=changes.get("attempt", 1))
    expect_equal(ivy.result_of(notice), expected, f"{name}{tuple(args)}")
    return notice


def check_error(h: Harness, error_name: str, name: str, *args: Any, ends_at: Optional[int] = None,
                retryable: bool = False, message: Optional[str] = None, reason: Optional[str] = None,
                **changes: Any) -> dict:
    """A call that fails for good: the §2 error notification, and its dead letter (§4 step 7).
    `ends_at` is the attempt it ends at: the message's own by default."""
    attempt = ends_at if ends_at is not None else changes.get("attempt", 1)
    sent, notice = h.call(name, *args, **changes)
    check_notification(notice, sent, attempt=attempt)
    expect("error" in notice, f"{name}{tuple(args)} succeeded ({notice.get('result')!r}); expected {error_name}")
    error = notice["error"]
    expect_equal(error["name"], error_name, f"error name of {name}{tuple(args)}")
    expect_equal(error["retryable"], retryable, f"error retryable of {name}{tuple(args)}")
    if message is not None:
        expect_equal(error["message"], message, f"error message of {name}{tuple(args)}")
    dead = h.dead_letter_of_call(sent["id"])
    expect(dead is not None, f"{name}{tuple(args)}: no dead letter")
    expect_equal(dead["r"], reason or f"{error_name}: {error['message']} (attempt {attempt})", "dead-letter reason")
    return notice


def check_calls(h: Harness) -> None:
    """Calls with results (§1, §2)."""
    notice = check_result(h, 120, "testpackage.factorial", 5)
    expect(notice["id"].startswith(h.producer.producer_id + "-"), "the id is the producer's")
    check_result(h, 1, "testpackage.factorial", 0)
    check_result(h, 2432902008176640000, "testpackage.factorial", 20)
    check_result(h, 5, "testpackage.add", 2, 3)
    check_result(h, 0, "testpackage.add", -7, 7)
    text = 'héllo ✓ "quoted" \\ \u0001 \U0001F600'
    check_result(h, text, "testpackage.echo", text)
    check_result(h, 3, "testpackage.sleep", 3)
    # Options are carried through untouched and echoed (§1, §2).
    check_result(h, "x", "testpackage.echo", "x", options={"priority": 3, "tags": ["a", {"b": None}]})
    # A whole number written as 5.0 is that number.
    check_result(h, 120, "testpackage.factorial", 5.0)
    # Via the producer API as a user would call it.
    expect_equal(h.producer.call("testpackage.factorial", 6, timeout=TIMEOUT), 720, "Producer.call")
    # A call that runs later (§1 `eta`), sent at once as a plain message: the worker puts it
    # back until its eta (§4 step 1a), and it runs then, at attempt 1. Checked from below only
    # (load makes it later), less 10 ms for the eta's millisecond and the 5 ms tolerance.
    eta = time.time() + 1
    notice = check_result(h, 9, "testpackage.add", 4, 5, eta=ivy.format_time(eta),
                          deadline=ivy.format_time(eta + TIMEOUT))
    expect(time.time() >= eta - 0.010, "a call with an eta 1 s ahead was answered before its eta")
    expect_equal(notice["attempt"], 1, "the attempt of a call put back until its eta")


def check_failures(h: Harness) -> None:
    """Errors: the task's own, retried ones, and the worker's (§2, §4)."""
    check_error(h, "ValueError", "testpackage.factorial", -1, message="factorial(-1): n must not be negative")
    check_error(h, "OverflowError", "testpackage.factorial", 21, message="factorial(21) overflows a 64-bit Int")
    check_error(h, "OverflowError", "testpackage.add", 2**62, 2**62)
    # Retried three times 50 ms apart (released with a delay, its delivery count growing).
    notice = check_error(h, "TestFailure", "testpackage.fail", "boom", ends_at=3, retryable=True, message="boom")
    dead = h.dead_letter_of_call(notice["id"])
    assert dead is not None
    expect_equal(dead["c"], "3", "dead letter delivery count of testpackage.fail")
    expect(abs(int(dead["t"]) / 1000 - time.time()) < 600, f"dead letter time {dead['t']} is milliseconds of now")
    expect_equal(json.loads(dead["b"])["id"], notice["id"], "dead letter body")
    check_error(h, "UnknownTask", "testpackage.nope", 1, message="testpackage.nope is not registered on this worker")
    check_error(h, "ArgumentsUndecodable", "testpackage.factorial", "five")
    notice = check_error(h, "ArgumentsUndecodable", "testpackage.factorial", 2**64)
    expect(notice["error"]["message"] == "argument 1: a JSON number that does not fit Int",
           f"§1's example message for an integer past 64 bits: got {notice['error']['message']!r}")
    check_error(h, "ArgumentsUndecodable", "testpackage.factorial")
    check_error(h, "ArgumentsUndecodable", "testpackage.add", 1)
    # §4 step 4a: factorial allows 10 attempts + 3 redeliveries.
    check_result(h, 6, "testpackage.factorial", 3, attempt=13)
    check_error(h, "AttemptsExhausted", "testpackage.factorial", 3, attempt=14,
                message="attempt 14 is past the 13 deliveries testpackage.factorial allows")
    check_error(h, "AttemptsExhausted", "testpackage.factorial", 3, attempt=INT64_MAX)


def check_wire_rules(h: Harness) -> None:
    """§1's rules for reading a message."""
    # null counts as absent: options {} (echoed as {}), id the broker's, attempt 1.
    body = {"name": "testpackage.factorial", "options": None, "args": [4], "id": None,
            "notify": h.producer.channel, "attempt": None, "created_at": None, "deadline": None}
    outcome = h.run(ivy.encode_json(body))
    expect(outcome.notification is not None, "options/id null: no notification under the broker's id")
    notice = outcome.notification
    expect_equal(notice["id"], outcome.entry_id, "id null: the notification's id is the broker's message id")
    expect_equal(notice["options"], {}, "options null: echoed as {}")
    expect_equal(notice["attempt"], 1, "attempt null: 1")
    expect_equal(notice["result"], [24], "options/id null: the result")
    # The last of duplicate keys counts; unknown keys are ignored.
    task_id = h.producer.new_task_id()
    raw = ('{"name":"testpackage.nope","args":[9],"name":"testpackage.add","args":[1,2],"id":"x","id":"%s",'
           '"notify":"%s","future_key":{"a":[1,{"b":null}]}}' % (task_id, h.producer.channel))
    outcome = h.run(raw.encode(), task_id=task_id)
    expect(outcome.notification is not None, "duplicate keys: no notification")
    expect_equal(outcome.notification.get("result"), [3], "duplicate keys: the last one counts")
    # Times: any offset, any number of fraction digits.
    check_result(h, 2, "testpackage.add", 1, 1, created_at="2026-01-01T05:30:00.1+05:30",
                 deadline="2999-06-30T23:59:59.123456-07:00")
    # A bare XADD (no signal push) is taken too, within the 250 ms bound (§8).
    message = h.message("testpackage.factorial", [7])
    h.send(ivy.encode_json(message), push=False)
    notice = h.producer.wait(message["id"], until=time.time() + TIMEOUT)
    expect_equal(notice.get("result"), [5040], "bare XADD")
    # Nesting: the outer object and 128 containers inside it are accepted, one more is malformed.
    def nested(containers: int) -> bytes:
        inner = "[" * (containers - 2) + "]" * (containers - 2)  # inside the outer object and args
        return ('{"name":"testpackage.echo","args":[%s],"id":"%s","notify":"%s"}'
                % (inner, task_id, h.producer.channel)).encode()
    task_id = h.producer.new_task_id()
    outcome = h.run(nested(129), task_id=task_id)
    expect(outcome.notification is not None and outcome.notification["error"]["name"] == "ArgumentsUndecodable",
           f"129 containers are accepted (then the array does not fit String): {outcome}")
    task_id = h.producer.new_task_id()
    outcome = h.run(nested(130), task_id=task_id)
    expect(outcome.notification is None and outcome.dead is not None, f"130 containers are malformed: {outcome}")
    expect(outcome.dead["r"].startswith("IvyError.malformedMessage"), f"130 containers: {outcome.dead['r']!r}")


def check_dead_letters(h: Harness) -> None:
    """§4 steps 1 and 4: dead letters without a notification, with the reasons of §4's table."""
    cases: list[tuple[str, dict, Callable[[str, dict], bool]]] = [
        ("args not an array", {"args": 5},
         lambda r, m: r == 'IvyError.malformedMessage task testpackage.factorial: "args" is missing or not an array'),
        ("options not an object", {"options": [1]},
         lambda r, m: r == 'IvyError.malformedMessage task testpackage.factorial: "options" is not an object'),
        ("attempt 0", {"attempt": 0}, lambda r, m: r.startswith("IvyError.malformedMessage")),
        ("attempt past 64 bits", {"attempt": 2**63}, lambda r, m: r.startswith("IvyError.malformedMessage")),
        ("deadline not RFC 3339", {"deadline": "tomorrow"}, lambda r, m: r.startswith("IvyError.malformedMessage")),
        ("deadline past year 9999", {"deadline": "9999-12-31T23:59:59-01:00"},
         lambda r, m: r.startswith("IvyError.malformedMessage")),
        ("31 February", {"created_at": "2026-02-31T00:00:00Z"}, lambda r, m: r.startswith("IvyError.malformedMessage")),
        ("deadline passed", {"deadline": ivy.format_time(time.time() - 60)},
         lambda r, m: r == f"IvyError.deadlineExpired task testpackage.factorial id {m['id']}"),
    ]
    for what, changes, reason_ok in cases:
        message = h.message("testpackage.factorial", [5], **changes)
        outcome = h.run(ivy.encode_json(message), task_id=message["id"])
        expect(outcome.notification is None, f"{what}: a notification was published: {outcome.notification}")
        expect(outcome.dead is not None, f"{what}: not dead-lettered")
        assert outcome.dead is not None
        expect(reason_ok(outcome.dead["r"], message), f"{what}: dead-letter reason {outcome.dead['r']!r}")
        expect_equal(outcome.dead["b"], ivy.encode_json(message), f"{what}: dead letter body")
        expect_equal(outcome.dead["c"], "1", f"{what}: dead letter delivery count")
    for what, body in [("not JSON", b'{"name":'), ("not UTF-8", b'{"name":"\xff"}'), ("NaN", b'{"x":NaN}')]:
        outcome = h.run(body)
        expect(outcome.dead is not None, f"{what}: not dead-lettered")
        assert outcome.dead is not None
        expect(re.fullmatch(r"IvyError\.malformedMessage: invalid JSON: .+ at byte \d+", outcome.dead["r"]) is not None,
               f"{what}: reason {outcome.dead['r']!r} is not 'IvyError.malformedMessage: invalid JSON: <what> at byte <n>'")


def check_undecryptable(h: Harness) -> None:
    """§6.3: a token a keyless worker cannot open: dead letter, and the plaintext error
    notification, whole, on the route's channel."""
    task_id = h.producer.new_task_id()
    route = base64.urlsafe_b64encode(ivy.encode_json({"id": task_id, "notify": h.producer.channel})).rstrip(b"=")
    token = b"$ivy-v1$" + route + b"$" + base64.b64encode(secrets.token_bytes(64))
    outcome = h.run(token, task_id=task_id)
    expect(outcome.notification is not None, "undecryptable token: no notification on the route's channel")
    notice = outcome.notification
    assert notice is not None
    expect(isinstance(notice.get("error"), dict) and isinstance(notice["error"].get("message"), str),
           f"undecryptable token: {notice}")
    expected = {"id": task_id, "name": "", "args": [], "options": {}, "queue": QUEUE, "notify": True, "attempt": 1,
                "error": {"name": "DecryptionFailed", "message": notice["error"]["message"], "retryable": False}}
    expect_equal(notice, expected, "§6.3 error notification")
    expect(outcome.dead is not None and outcome.dead["r"].startswith("IvyError.decryptionFailed: "),
           f"undecryptable token: dead letter {outcome.dead}")


def check_node_style(h: Harness) -> None:
    """§3: messages without `id` and `notify` (node ivy's), added with a bare XADD. Outcomes go
    to the base channel under the broker's id, an unknown task's included (§4 step 3)."""
    def node(name: str, args: list) -> bytes:
        return ivy.encode_json({"name": name, "options": {}, "args": args})

    outcome = h.run(node("testpackage.factorial", [6]), push=False)
    expect(outcome.notification is not None, "node-style call: no notification on the base channel")
    assert outcome.notification is not None
    expect_equal(outcome.channel, h.base, "node-style call: channel")
    check_notification(outcome.notification, {"id": outcome.entry_id, "name": "testpackage.factorial", "args": [6]})
    expect_equal(outcome.notification["result"], [720], "node-style call: result")

    outcome = h.run(node("testpackage.factorial", [-1]), push=False)
    expect(outcome.notification is not None and outcome.channel == h.base,
           f"node-style failing call: no error notification on the base channel: {outcome}")
    assert outcome.notification is not None
    expect_equal(outcome.notification["error"]["name"], "ValueError", "node-style failing call")

    outcome = h.run(node("testpackage.factorial", ["x"]), push=False)
    expect(outcome.notification is not None and outcome.channel == h.base,
           f"node-style undecodable args: no ArgumentsUndecodable notification on the base channel: {outcome}")
    assert outcome.notification is not None
    expect_equal(outcome.notification["error"]["name"], "ArgumentsUndecodable", "node-style undecodable args")
    expect(outcome.dead is not None and outcome.dead["r"].startswith("ArgumentsUndecodable: "),
           f"node-style undecodable args: dead letter {outcome.dead}")

    outcome = h.run(node("testpackage.nope", [1]), push=False)
    expect(outcome.notification is not None and outcome.channel == h.base,
           f"node-style unknown task: no UnknownTask notification on the base channel: {outcome}")
    assert outcome.notification is not None
    expect_equal(outcome.notification["error"]["name"], "UnknownTask", "node-style unknown task")
    expect(outcome.dead is not None, "node-style unknown task: not dead-lettered")
    assert outcome.dead is not None
    expect_equal(outcome.dead["r"], "UnknownTask: testpackage.nope is not registered on this worker (attempt 1)",
                 "node-style unknown task: dead-letter reason")


SUITE: list[tuple[str, Callable[[Harness], None]]] = [
    ("calls", check_calls),
    ("failures", check_failures),
    ("wire rules", check_wire_rules),
    ("dead letters", check_dead_letters),
    ("undecryptable", check_undecryptable),
    ("node-style messages", check_node_style),
]


# --- Probes: printed, never failing ---------------------------------------------------------------


def probes(h: Harness) -> list[tuple[str, str, str]]:
    """(case, what PROTOCOL.md says, what the worker did) for edge cases."""
    def observe(body: bytes, task_id: Optional[str] = None, push: bool = True) -> str:
        outcome = h.run(body, task_id=task_id, push=push)
        parts = []
        if outcome.notification is not None:
            error = outcome.notification.get("error")
            parts.append(f"notification on {'base' if outcome.channel == h.base else 'notify'}: "
                         + (f"error {error['name']}: {error['message']}" if error
                            else f"result {outcome.notification.get('result')}"))
        else:
            parts.append("no notification")
        parts.append(f"dead letter: {outcome.dead['r']!r}" if outcome.dead else "not dead-lettered")
        return "; ".join(parts)

    def msg(**changes: Any) -> tuple[bytes, str]:
        message = h.message("testpackage.factorial", [3], **changes)
        return ivy.encode_json(message), message["id"]

    found = []
    for case, doc, (body, task_id) in [
        ('name ""', "§1: an empty name is malformed", msg(name="")),
        ('name "add"', "§1: unknown task, UnknownTask notification", msg(name="add")),
        ('"id": 5', '§4 table: IvyError.malformedMessage task <name>: "id" is not ...', msg(id=5)),
        ('"notify": 5', '§4 table: IvyError.malformedMessage task <name>: "notify" is not ...', msg(notify=5)),
        ('"attempt": 1.0', "§1: attempt is an integer (is 1.0 one?)", msg(attempt=1.0)),
        ('"attempt": true', "§1: wrong type, malformed", msg(attempt=True)),
        ('"name": 5', "§1: wrong type, malformed (reason format for a name that is not a string?)", msg(name=5)),
        ('"deadline": 5', '§4 table: IvyError.malformedMessage task <name>: "deadline" ...', msg(deadline=5)),
        ("deadline 9999-12-31T23:59:59.9999Z", "§1: within year 9999, accepted",
         msg(deadline="9999-12-31T23:59:59.9999Z")),
        ("created_at 0000-01-01T00:00:00Z", "§1: year 0000 accepted", msg(created_at="0000-01-01T00:00:00Z")),
        ("created_at 0000-01-01T00:00:00+01:00", "§1: before year 0000 (UTC), malformed",
         msg(created_at="0000-01-01T00:00:00+01:00")),
        ("created_at with 't', 'z'", "§1: RFC 3339 allows lowercase", msg(created_at="2026-01-01t00:00:00z")),
        ("created_at with a space", "§1: RFC 3339 section 5.6 needs T (a note allows a space)",
         msg(created_at="2026-01-01 00:00:00Z")),
        ("created_at leap second 23:59:60Z", "§1: RFC 3339 allows second 60",
         msg(created_at="2016-12-31T23:59:60Z")),
        ("deadline 24:00:00", "not RFC 3339, malformed", msg(deadline="2026-01-01T24:00:00Z")),
    ]:
        found.append((case, doc, observe(body, task_id)))
    found.append(("body [1]", "§1: not a JSON object, malformed (reason text unspecified)", observe(b"[1]")))
    found.append(("empty body", "§1: malformed", observe(b"")))
    found.append(("node-style body after white space", "§6: plaintext after white space; §3: base channel",
                  observe(b" \n" + ivy.encode_json({"name": "testpackage.factorial", "args": [3]}))))
    # Field names other than `b` (§8 says the body is field `b`).
    node = ivy.encode_json({"name": "testpackage.factorial", "options": {}, "args": [2]})
    entry = h.client.xadd(h.keys.stream, {"body": node})
    found.append(("XADD with field 'body' instead of 'b'", "§8: field b = body",
                  _after(h, entry.decode())))
    entry = h.client.xadd(h.keys.stream, {"x": b"1", "b": node})
    found.append(("XADD with fields x, then b", "§8: field b = body", _after(h, entry.decode())))
    return found


def _after(h: Harness, entry_id: str) -> str:
    """What became of an entry added by hand, read as Harness.run reads it."""
    h.call("testpackage.echo", "sentinel")
    found = h.producer.take(entry_id)
    dead = h.dead_letter(entry_id)
    text = "no notification"
    if found:
        error = found[1].get("error")
        text = f"notification: {error['name'] + ': ' + error['message'] if error else found[1].get('result')}"
    return text + "; " + (f"dead letter: {dead['r']!r}" if dead else "not dead-lettered")


# --- Command line ---------------------------------------------------------------------------------


def _client(url: str) -> Any:
    endpoint = ivy.Endpoint.parse(url)
    client = endpoint.connect()
    if int(client.connection_pool.connection_kwargs.get("db", 0)) == 0:
        raise SystemExit("interop_checks: refusing db 0; give a URL with a database of its own (redis://host:port/13)")
    return client


def _poll(condition: Callable[[], bool], within: float, what: str) -> None:
    """Polls a condition every 50 ms until it holds, for `within` seconds at most."""
    limit = time.monotonic() + within
    while not condition():
        if time.monotonic() > limit:
            raise SystemExit(f"interop_checks: {what} within {within:g} s")
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _consumers(client: Any, queue: str) -> Optional[int]:
    try:
        groups = client.xinfo_groups(ivy.QueueKeys.of(queue).stream)
    except Exception:  # no stream yet
        return None
    for group in groups:
        if group["name"] == ivy.GROUP.encode():
            return int(group["consumers"])
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["reset", "wait-group", "consumers", "suite", "probes"])
    parser.add_argument("url")
    parser.add_argument("queue", nargs="?", default=QUEUE)
    parser.add_argument("--within", type=float, default=90.0, help="seconds wait-group waits at most")
    parser.add_argument("--pid", type=int, help="wait-group: give up as soon as this process is gone")
    options = parser.parse_args()
    client = _client(options.url)
    if options.command == "reset":
        client.flushdb()
        return 0
    if options.command == "wait-group":
        def ready() -> bool:
            if options.pid is not None and not _alive(options.pid):
                raise SystemExit(f"interop_checks: process {options.pid} exited before it read the queue")
            return _consumers(client, options.queue) is not None
        _poll(ready, options.within, f"no consumer group {ivy.GROUP} on queue {options.queue}")
        return 0
    if options.command == "consumers":
        print(_consumers(client, options.queue) or 0)
        return 0
    harness = Harness(options.url)
    try:
        if options.command == "probes":
            for case, doc, observed in probes(harness):
                print(f"probe: {case}\n  doc:      {doc}\n  observed: {observed}")
            return 0
        for name, check in SUITE:
            started = time.monotonic()
            try:
                check(harness)
            except CheckFailed as failure:
                print(f"interop_checks: FAIL in {name}: {failure}", file=sys.stderr)
                return 1
            except ivy.ResultTimeout as timeout:
                print(f"interop_checks: FAIL in {name}: {timeout}", file=sys.stderr)
                return 1
            print(f"interop_checks: ok   {name} ({time.monotonic() - started:.2f} s)")
        return 0
    finally:
        harness.close()


if __name__ == "__main__":
    sys.exit(main())
