#!/usr/bin/env python3
"""Ivy reference client: a producer and a worker written from PROTOCOL.md alone.

Its purpose is to keep PROTOCOL.md honest: everything here follows the document (section
numbers in the comments), not the Swift sources, and ``scripts/reference-client-test.sh``
runs it against the Swift ``ivy`` both ways. Where the document leaves a choice open, the
choice is named in a comment so that it can be compared with the Swift side.

Scope: plaintext messages on Redis (§1, §2, §3, §4, §8). No encryption (§6): the worker
dead-letters tokens as a worker without a key must, and tells the caller when the route
names a channel (§6.3). The worker runs one attempt at a time and does not announce itself
on the liveness set (§8 "Another implementation need not beat"), so its leases simply last
their visibility timeout. The producer does not read durable results back (§3): it waits on
pub/sub only, which is enough for a producer that never reconnects.

Only the standard library and the ``redis`` package are used.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import os
import random
import re
import secrets
import signal
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Optional
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

# --- Constants the document fixes -------------------------------------------------------------

GROUP = "ivy"  # §8: the stream's consumer group
DEFAULT_BASE_CHANNEL = "ivy-notifier"  # §3
MAXIMUM_MESSAGE_SIZE = 16 * 1024 * 1024  # §8: 16 MiB, the default limit
MAXIMUM_CONTAINERS = 129  # §1: the outer object and up to 128 arrays or objects inside it
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
SIGNAL_LENGTH = 100  # §8: the signal list keeps at most 100 pushes
LONGEST_BLOCK = 0.25  # §8 "Bound": an idle consumer reads the stream at least every 250 ms
EXTRA_DELIVERIES = 3  # §4 step 4a: the worker's allowance for redeliveries (default)
DEFAULT_RETENTION_MS = 30_000  # §3/§8: durable results are kept 30 s by default
LONGEST_RETRY_DELAY = 30 * 86_400.0  # §4: no retry delay is ever longer than 30 days
# §1: times lie in the years 0000-9999 (UTC): from 0000-01-01T00:00:00Z, before 10000-01-01T00:00:00Z.
EARLIEST_SECONDS = -62_167_219_200
END_OF_9999_SECONDS = 253_402_300_800


def base_channel() -> str:
    """The base notification channel (§3): `IVY_NOTIFICATION_CHANNEL_NAME`, else `ivy-notifier`."""
    return os.environ.get("IVY_NOTIFICATION_CHANNEL_NAME") or DEFAULT_BASE_CHANNEL


def is_channel_name(name: str) -> bool:
    """§1: a `notify` channel is 1 to 1,024 bytes of UTF-8 without control characters (category
    Cc) or white space."""
    return 1 <= len(name.encode("utf-8")) <= 1024 and not any(
        ch.isspace() or unicodedata.category(ch) == "Cc" for ch in name)


@dataclass(frozen=True)
class QueueKeys:
    """A queue's Redis keys (§8); they share the hash tag `{queue}`."""

    stream: str
    leases: str
    delayed: str
    dead: str
    signal: str
    consumers: str
    scheduled: str

    @classmethod
    def of(cls, queue: str) -> "QueueKeys":
        prefix = f"ivy:{{{queue}}}:"
        return cls(*(prefix + part for part in (
            "stream", "leases", "delayed", "dead", "signal", "consumers", "scheduled")))


def results_key(channel: str) -> str:
    """The stream keeping a channel's durable results (§8)."""
    return f"ivy:{{{channel}}}:results"


# --- Connections ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    """A Redis URL as §7 writes it, split into what redis-py takes and Ivy's own parameters.

    redis-py refuses query parameters it does not know, so Ivy's (`retain_results`, `name`)
    are taken out before the URL is handed to it.
    """

    url: str
    retention_ms: int
    client_name: Optional[str]

    @classmethod
    def parse(cls, url: str) -> "Endpoint":
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"not a Redis URL (redis://, unix://): {redact(url)}")
        retention_ms, name, rest = DEFAULT_RETENTION_MS, None, []
        for key, value in parse_qsl(parts.query, keep_blank_values=True):
            if key == "retain_results":
                retention_ms = round(float(value) * 1000)
            elif key == "name":
                name = value
            else:
                rest.append((key, value))
        clean = urlunsplit(parts._replace(query=urlencode(rest)))
        return cls(clean, max(0, retention_ms), name)

    def connect(self) -> redis.Redis:
        # Bytes in, bytes out: bodies are opaque bytes (§5) and must not be re-encoded.
        client = redis.Redis.from_url(self.url, client_name=self.client_name)
        client.ping()  # fail at start-up, not on the first message
        return client

    @property
    def redacted(self) -> str:
        return redact(self.url)


def redact(url: str) -> str:
    """The URL with its credentials replaced by `***` (README "Security")."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


# --- Times (§1) ----------------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)


