# This file is part of Ivy for Swift. MIT licensed; see LICENSE.
"""Drive headless Chromium through the Chrome DevTools Protocol over a pipe.

Chromium started with ``--remote-debugging-pipe`` reads protocol commands from
file descriptor 3 and writes replies and events to file descriptor 4, each
message a JSON object terminated by a NUL byte. That lets a test drive a real
browser with the standard library alone: no websocket client, no TCP port.

Typical use::

    with Browser() as browser:
        browser.navigate("http://127.0.0.1:8080/")
        browser.wait_for("document.title === 'Dashboard'")
        browser.click("#increment")
        browser.screenshot("/tmp/page.png")
        assert browser.console_errors() == []

A Browser is not thread-safe: one thread drives it. Messages are read only
while a call waits for something (a reply, an event, a condition), so events
that arrive between calls are buffered and handled by the next call.
"""

import base64
import collections
import fcntl
import json
import os
import select
import shutil
import signal
import subprocess
import tempfile
import time

DEFAULT_TIMEOUT = 30.0

# How much of chromium's stderr to quote when it dies under us.
_STDERR_TAIL_BYTES = 4000

# Events are buffered per method so a wait can find one that arrived while
# another command was pending; the bound keeps chatty events from piling up.
_EVENTS_PER_METHOD = 100

# Upper bound on one select() so a chromium that dies without closing its end
# of the pipe (a child process may still hold it) is noticed promptly.
_POLL_SLICE = 0.5

# Scrolls the element to the middle of the viewport and returns the centre of
# its box, or an error string. 'instant' overrides CSS smooth scrolling, which
# would otherwise leave the box mid-scroll when it is measured. The hit test
# makes a click on a covered or hidden element fail here, with a reason,
# instead of silently landing on whatever is on top.
_CLICK_POINT_JS = """(() => {
  const element = document.querySelector(%s);
  if (!element) return {error: 'no element matches'};
  element.scrollIntoView(
    {block: 'center', inline: 'center', behavior: 'instant'});
  const box = element.getBoundingClientRect();
  if (box.width === 0 || box.height === 0) {
    return {error: 'element has an empty box'};
  }
  const x = box.left + box.width / 2, y = box.top + box.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (!element.contains(hit)) {
    const top = hit ? hit.outerHTML.slice(0, 100) : 'nothing';
    return {error: 'its centre is covered by ' + top};
  }
  return {x, y};
})()"""

_FOCUS_JS = """(() => {
  const element = document.querySelector(%s);
  if (!element) return 'no element matches';
  element.focus();
  if (document.activeElement !== element) return 'element did not take focus';
  return '';
})()"""


class CDPError(Exception):
    """A DevTools command failed, or the browser could not be driven."""


class CDPTimeout(CDPError, TimeoutError):
    """A reply or an awaited event did not arrive in time."""


class BrowserExited(CDPError):
    """Chromium exited or closed its pipe; the message quotes its stderr."""


class NavigationError(CDPError):
    """Page.navigate reported an error, e.g. net::ERR_CONNECTION_REFUSED."""


class JavaScriptError(CDPError):
    """An evaluated expression threw, or the promise it returned rejected."""


class ElementError(CDPError):
    """No element matches a selector, or it cannot be clicked or focused."""