def format_time(unix_seconds: float) -> str:
    """A time as producers write it (§1): `YYYY-MM-DDTHH:MM:SS.mmmZ`, UTC, milliseconds."""
    milliseconds = round(unix_seconds * 1000)
    whole = datetime.fromtimestamp(milliseconds // 1000, tz=timezone.utc)
    return whole.strftime("%Y-%m-%dT%H:%M:%S") + f".{milliseconds % 1000:03d}Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar; works for year 0, which
    `datetime` cannot represent but §1 allows."""
    year -= month <= 2
    era = year // 400
    year_of_era = year - era * 400
    day_of_year = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    day_of_era = year_of_era * 365 + year_of_era // 4 - year_of_era // 100 + day_of_year
    return era * 146_097 + day_of_era - 719_468


def parse_time(text: str) -> Optional[float]:
    """Unix seconds of an RFC 3339 time with any offset and any number of fraction digits (§1),
    or None when it is not one or lies outside the years 0000-9999."""
    match = _RFC3339.fullmatch(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(match.group(i)) for i in range(1, 7))
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    days_in_month = [31, 29 if leap else 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    if not (1 <= month <= 12 and 1 <= day <= days_in_month[month - 1]):
        return None
    if hour > 23 or minute > 59 or second > 60:  # 60: a leap second, as RFC 3339 allows
        return None
    offset = 0
    if match.group(9):
        offset_hours, offset_minutes = int(match.group(10)), int(match.group(11))
        if offset_hours > 23 or offset_minutes > 59:
            return None
        offset = (1 if match.group(9) == "+" else -1) * (offset_hours * 3600 + offset_minutes * 60)
    fraction = float("0." + match.group(7)) if match.group(7) else 0.0
    seconds = _days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset
    if not EARLIEST_SECONDS <= seconds + fraction < END_OF_9999_SECONDS:
        return None
    return seconds + fraction


# --- Messages (§1, §2) ---------------------------------------------------------------------------


def encode_json(value: Any) -> bytes:
    """Compact UTF-8 JSON, as the wire carries it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


class _NotJSON(ValueError):
    """NaN, Infinity or -Infinity: Python's json reads them, RFC 8259 has none of them."""


def _no_constants(name: str) -> Any:
    raise _NotJSON(name)


def _outside_strings(text: str, word: str) -> int:
    """Where `word` first occurs in JSON text outside string literals (for the byte offset
    §4's reason gives); -1 when it does not."""
    in_string = escaped = False
    for index, character in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif text.startswith(word, index):
            return index
    return -1


class Malformed(Exception):
    """A message §1 calls malformed; `reason` is its dead-letter reason (§4 table)."""

    def __init__(self, detail: str, task_name: Optional[str] = None) -> None:
        self.reason = (
            f"IvyError.malformedMessage task {task_name}: {detail}"
            if task_name is not None
            else f"IvyError.malformedMessage: {detail}"
        )
        super().__init__(self.reason)


def _containers(value: Any) -> int:
    """How deeply containers nest in `value`, counting `value` itself (§1's depth rule)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_json_object(body: bytes) -> dict:
    """Parses a body as a JSON object under §1's rules: the last of duplicate keys counts (as
    Python's json does), no NaN, at most 129 nested containers.

    Raises Malformed with the reason texts of §4's table.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise Malformed(f"invalid JSON: not UTF-8 at byte {error.start}") from None
    try:
        value = json.loads(text, parse_constant=_no_constants)
    except json.JSONDecodeError as error:
        # json counts characters; the wire counts bytes.
        raise Malformed(f"invalid JSON: {error.msg} at byte {len(text[: error.pos].encode('utf-8'))}") from None
    except _NotJSON as constant:
        offset = len(text[: max(_outside_strings(text, str(constant)), 0)].encode("utf-8"))
        raise Malformed(f"invalid JSON: {constant} is not JSON at byte {offset}") from None
    except RecursionError:
        raise Malformed("invalid JSON: nesting too deep") from None
    if not isinstance(value, dict):
        raise Malformed("invalid JSON: not a JSON object at byte 0")
    if _containers(value) > MAXIMUM_CONTAINERS:
        raise Malformed("invalid JSON: nesting too deep")
    return value


@dataclass
class TaskMessage:
    """One call as it travels on a queue (§1)."""

    name: str
    args: list
    options: dict = field(default_factory=dict)
    id: Optional[str] = None
    notify: Optional[str] = None
    attempt: int = 1
    created_at: Optional[float] = None  # Unix seconds
    deadline: Optional[float] = None  # Unix seconds
    eta: Optional[float] = None  # Unix seconds: not to run before (a call that runs later)

    def encoded(self) -> bytes:
        """The message as JSON, keys in §1's order, optional ones only when set."""
        message: dict[str, Any] = {"name": self.name, "options": self.options, "args": self.args}
        if self.id is not None:
            message["id"] = self.id
        if self.notify is not None:
            message["notify"] = self.notify
        message["attempt"] = self.attempt
        if self.created_at is not None:
            message["created_at"] = format_time(self.created_at)
        if self.deadline is not None:
            message["deadline"] = format_time(self.deadline)
        if self.eta is not None:
            message["eta"] = format_time(self.eta)
        return encode_json(message)

    @classmethod
    def decode(cls, body: bytes) -> "TaskMessage":
        """Reads a body, or raises Malformed (§1 "Rules"). A key whose value is null counts as
        absent; unknown keys are ignored."""
        message = parse_json_object(body)
        name = message.get("name")
        if name is None:
            raise Malformed('missing "name"')
        if not isinstance(name, str):
            raise Malformed('"name" is not a string')
        if name == "":
            raise Malformed('missing "name"')
        # An off-pattern name is not malformed (§1): it is an unknown task (§4 step 3).

        def optional(key: str, kind: type, what: str) -> Any:
            value = message.get(key)
            # bool is an int in Python, not in JSON: `"attempt": true` is not an integer.
            if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
                raise Malformed(f'"{key}" is not {what}', name)
            return value

        args = message.get("args")
        if not isinstance(args, list):
            raise Malformed('"args" is missing or not an array', name)
        options = optional("options", dict, "an object")
        task_id = optional("id", str, "a string")
        notify = optional("notify", str, "a string")
        if notify is not None and not is_channel_name(notify):
            raise Malformed('"notify" is not a channel name (1 to 1024 bytes, no spaces or control characters)', name)
        attempt = optional("attempt", int, "an integer")
        if attempt is not None and attempt < 1:
            raise Malformed('"attempt" must be at least 1', name)
        if attempt is not None and attempt > INT64_MAX:
            raise Malformed('"attempt" is past 64 bits', name)

        def moment(key: str) -> Optional[float]:
            text = optional(key, str, "a string")
            if text is None:
                return None
            parsed = parse_time(text)
            if parsed is None:
                raise Malformed(f'"{key}" is not an RFC 3339 time', name)
            return parsed

        return cls(
            name=name, args=args, options=options if options is not None else {}, id=task_id, notify=notify,
            attempt=attempt if attempt is not None else 1, created_at=moment("created_at"),
            deadline=moment("deadline"), eta=moment("eta"),
        )


@dataclass(frozen=True)
class RemoteError:
    """The `error` object of a failure notification (§2)."""

    name: str
    message: str
    retryable: bool

    def as_json(self) -> dict:
        return {"name": self.name, "message": self.message, "retryable": self.retryable}


def notification(
    task_id: str, name: str, args: list, options: dict, queue: str, attempt: int,
    result: Any = None, error: Optional[RemoteError] = None,
) -> bytes:
    """A notification (§2): `result` is one element, the task's return value, or `error`."""
    body: dict[str, Any] = {
        "id": task_id, "name": name, "args": args, "options": options, "queue": queue, "notify": True,
        "attempt": attempt,
    }
    if error is not None:
        body["error"] = error.as_json()
    else:
        body["result"] = [result]
    return encode_json(body)


class RemoteTaskError(Exception):
    """A call that failed on the worker: the notification's `error` (§2)."""

    def __init__(self, notice: dict) -> None:
        error = notice.get("error") or {}
        self.notification = notice
        self.name: str = error.get("name", "")
        self.message: str = error.get("message", "")
        self.retryable: bool = bool(error.get("retryable", False))
        self.task_id: str = notice.get("id", "")
        self.task_name: str = notice.get("name", "")
        self.attempt: int = notice.get("attempt", 0)
        super().__init__(f"{self.task_name} [{self.task_id}] failed on attempt {self.attempt}: {self.name}: {self.message}")


class ResultTimeout(TimeoutError):
    """No notification came by the call's deadline (§3)."""


# --- Sending (§8) --------------------------------------------------------------------------------


def ensure_group(client: redis.Redis, queue: str) -> None:
    """Creates the consumer group from the stream's start, with the stream (§8); a BUSYGROUP
    reply means another client made it first."""
    try:
        client.xgroup_create(QueueKeys.of(queue).stream, GROUP, id="0", mkstream=True)
    except redis.ResponseError as error:
        if not str(error).startswith("BUSYGROUP"):
            raise


def send(client: redis.Redis, queue: str, bodies: Iterable[bytes], *, push: bool = True) -> list[str]:
    """Adds bodies to a queue and returns their entry ids (§8 "A send").

    One transaction: an XADD per body, then one LPUSH of `1` per body (at most 100) and an
    LTRIM of the signal list to 100, which wakes idle consumers at once. With `push=False` it
    is a bare XADD, as a producer in another language may do; consumers then take the
    message within 250 ms (§8 "Bound").
    """
    bodies = list(bodies)
    for body in bodies:
        if len(body) > MAXIMUM_MESSAGE_SIZE:
            raise ValueError(f"{len(body)} bytes for queue {queue}; the limit is {MAXIMUM_MESSAGE_SIZE}")
    keys = QueueKeys.of(queue)
    pipe = client.pipeline(transaction=True)
    for body in bodies:
        pipe.xadd(keys.stream, {"b": body})
    if push and bodies:
        pipe.lpush(keys.signal, *(["1"] * min(len(bodies), SIGNAL_LENGTH)))
        pipe.ltrim(keys.signal, 0, SIGNAL_LENGTH - 1)
    replies = pipe.execute()
    return [reply.decode() for reply in replies[: len(bodies)]]


# --- Producer (§1, §3) ---------------------------------------------------------------------------


class Producer:
    """Calls tasks: subscribes once to `<base>:<producer id>` (§3), then sends each call with
    that channel as `notify` and matches notifications to calls by `id`.

    Notifications for other calls of this producer that arrive while one call waits are kept
    until asked for, so calls may be submitted first and awaited in any order.
    """

    def __init__(self, queue_client: redis.Redis, notify_client: redis.Redis, *, base: Optional[str] = None,
                 default_queue: str = "testpackage") -> None:
        self.queue_client = queue_client
        self.default_queue = default_queue
        self.producer_id = secrets.token_hex(8)
        self.channel = f"{base or base_channel()}:{self.producer_id}"
        self._arrived: dict[str, tuple[str, dict]] = {}  # task id -> (channel, notification)
        self._pubsub = notify_client.pubsub()
        # Subscribed before anything is sent, so that no result can be published unseen.
        self._pubsub.subscribe(self.channel)
        if not _await_subscription(self._pubsub, self.channel, within=30.0):
            raise ResultTimeout(f"no subscription confirmation for {self.channel}")

    def close(self) -> None:
        self._pubsub.close()

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def new_task_id(self) -> str:
        """`<producer id>-<random>`: unique per call and not guessable by others."""
        return f"{self.producer_id}-{secrets.token_hex(8)}"

    def message(self, name: str, args: list, *, timeout: float = 60.0, options: Optional[dict] = None) -> TaskMessage:
        """The §1 message of a call whose result this producer awaits for `timeout` seconds."""
        now = time.time()
        return TaskMessage(
            name=name, args=list(args), options=dict(options or {}), id=self.new_task_id(), notify=self.channel,
            attempt=1, created_at=now, deadline=now + timeout,
        )

    def submit(self, name: str, args: list, *, queue: Optional[str] = None, timeout: float = 60.0,
               options: Optional[dict] = None) -> TaskMessage:
        """Sends a call; returns its message (its `id` and `deadline` are what `wait` needs)."""
        message = self.message(name, args, timeout=timeout, options=options)
        send(self.queue_client, queue or self.default_queue, [message.encoded()])
        return message

    def call(self, name: str, *args: Any, queue: Optional[str] = None, timeout: float = 60.0,
             options: Optional[dict] = None) -> Any:
        """Calls a task and returns its result; raises RemoteTaskError or ResultTimeout."""
        message = self.submit(name, list(args), queue=queue, timeout=timeout, options=options)
        return result_of(self.wait(message.id or "", until=message.deadline or time.time() + timeout))

    def listen(self, channel: str) -> None:
        """Also receive notifications published on `channel`, such as the base channel where
        the outcomes of calls without `notify` go (§3); `wait` finds them by id too."""
        self._pubsub.subscribe(channel)
        if not _await_subscription(self._pubsub, channel, within=30.0):
            raise ResultTimeout(f"no subscription confirmation for {channel}")

    def wait(self, task_id: str, *, until: float) -> dict:
        """The notification for `task_id`, waiting until the Unix time `until` (the call's
        deadline, §3) at most."""
        return self.wait_on(task_id, until=until)[1]

    def wait_on(self, task_id: str, *, until: float) -> tuple[str, dict]:
        """As `wait`, with the channel the notification came on."""
        while task_id not in self._arrived:
            remaining = until - time.time()
            if remaining <= 0:
                raise ResultTimeout(f"no result for {task_id} by its deadline")
            self._receive(remaining)
        return self._arrived.pop(task_id)

    def take(self, task_id: str) -> Optional[tuple[str, dict]]:
        """The notification for `task_id` if one has arrived (with its channel), without waiting
        for more than what is already in the connection's buffer."""
        while self._receive(0.0):
            pass
        return self._arrived.pop(task_id, None)

    def _receive(self, within: float) -> bool:
        """Reads one pub/sub message (waiting up to `within` seconds) and files a notification
        by its id; false when nothing came."""
        message = self._pubsub.get_message(timeout=min(within, 1.0))
        if not message:
            return False
        if message.get("type") != "message":
            return True
        notice = self._decode(message["data"])
        if notice is not None:
            self._arrived[notice["id"]] = (message["channel"].decode(), notice)
        return True

    @staticmethod
    def _decode(payload: bytes) -> Optional[dict]:
        try:
            notice = json.loads(payload)
        except ValueError:
            print(f"ivy-reference producer: ignored a notification that is not JSON ({len(payload)} bytes; "
                  "an encrypted one?)", file=sys.stderr)
            return None
        if not isinstance(notice, dict) or not isinstance(notice.get("id"), str):
            print("ivy-reference producer: ignored a notification without an id", file=sys.stderr)
            return None
        return notice


def _await_subscription(pubsub: Any, channel: str, *, within: float) -> bool:
    """Reads until the server confirms the subscription (messages before it cannot exist)."""
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        message = pubsub.get_message(timeout=0.5)
        if message and message.get("type") == "subscribe" and message.get("channel") == channel.encode():
            return True
    return False


def result_of(notice: dict) -> Any:
    """A notification's value: `result[0]` (§2), or RemoteTaskError for an `error`."""
    if notice.get("error") is not None:
        raise RemoteTaskError(notice)
    result = notice.get("result")
    if not isinstance(result, list) or not result:
        raise ValueError(f"notification for {notice.get('id')} has neither a result array nor an error")
    return result[0]


# --- Tasks ---------------------------------------------------------------------------------------


class TaskFailure(Exception):
    """A task's own error: reaches the caller with this name (§2); not retried unless retryable."""

    def __init__(self, name: str, message: str, *, retryable: bool = True) -> None:
        super().__init__(f"{name}: {message}")
        self.name, self.message, self.retryable = name, message, retryable


class AttemptCancelled(Exception):
    """The attempt was cancelled (timeout or shutdown) while a task was waiting."""


_attempt = threading.local()


def cancellable_sleep(seconds: float) -> None:
    """Sleeps in a task, ending early with AttemptCancelled when the attempt is cancelled."""
    cancel: Optional[threading.Event] = getattr(_attempt, "cancel", None)
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        raise AttemptCancelled()


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts and delays after a retryable failure, as §4 defines them."""

    max_attempts: int = 1
    kind: str = "none"  # none, fixed, linear or exponential
    delay: float = 0.0  # seconds: fixed's d, linear's s, exponential's b
    maximum: float = LONGEST_RETRY_DELAY  # exponential's max
    jitter: bool = False  # the default for exponential

    def delay_after(self, attempt: int) -> Optional[float]:
        """Seconds before the next attempt, or None when `attempt` was the last one."""
        if attempt >= self.max_attempts:
            return None
        if self.kind == "fixed":
            wait = self.delay
        elif self.kind == "linear":
            wait = self.delay * max(attempt, 1)
        elif self.kind == "exponential":
            wait = min(self.maximum, self.delay * 2.0 ** min(max(attempt - 1, 0), 100))
        else:
            wait = 0.0
        wait = min(max(wait, 0.0), LONGEST_RETRY_DELAY)
        return random.uniform(wait / 2, wait) if self.jitter and wait > 0 else wait


@dataclass(frozen=True)
class Task:
    """A registered task: its name, queue, parameter types (int, str, bool) and body."""

    name: str
    queue: str
    parameters: tuple[type, ...]
    body: Callable[..., Any]
    retry: RetryPolicy = RetryPolicy()
    timeout: float = 60.0
    result_wanted: bool = True


class ArgumentsUndecodable(Exception):
    """`args` do not fit the task's parameters (§1)."""


_KINDS = {int: "Int", str: "String", bool: "Bool"}


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a JSON boolean"
    if isinstance(value, (int, float)):
        return "a JSON number"
    if isinstance(value, str):
        return "a JSON string"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, dict):
        return "a JSON object"
    return "JSON null"


def decode_arguments(task: Task, args: list) -> list:
    """`args` as the task's parameter types, or ArgumentsUndecodable (§1: exactly one element
    per parameter, each fitting its type; an integer past 64 bits does not fit Int)."""
    if len(args) != len(task.parameters):
        raise ArgumentsUndecodable(f"{len(args)} arguments for a task that takes {len(task.parameters)}")
    decoded = []
    for index, (value, kind) in enumerate(zip(args, task.parameters), start=1):
        fits = False
        if kind is int and not isinstance(value, bool):
            # A whole number written as 5.0 or 5e0 is still that number (JSON has one number type).
            if isinstance(value, float) and math.isfinite(value) and value.is_integer():
                value = int(value)
            fits = isinstance(value, int) and INT64_MIN <= value <= INT64_MAX
        elif kind is str:
            fits = isinstance(value, str)
        elif kind is bool:
            fits = isinstance(value, bool)
        if not fits:
            raise ArgumentsUndecodable(f"argument {index}: {_json_kind(value)} that does not fit {_KINDS[kind]}")
        decoded.append(value)
    return decoded


def _factorial(n: int) -> int:
    if n < 0:
        raise TaskFailure("ValueError", f"factorial({n}): n must not be negative", retryable=False)
    product = 1
    for factor in range(2, n + 1):
        product *= factor
        if product > INT64_MAX:
            raise TaskFailure("OverflowError", f"factorial({n}) overflows a 64-bit Int", retryable=False)
    return product