class Browser:
    """One headless chromium with one page, driven over the DevTools pipe.

    Chromium is started by the constructor; use the object as a context
    manager (or call close()) so the browser and its temporary profile are
    removed again, also when a test fails.
    """

    def __init__(self, chromium=None, width=1280, height=900,
                 timeout=DEFAULT_TIMEOUT):
        """Start chromium and attach to its page.

        chromium: path of the binary (default: ``chromium`` on PATH).
        width, height: viewport size in CSS pixels; screenshots have it.
        timeout: seconds every command may take unless a call says otherwise.
        """
        chromium = chromium or shutil.which("chromium")
        if not chromium:
            raise FileNotFoundError(
                "chromium not found on PATH (apt-get install -y chromium)")
        self.timeout = timeout
        self._next_id = 0
        self._replies = {}
        self._events = collections.defaultdict(
            lambda: collections.deque(maxlen=_EVENTS_PER_METHOD))
        self._console_errors = []
        self._buffer = bytearray()
        self._session = None
        self._proc = None
        self._command_fd = self._message_fd = None
        self._tmpdir = tempfile.mkdtemp(prefix="cdp-chromium-")
        self._stderr_path = os.path.join(self._tmpdir, "stderr.log")
        try:
            self._launch(chromium, width, height)
            self._attach(width, height)
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        """Kill chromium with all its child processes; remove the profile.

        Safe to call more than once.
        """
        if self._proc is not None:
            # start_new_session made chromium a process-group leader, so this
            # also reaches its zygote, renderer and GPU processes, which would
            # otherwise outlive it and keep files in the profile open.
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._proc.wait()
            self._proc = None
        for fd in (self._command_fd, self._message_fd):
            if fd is not None:
                os.close(fd)
        self._command_fd = self._message_fd = None
        if self._tmpdir is not None:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None

    # -- Page-level API ---------------------------------------------------

    def navigate(self, url, timeout=None):
        """Load url and wait for its load event.

        Raises NavigationError if the load fails outright (DNS, refused
        connection, ...) and CDPTimeout if the load event does not come in
        time. HTTP error statuses are not failures: the page still loads.
        """
        deadline = self._deadline(timeout)
        # A load event left over from an earlier load (a reload the page did
        # by itself, say) must not be taken for this one.
        self._drain()
        self._events.pop("Page.loadEventFired", None)
        result = self.send("Page.navigate", {"url": url},
                           timeout=deadline - time.monotonic())
        if result.get("errorText"):
            raise NavigationError(
                f"navigating to {url}: {result['errorText']}")
        # Without a loaderId the navigation stayed in the same document (only
        # the fragment changed), and no load event will follow.
        if "loaderId" in result:
            self._wait_for_event("Page.loadEventFired", deadline,
                                 f"the load event of {url}")

    def evaluate(self, expression, timeout=None):
        """Evaluate a JavaScript expression in the page; return its value.

        Promises are awaited. The value comes back as JSON: undefined becomes
        None, DOM nodes {}. A bare NaN, Infinity or -0 becomes a float and a
        bare BigInt an int; nested in an array or object, those numbers
        become None (as in JSON.stringify) and a BigInt is a CDPError.
        Raises JavaScriptError with the exception's text if the expression
        throws or the promise rejects.
        """
        result = self.send("Runtime.evaluate", {
            "expression": expression,
            "returnByValue": True,
            "awaitPromise": True,
        }, timeout=timeout)
        if "exceptionDetails" in result:
            raise JavaScriptError(
                f"{expression!r} threw: "
                f"{_exception_text(result['exceptionDetails'])}")
        return _remote_value(result["result"])

    def wait_for(self, expression, timeout=30, interval=0.1):
        """Evaluate expression every interval seconds until it is truthy.

        Returns the truthy value. Raises AssertionError naming the expression
        and its last value if that does not happen within timeout seconds.
        Exceptions from the expression propagate at once, so a typo fails
        fast; write ``document.querySelector(s)?.textContent`` for elements
        that may not exist yet.
        """
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"timed out after {timeout:g} s waiting for "
                    f"{expression!r}; last value: {value!r}")
            # Keep reading messages while waiting, so console errors are
            # recorded as they happen and chromium never blocks on a full pipe.
            self._receive_until(min(deadline, time.monotonic() + interval))

    def click(self, selector):
        """Click the centre of the first element matching a CSS selector.

        The element is scrolled into view and real mouse events are
        dispatched (move, press, release of the left button), so the page
        sees the same event sequence as from a user. Raises ElementError if
        nothing matches or the element's centre is hidden or covered.
        """
        point = self.evaluate(_CLICK_POINT_JS % json.dumps(selector))
        if "error" in point:
            raise ElementError(f"cannot click {selector!r}: {point['error']}")
        position = {"x": point["x"], "y": point["y"]}
        self.send("Input.dispatchMouseEvent",
                  {"type": "mouseMoved", **position})
        for kind, buttons in (("mousePressed", 1), ("mouseReleased", 0)):
            self.send("Input.dispatchMouseEvent", {
                "type": kind, "button": "left", "buttons": buttons,
                "clickCount": 1, **position})

    def type_text(self, selector, text):
        """Focus the first element matching selector and type text into it.

        The text is inserted at the caret as if typed or pasted (input events
        fire, key events do not); existing content is kept. Raises
        ElementError if nothing matches or the element cannot take focus.
        """
        error = self.evaluate(_FOCUS_JS % json.dumps(selector))
        if error:
            raise ElementError(f"cannot type into {selector!r}: {error}")
        self.send("Input.insertText", {"text": text})

    def screenshot(self, path):
        """Write a PNG of the viewport to path, creating parent directories."""
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))

    def console_errors(self):
        """Messages of console.error/console.assert calls and uncaught
        exceptions in the page so far, oldest first.

        Failed resource loads (a 404 image, say) are not reported here.
        """
        self._drain()
        return list(self._console_errors)

    def send(self, method, params=None, timeout=None):
        """Send a raw DevTools command to the page; return its result.

        For anything the helpers above do not cover, e.g.
        ``send("Emulation.setDeviceMetricsOverride", {...})``.
        Raises CDPError if chromium answers with an error.
        """
        return self._command(method, params, self._session, timeout)

    # -- Start-up ---------------------------------------------------------

    def _launch(self, chromium, width, height):
        args = [
            chromium,
            "--headless=new",
            # Chromium's sandbox refuses to run as root.
            "--no-sandbox",
            "--disable-gpu",
            # Containers tend to have a small /dev/shm; renderers crash when
            # it fills up.
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--no-default-browser-check",
            "--disable-extensions",
            # A fresh profile per run: no state leaks between tests, and
            # close() can delete it.
            f"--user-data-dir={os.path.join(self._tmpdir, 'profile')}",
            "--remote-debugging-pipe",
            f"--window-size={width},{height}",
            "about:blank",
        ]
        # The child reads commands from command_read (its fd 3) and writes
        # messages to message_write (its fd 4); we keep the other two ends.
        command_read, self._command_fd = os.pipe()
        self._message_fd, message_write = os.pipe()
        try:
            with open(self._stderr_path, "wb") as log:
                # pass_fds=(3, 4) is safe because, with both pipes just
                # created, fds 3 and 4 are certainly open in this process.
                self._proc = subprocess.Popen(
                    args, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                    pass_fds=(3, 4), start_new_session=True,
                    preexec_fn=lambda: _install_pipe_fds(command_read,
                                                         message_write))
        finally:
            # Only the child may hold these ends: chromium's exit must close
            # the last writer of our message pipe so that we read EOF.
            os.close(command_read)
            os.close(message_write)

    def _attach(self, width, height):
        deadline = self._deadline(None)
        # The browser answers commands before it has opened its first tab,
        # so the page target may take a moment to appear. (Other targets,
        # such as "browser_ui" ones for the omnibox, are not pages.)
        while True:
            targets = self._command("Target.getTargets")["targetInfos"]
            pages = [t for t in targets if t["type"] == "page"]
            if pages:
                break
            if time.monotonic() >= deadline:
                raise CDPTimeout("chromium opened no page target; stderr "
                                 f"tail:\n{self._stderr_tail()}")
            self._receive_until(time.monotonic() + 0.05)
        # flatten=True: page commands and events travel on this same pipe,
        # tagged with the session id, instead of being wrapped in
        # Target.sendMessageToTarget envelopes.
        self._session = self._command(
            "Target.attachToTarget",
            {"targetId": pages[0]["targetId"], "flatten": True})["sessionId"]
        self.send("Page.enable")
        self.send("Runtime.enable")
        # headless=new keeps room for window decorations: with
        # --window-size=1280,900 the page only gets 1280x757. Pin the
        # viewport itself so layouts and screenshots have the asked-for size.
        self.send("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height,
            "deviceScaleFactor": 1, "mobile": False})

    # -- Protocol plumbing ------------------------------------------------

    def _deadline(self, timeout):
        if timeout is None:
            timeout = self.timeout
        return time.monotonic() + timeout

    def _command(self, method, params=None, session=None, timeout=None):
        if timeout is None:
            timeout = self.timeout
        deadline = time.monotonic() + timeout
        self._next_id += 1
        message_id = self._next_id
        message = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        self._write(json.dumps(message).encode() + b"\0")
        while message_id not in self._replies:
            if time.monotonic() >= deadline:
                raise CDPTimeout(f"no reply to {method} within {timeout:g} s")
            self._receive_until(deadline)
        reply = self._replies.pop(message_id)
        if "error" in reply:
            error = reply["error"]
            detail = f" {error['data']}" if "data" in error else ""
            raise CDPError(f"{method} failed: {error.get('message')} "
                           f"(code {error.get('code')}){detail}")
        return reply.get("result", {})

    def _write(self, data):
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._command_fd, view):]
        except BrokenPipeError:
            raise self._exited() from None

    def _wait_for_event(self, method, deadline, description):
        while not self._events[method]:
            if time.monotonic() >= deadline:
                raise CDPTimeout(f"timed out waiting for {description}")
            self._receive_until(deadline)
        return self._events[method].popleft()

    def _drain(self):
        """Handle every message chromium has already sent, without waiting."""
        while self._receive(0):
            pass

    def _receive_until(self, deadline):
        """Handle messages until at least one arrives or deadline passes."""
        while not self._receive(max(0.0, deadline - time.monotonic())):
            if time.monotonic() >= deadline:
                return

    def _receive(self, timeout):
        """Read what the pipe holds, waiting up to timeout (capped at
        _POLL_SLICE) for something to arrive; dispatch every complete
        message. Returns whether anything was read."""
        readable, _, _ = select.select([self._message_fd], [], [],
                                       min(timeout, _POLL_SLICE))
        if not readable:
            if self._proc.poll() is not None:
                raise self._exited()
            return False
        chunk = os.read(self._message_fd, 1 << 20)
        if not chunk:
            raise self._exited()
        self._buffer += chunk
        # Large replies (screenshots) arrive in many chunks: only split when
        # this chunk completed a message.
        if b"\0" in chunk:
            *messages, rest = self._buffer.split(b"\0")
            self._buffer = bytearray(rest)
            for raw in messages:
                self._dispatch(json.loads(raw))
        return True

    def _dispatch(self, message):
        if "id" in message:
            self._replies[message["id"]] = message
            return
        # Events from the browser itself or other targets are of no interest.
        if message.get("sessionId") != self._session:
            return
        method, params = message["method"], message.get("params", {})
        if method == "Runtime.consoleAPICalled" and \
                params.get("type") in ("error", "assert"):
            text = " ".join(map(_remote_text, params.get("args", [])))
            self._console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            self._console_errors.append(
                "uncaught: " + _exception_text(params["exceptionDetails"]))
        self._events[method].append(params)

    def _exited(self):
        """The error to raise once chromium is gone or has closed the pipe."""
        try:
            status = f"exit status {self._proc.wait(timeout=5)}"
        except subprocess.TimeoutExpired:
            status = "still running, but it closed the DevTools pipe"
        return BrowserExited(f"chromium is gone ({status}); stderr tail:\n"
                             f"{self._stderr_tail()}")

    def _stderr_tail(self):
        with open(self._stderr_path, "rb") as log:
            size = os.fstat(log.fileno()).st_size
            start = max(0, size - _STDERR_TAIL_BYTES)
            log.seek(start)
            tail = log.read().decode(errors="replace")
        # Start at a line boundary rather than mid-line.
        return tail.partition("\n")[2] if start else tail