def _add(a: int, b: int) -> int:
    if not INT64_MIN <= a + b <= INT64_MAX:
        raise TaskFailure("OverflowError", f"{a} + {b} overflows Int", retryable=False)
    return a + b


def _sleep(milliseconds: int) -> int:
    cancellable_sleep(max(milliseconds, 0) / 1000)
    return milliseconds


def _fail(message: str) -> str:
    raise TaskFailure("TestFailure", message)


def test_package(queue: str = "testpackage") -> dict[str, Task]:
    """The example tasks (ivy's `testpackage`), with the names, queue, semantics and retry
    policies the Swift examples give them, so either side's producer can call either's worker."""
    tasks = [
        Task("testpackage.factorial", queue, (int,), _factorial,
             RetryPolicy(10, "exponential", delay=0.5, maximum=300.0, jitter=True)),
        Task("testpackage.add", queue, (int, int), _add),
        Task("testpackage.echo", queue, (str,), lambda text: text),
        Task("testpackage.sleep", queue, (int,), _sleep, timeout=300.0),
        Task("testpackage.fail", queue, (str,), _fail, RetryPolicy(3, "fixed", delay=0.05)),
    ]
    return {task.name: task for task in tasks}


# --- Worker: Redis scripts (§8) ------------------------------------------------------------------
#
# Every state change but the send is one script, on the server's clock (§8), so that a lease is
# checked and settled atomically. Times are microseconds of `TIME`; a lease is the member
# `<entry id>|<token>` of the leases set, scored by its expiry, its token the first expiry.

_CLOCK = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local function stamp(micros) return string.format('%.0f', micros) end
"""

# Stops with 0 unless ARGV[2] (entry id) is leased under token ARGV[3] and the lease is unexpired.
_HELD = _CLOCK + """
local lease = ARGV[2] .. '|' .. ARGV[3]
local expiry = redis.call('ZSCORE', KEYS[2], lease)
if not expiry or tonumber(expiry) <= now then return 0 end
"""

# `keep(key, payload, retention ms, now ms)`: a durable result (§8), then the key's expiry.
_KEEP = """
local function keep(key, payload, retention, nowMs)
  redis.call('XADD', key, 'MINID', '~', nowMs - retention, '*', 'p', payload)
  redis.call('PEXPIRE', key, retention)
end
"""

# KEYS stream, leases, delayed, signal, scheduled; ARGV group, consumer, count, visibility ms.
# Due scheduled messages (calls that run later: members are 16 hex digits, then the body) are
# first added to the stream as new entries (§8), where the read of new entries takes them.
# Returns {{{id, body, deliveries, token}...}, next due}. Due delayed messages first, then expired
# leases (both claimed with XCLAIM, which counts a delivery), then new entries (delivery 1). When
# fewer new entries were read than asked for, nothing more is ready: the signal list is emptied
# (§8), and `next due` is the milliseconds until the earliest delayed message or lease comes due
# (-1: none, or not drained), which bounds the wait for a push.
# This consumer does not add itself to the consumers set: it does not beat (see the module doc).
_RESERVE = _CLOCK + """
local count = tonumber(ARGV[3])
local token = stamp(now + tonumber(ARGV[4]) * 1000)
local out = {}
for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[5], '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', KEYS[5], member)
  redis.call('XADD', KEYS[1], '*', 'b', string.sub(member, 17))
end
local function body(fields)
  for i = 1, #fields, 2 do if fields[i] == 'b' then return fields[i + 1] end end
  return ''
end
local function claim(id)
  local entry = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)[1]
  if not entry or not entry[2] then return end
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
  table.insert(out, {id, body(entry[2]), pending and pending[4] or 1, token})
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, count)) do
  redis.call('ZREM', KEYS[3], id)
  claim(id)
end
if #out < count then
  for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, count - #out)) do
    redis.call('ZREM', KEYS[2], lease)
    claim(string.match(lease, '^[^|]*'))
  end
end
local drained = false
if #out < count then
  local want = count - #out
  local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[1], '>')
  local entries = read and read[1][2] or {}
  for _, entry in ipairs(entries) do table.insert(out, {entry[1], body(entry[2]), 1, token}) end
  drained = #entries < want
end
for _, message in ipairs(out) do redis.call('ZADD', KEYS[2], token, message[1] .. '|' .. token) end
local nextDue = -1
if drained then
  redis.call('DEL', KEYS[4])
  for _, key in ipairs({KEYS[3], KEYS[2], KEYS[5]}) do
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    if first[2] then
      local wait = math.max(0, math.ceil((tonumber(first[2]) - now) / 1000))
      if nextDue < 0 or wait < nextDue then nextDue = wait end
    end
  end
end
return {out, nextDue}
"""

# KEYS stream, leases, results stream (any key when none); ARGV group, id, token, channel ('' for
# none), payload, retention ms (0: plain pub/sub). Acknowledges if held, then keeps and publishes
# the result whether or not it was (the task did run). Returns 1 (acknowledged) or 0 (lost).
_ACK = _CLOCK + _KEEP + """
local lease = ARGV[2] .. '|' .. ARGV[3]
local expiry = redis.call('ZSCORE', KEYS[2], lease)
local held = expiry and tonumber(expiry) > now
if held then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
  redis.call('ZREM', KEYS[2], lease)
end
if ARGV[4] ~= '' then
  local retention = tonumber(ARGV[6])
  if retention > 0 then keep(KEYS[3], ARGV[5], retention, math.floor(now / 1000)) end
  redis.call('PUBLISH', ARGV[4], ARGV[5])