def _install_pipe_fds(command_read, message_write):
    """Runs in the forked child before exec: put the pipe ends on fds 3, 4.

    Both ends are first copied above fd 4, because either may itself be fd 3
    or 4 and the first dup2() would then overwrite the other (and dup2() onto
    the same number would leave close-on-exec set). dup2() clears
    close-on-exec on its target; subprocess afterwards closes every other
    descriptor above 2 except pass_fds, including these temporary copies.
    """
    command_read = fcntl.fcntl(command_read, fcntl.F_DUPFD, 5)
    message_write = fcntl.fcntl(message_write, fcntl.F_DUPFD, 5)
    os.dup2(command_read, 3)
    os.dup2(message_write, 4)


def _remote_value(remote):
    """The Python value of a Runtime.RemoteObject fetched by value."""
    if "unserializableValue" in remote:
        text = remote["unserializableValue"]  # NaN, Infinity, -0, or 123n
        return int(text[:-1]) if text.endswith("n") else float(text)
    return remote.get("value")


def _remote_text(remote):
    """A Runtime.RemoteObject as console.log would print it, roughly."""
    if "value" in remote:
        value = remote["value"]
        return value if isinstance(value, str) else json.dumps(value)
    return remote.get("description") or remote.get("unserializableValue") \
        or remote["type"]


def _exception_text(details):
    """The message (with stack, when there is one) of exceptionDetails."""
    exception = details.get("exception")
    if exception is None:  # e.g. a syntax error: there is no thrown object
        return details.get("text", "unknown exception")
    return _remote_text(exception)