end
if held then return 1 end
return 0
"""

# KEYS results stream; ARGV channel, payload, retention ms. A result published apart from an ack.
_KEEP_AND_PUBLISH = _CLOCK + _KEEP + """
local retention = tonumber(ARGV[3])
if retention > 0 then keep(KEYS[1], ARGV[2], retention, math.floor(now / 1000)) end
return redis.call('PUBLISH', ARGV[1], ARGV[2])
"""

# KEYS stream, leases; ARGV group, id, token, visibility ms. The lease's score moves, its member stays.
_EXTEND = _HELD + """
redis.call('ZADD', KEYS[2], 'XX', stamp(now + tonumber(ARGV[4]) * 1000), lease)
return 1
"""

# KEYS scheduled, signal; ARGV member (16 hex digits, then the body), delay ms: a send with a
# delay (§8), visible once the reserve script moves it into the stream.
_SCHEDULE = _CLOCK + """
redis.call('ZADD', KEYS[1], stamp(now + tonumber(ARGV[2]) * 1000), ARGV[1])
redis.call('LPUSH', KEYS[2], 1)
redis.call('LTRIM', KEYS[2], 0, 99)
return 1
"""

# KEYS stream, leases, delayed, signal; ARGV group, id, token, delay ms. The entry stays pending
# (keeping its id and delivery count); the delayed set says when it is visible again.
_RELEASE = _HELD + """
redis.call('ZREM', KEYS[2], lease)
redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[4]) * 1000), ARGV[2])
redis.call('LPUSH', KEYS[4], 1)
redis.call('LTRIM', KEYS[4], 0, 99)
return 1
"""

# KEYS stream, leases, dead; ARGV group, id, token, reason. Moves the message to the dead letter
# (fields o, b, r, c, t: §8), then deletes it as an ack does.
_DEAD_LETTER = _HELD + """
local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
local body = ''
if entry then
  for i = 1, #entry[2], 2 do if entry[2][i] == 'b' then body = entry[2][i + 1] end end
end
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
redis.call('XADD', KEYS[3], '*', 'o', ARGV[2], 'b', body, 'r', ARGV[4], 'c', pending and pending[4] or 1,
           't', math.floor(now / 1000))
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], lease)
return 1
"""


@dataclass(frozen=True)
class Reservation:
    """A reserved message: its entry id, body, delivery count and lease token."""

    queue: str
    entry_id: str
    body: bytes
    deliveries: int
    token: str


class Worker:
    """Runs tasks from queues as §4 says, on the Redis layout of §8.

    One attempt at a time: the loop reserves one message, runs it in a thread of its own
    (so that a timeout or shutdown can give up on it), extends the lease every third of the
    visibility timeout meanwhile, and settles it: ack and publish, release with a delay, or
    dead letter. When nothing is ready it blocks on the queues' signal lists for 250 ms at
    most, then reads the streams again.
    """

    def __init__(self, queue_endpoint: Endpoint, notify_endpoint: Endpoint, tasks: dict[str, Task], *,
                 queues: Optional[list[str]] = None, visibility: float = 30.0, grace: float = 30.0,
                 base: Optional[str] = None) -> None:
        self.queue_endpoint, self.notify_endpoint = queue_endpoint, notify_endpoint
        self.queue_client = queue_endpoint.connect()
        self.notify_client = notify_endpoint.connect()
        # One script acks, keeps and publishes when the notifier is the same server and
        # database (§5: "in one request where the broker also carries the notifier").
        self.same_server = queue_endpoint.url == notify_endpoint.url
        self.retention_ms = notify_endpoint.retention_ms
        self.tasks = tasks
        self.queues = queues or sorted({task.queue for task in tasks.values()})
        self.visibility, self.grace = visibility, grace
        self.base = base or base_channel()
        self.consumer = f"py-{secrets.token_hex(8)}"
        self.stopping = threading.Event()
        register = self.queue_client.register_script
        self._reserve, self._ack, self._extend = register(_RESERVE), register(_ACK), register(_EXTEND)
        self._release, self._dead_letter = register(_RELEASE), register(_DEAD_LETTER)
        self._schedule = register(_SCHEDULE)
        self._keep_and_publish = self.notify_client.register_script(_KEEP_AND_PUBLISH)

    def log(self, text: str) -> None:
        print(f"ivy-reference worker: {text}", file=sys.stderr, flush=True)

    def stop(self) -> None:
        """Stops reserving; the attempt in flight gets the grace period (§4 step 8)."""
        self.stopping.set()

    # The serving loop.

    def run(self) -> None:
        for queue in self.queues:
            ensure_group(self.queue_client, queue)
        self.log(f"serving {', '.join(self.queues)} on {self.queue_endpoint.redacted} "
                 f"(notifier {self.notify_endpoint.redacted}) as consumer {self.consumer}; pid {os.getpid()}")
        signals = [QueueKeys.of(queue).signal for queue in self.queues]
        while not self.stopping.is_set():
            ran, block = False, LONGEST_BLOCK
            for queue in self.queues:
                reservations, next_due = self.reserve(queue, 1)
                for reservation in reservations:
                    ran = True
                    self.execute(reservation)
                if next_due is not None:
                    block = min(block, next_due)
                if self.stopping.is_set():
                    break
            if not ran and not self.stopping.is_set():
                # Woken at once by a send's push; otherwise read again when a delayed message or
                # lease comes due, and after 250 ms at most (§8 "Bound").
                self.queue_client.blpop(signals, timeout=max(block, 0.001))
        self.leave()
        self.log("stopped")

    def leave(self) -> None:
        """Deletes this consumer from the groups when nothing is pending for it (§8: never
        before, or its pending entries could never be claimed again)."""
        for queue in self.queues:
            stream = QueueKeys.of(queue).stream
            if not self.queue_client.xpending_range(stream, GROUP, "-", "+", 1, consumername=self.consumer):
                self.queue_client.xgroup_delconsumer(stream, GROUP, self.consumer)

    # Backend operations (§5 on §8).

    def reserve(self, queue: str, count: int) -> tuple[list[Reservation], Optional[float]]:
        """Up to `count` messages, and the seconds until a delayed message or lease comes due
        when the queue was drained (None: not drained, or nothing due)."""
        keys = QueueKeys.of(queue)
        entries, next_due = self._reserve(
            keys=[keys.stream, keys.leases, keys.delayed, keys.signal, keys.scheduled],
            args=[GROUP, self.consumer, count, round(self.visibility * 1000)])
        reservations = [Reservation(queue, entry_id.decode(), body, int(deliveries), token.decode())
                        for entry_id, body, deliveries, token in entries]
        return reservations, (next_due / 1000 if next_due >= 0 else None)

    def _lease_args(self, reservation: Reservation) -> list[Any]:
        return [GROUP, reservation.entry_id, reservation.token]

    def extend(self, reservation: Reservation) -> bool:
        keys = QueueKeys.of(reservation.queue)
        return self._extend(keys=[keys.stream, keys.leases],
                            args=self._lease_args(reservation) + [round(self.visibility * 1000)]) == 1

    def release(self, reservation: Reservation, delay: float) -> None:
        keys = QueueKeys.of(reservation.queue)
        if self._release(keys=[keys.stream, keys.leases, keys.delayed, keys.signal],
                         args=self._lease_args(reservation) + [round(max(delay, 0.0) * 1000)]) != 1:
            self.log(f"release of {reservation.entry_id} failed: the reservation expired")

    def put_back(self, reservation: Reservation, eta: float) -> None:
        """A message received before its eta (§4 step 1a): sent again to wait for the rest
        (at most 7 days), then its delivery deleted; no attempt is counted."""
        keys = QueueKeys.of(reservation.queue)
        wait_ms = min(math.ceil((eta - time.time()) * 1000), 604_800_000)
        self._schedule(keys=[keys.scheduled, keys.signal],
                       args=[secrets.token_hex(8).encode() + reservation.body, max(wait_ms, 1)])
        self.ack(reservation, None, b"")

    def dead_letter(self, reservation: Reservation, reason: str) -> None:
        keys = QueueKeys.of(reservation.queue)
        if self._dead_letter(keys=[keys.stream, keys.leases, keys.dead],
                             args=self._lease_args(reservation) + [reason]) != 1:
            self.log(f"dead letter of {reservation.entry_id} failed: the reservation expired")
        else:
            self.log(f"dead-lettered {reservation.entry_id} on {reservation.queue}: {reason}")

    def ack(self, reservation: Reservation, channel: Optional[str], payload: bytes) -> None:
        """Acknowledges, then publishes the result (§4 step 6), in one script when it can."""
        keys = QueueKeys.of(reservation.queue)
        if channel is not None and self.same_server:
            results, publish_on, published = results_key(channel), channel, payload
        else:
            results, publish_on, published = keys.stream, "", b""  # the script publishes nothing
        held = self._ack(keys=[keys.stream, keys.leases, results],
                         args=self._lease_args(reservation) + [publish_on, published, self.retention_ms])
        if held != 1:
            self.log(f"the reservation of {reservation.entry_id} expired before the ack; it may run again")
        if channel is not None and not publish_on:
            self.publish(channel, payload)

    def publish(self, channel: str, payload: bytes) -> None:
        """Keeps (durable results, §8) and publishes a notification on the notifier."""
        self._keep_and_publish(keys=[results_key(channel)], args=[channel, payload, self.retention_ms])

    # One message (§4).

    def execute(self, reservation: Reservation) -> None:
        body = reservation.body
        # Step 1: too large, not openable, or malformed: dead letter, no notification.
        if len(body) > MAXIMUM_MESSAGE_SIZE:
            self.dead_letter(reservation, f"IvyError.messageTooLarge at {self.queue_endpoint.redacted}: {len(body)} "
                                          f"bytes for queue {reservation.queue}; the limit is {MAXIMUM_MESSAGE_SIZE}")
            return
        if body.startswith(b"$"):
            self.undecryptable(reservation)
            return
        try:
            message = TaskMessage.decode(body)
        except Malformed as malformed:
            self.dead_letter(reservation, malformed.reason)
            return
        # Step 1a: before its eta (beyond 5 ms): sent again to wait, not run.
        if message.eta is not None and message.eta - time.time() > 0.005:
            self.put_back(reservation, message.eta)
            return
        # Step 2: the attempt this delivery is, saturating at 2^63 - 1.
        attempt = min(message.attempt + max(reservation.deliveries, 1) - 1, INT64_MAX)
        task_id = message.id if message.id is not None else reservation.entry_id
        task = self.tasks.get(message.name)
        # Step 3: unknown task: an error notification on `notify`, else on the base channel.
        if task is None:
            error = RemoteError("UnknownTask", f"{message.name} is not registered on this worker", False)
            self.fail(reservation, message, task_id, attempt, error,
                      message.notify if message.notify is not None else self.base)
            return
        channel = (message.notify if message.notify is not None else self.base) if task.result_wanted else None
        # Step 4: the caller has given up: no run, no notification.
        if message.deadline is not None and message.deadline < time.time():
            self.dead_letter(reservation, f"IvyError.deadlineExpired task {message.name} id {task_id}")
            return
        # Step 4a: delivered too often without finishing.
        limit = min(task.retry.max_attempts + EXTRA_DELIVERIES, INT64_MAX)
        if attempt > limit:
            error = RemoteError("AttemptsExhausted",
                                f"attempt {attempt} is past the {limit} deliveries {message.name} allows", False)
            self.fail(reservation, message, task_id, attempt, error, channel)
            return
        # Step 5: run under the timeout, with heartbeats.
        try:
            arguments = decode_arguments(task, message.args)
        except ArgumentsUndecodable as undecodable:
            error = RemoteError("ArgumentsUndecodable", str(undecodable), False)
            self.fail(reservation, message, task_id, attempt, error, channel)
            return
        outcome = self.run_attempt(reservation, task, arguments)
        if outcome is None:
            return  # interrupted by shutdown and released already
        succeeded, value = outcome
        if succeeded:
            # Step 6: acknowledge, then publish.
            payload = notification(task_id, message.name, message.args, message.options, reservation.queue,
                                   attempt, result=value)
            self.ack(reservation, channel, payload)
            return
        # Step 7: retry if the error and the policy allow, else dead letter and tell the caller.
        failure: RemoteError = value
        delay = task.retry.delay_after(attempt) if failure.retryable else None
        if delay is not None:
            self.release(reservation, delay)
        else:
            self.fail(reservation, message, task_id, attempt, failure, channel)

    def fail(self, reservation: Reservation, message: TaskMessage, task_id: str, attempt: int, error: RemoteError,
             channel: Optional[str]) -> None:
        """Dead-letters with the reason `<error name>: <message> (attempt n)` (§4), then
        publishes the error notification if there is a channel."""
        self.dead_letter(reservation, f"{error.name}: {error.message} (attempt {attempt})")
        if channel is not None:
            self.publish(channel, notification(task_id, message.name, message.args, message.options,
                                               reservation.queue, attempt, error=error))

    def undecryptable(self, reservation: Reservation) -> None:
        """A token this keyless worker cannot open (§6.3): dead letter, and a plaintext error
        notification with an empty `name` when the `$ivy-v1$` route names a channel."""
        detail = "the message is encrypted and no key is configured (MESSAGES_ENCRYPTION_KEY)"
        self.dead_letter(reservation, f"IvyError.decryptionFailed: {detail}")
        route = token_route(reservation.body)
        if route and isinstance(route.get("id"), str) and isinstance(route.get("notify"), str):
            self.publish(route["notify"], notification(
                route["id"], "", [], {}, reservation.queue, reservation.deliveries,
                error=RemoteError("DecryptionFailed", detail, False)))

    def run_attempt(self, reservation: Reservation, task: Task, arguments: list) -> Optional[tuple[bool, Any]]:
        """Runs the task body in a thread; returns (True, value), (False, RemoteError), or None
        when shutdown interrupted it past the grace period and the message was released."""
        cancel = threading.Event()
        box: dict[str, Any] = {}

        def attempt() -> None:
            _attempt.cancel = cancel
            try:
                box["value"] = task.body(*arguments)
            except BaseException as error:  # reported to the caller, whatever it is
                box["error"] = error

        thread = threading.Thread(target=attempt, name=f"attempt {reservation.entry_id}", daemon=True)
        started = time.monotonic()
        timeout_at, beat_every = started + task.timeout, self.visibility / 3
        next_beat, grace_over = started + beat_every, math.inf
        thread.start()
        while True:
            thread.join(max(0.0, min(next_beat, timeout_at, grace_over, time.monotonic() + LONGEST_BLOCK)
                            - time.monotonic()))
            if not thread.is_alive():
                break
            now = time.monotonic()
            if now >= timeout_at:
                cancel.set()  # the body may go on running; its outcome is ignored
                return False, RemoteError("TaskTimedOut", f"ran longer than {task.timeout:g} seconds", True)
            if self.stopping.is_set() and grace_over == math.inf:
                grace_over = now + self.grace
            if now >= grace_over:
                cancel.set()
                self.log(f"grace period over; releasing {reservation.entry_id}")
                self.release(reservation, 0.0)
                return None
            if now >= next_beat:
                if not self.extend(reservation):
                    self.log(f"heartbeat for {reservation.entry_id}: the reservation was lost")
                next_beat += beat_every
        if "error" not in box:
            return True, box.get("value")
        error = box["error"]
        if isinstance(error, TaskFailure):
            return False, RemoteError(error.name, error.message, error.retryable)
        if isinstance(error, AttemptCancelled):
            return False, RemoteError("TaskTimedOut", f"ran longer than {task.timeout:g} seconds", True)
        return False, RemoteError(type(error).__name__, str(error), True)


def token_route(body: bytes) -> Optional[dict]:
    """The route of a `$ivy-v1$<route>$...` token (§6.2): base64url JSON, readable without a key."""
    prefix = b"$ivy-v1$"
    if not body.startswith(prefix) or b"$" not in body[len(prefix):]:
        return None
    route = body[len(prefix):].split(b"$", 1)[0]
    if not route:
        return None
    try:
        decoded = json.loads(base64.urlsafe_b64decode(route + b"=" * (-len(route) % 4)))
    except (ValueError, binascii.Error):
        return None
    return decoded if isinstance(decoded, dict) else None


# --- Command line --------------------------------------------------------------------------------


def _urls(options: argparse.Namespace) -> tuple[Endpoint, Endpoint]:
    queue = options.queue or os.environ.get("IVY_QUEUE_URL")
    notify = options.notify or os.environ.get("IVY_NOTIFY_URL") or queue
    if not queue:
        raise SystemExit("ivy-reference: --queue URL (or $IVY_QUEUE_URL) is required")
    return Endpoint.parse(queue), Endpoint.parse(notify or queue)


def _worker_command(options: argparse.Namespace) -> int:
    queue, notify = _urls(options)
    queues = [name for name in options.queues.split(",") if name] if options.queues else None
    worker = Worker(queue, notify, test_package(), queues=queues, visibility=options.visibility, grace=options.grace)

    def on_signal(number: int, _frame: Any) -> None:
        worker.log(f"{signal.Signals(number).name} received; draining")
        worker.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    worker.run()
    return 0


def _call_command(options: argparse.Namespace) -> int:
    queue, notify = _urls(options)
    args = [json.loads(text) for text in options.args]
    with Producer(queue.connect(), notify.connect(), default_queue=options.task_queue) as producer:
        try:
            value = producer.call(options.name, *args, timeout=options.timeout,
                                  options=json.loads(options.options) if options.options else None)
        except RemoteTaskError as error:
            print(f"ivy-reference call: {error}", file=sys.stderr)
            return 1
        except ResultTimeout as error:
            print(f"ivy-reference call: {error}", file=sys.stderr)
            return 1
    print(encode_json(value).decode())
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ivy_reference.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def shared(command: argparse.ArgumentParser) -> None:
        command.add_argument("--queue", help="queue backend URL (default: $IVY_QUEUE_URL)")
        command.add_argument("--notify", help="notifier URL (default: $IVY_NOTIFY_URL, else the queue URL)")

    worker = commands.add_parser("worker", help="serve the example tasks until SIGTERM/SIGINT")
    shared(worker)
    worker.add_argument("--queues", help="comma-separated queues (default: testpackage)")
    worker.add_argument("--visibility", type=float, default=30.0, help="reservation timeout in seconds")
    worker.add_argument("--grace", type=float, default=30.0, help="drain time on shutdown in seconds")
    worker.set_defaults(run=_worker_command)

    call = commands.add_parser("call", help="call a task and print its result as JSON")
    shared(call)
    call.add_argument("--task-queue", default="testpackage", help="the queue the task is registered with")
    call.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the result")
    call.add_argument("--options", help="the call's options, a JSON object")
    call.add_argument("name", help="task name, such as testpackage.factorial")
    call.add_argument("args", nargs="*", help="arguments, each as JSON (5, '\"text\"')")
    call.set_defaults(run=_call_command)

    options = parser.parse_args(argv)
    return options.run(options)


if __name__ == "__main__":
    sys.exit(main())
