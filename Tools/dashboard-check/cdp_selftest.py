# This file is part of Ivy for Swift. MIT licensed; see LICENSE.
"""Self-test for cdp.py: drive a tiny counter page in headless chromium.

Serves a page on 127.0.0.1 (random port) whose button POSTs to the server,
which increments a counter; the page shows the value the server returns.
The test loads the page, clicks the button with real mouse events, checks
that the server counted the click and the page shows it, types into a text
field, takes a screenshot and asserts that the page logged no errors. It
also checks that the failure paths raise what cdp.py documents.

Run: python3 cdp_selftest.py    (needs: apt-get install -y chromium)
Exits non-zero on failure; the screenshot goes to /tmp/cdp-selftest.png.
"""

import http.server
import json
import struct
import threading
import time

import cdp

SCREENSHOT = "/tmp/cdp-selftest.png"
WIDTH, HEIGHT = 1280, 900

PAGE = b"""<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>cdp.py self-test</title>
<link rel="icon" href="data:,">
<style>
  body { font: 24px sans-serif; margin: 48px; }
  button, input { font: inherit; padding: 8px 16px; }
</style>
<h1>cdp.py self-test</h1>
<p>Count: <span id="count">loading</span></p>
<p><button id="increment">Increment</button></p>
<p><input id="name" placeholder="Your name"> <span id="greeting"></span></p>
<script>
  const count = document.getElementById('count');
  const show = async (response) => {
    count.textContent = String((await response.json()).count);
  };
  fetch('/count').then(show);
  document.getElementById('increment').addEventListener('click', () => {
    fetch('/increment', {method: 'POST'}).then(show);
  });
  document.getElementById('name').addEventListener('input', (event) => {
    document.getElementById('greeting').textContent =
      'Hello, ' + event.target.value + '!';
  });
</script>
</html>
"""


class CounterServer(http.server.ThreadingHTTPServer):
    """Serves PAGE and a counter that POST /increment bumps."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), CounterHandler)
        self.count = 0
        self.lock = threading.Lock()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/"


class CounterHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/":
            self._reply(200, "text/html; charset=utf-8", PAGE)
        elif self.path == "/count":
            with self.server.lock:
                self._reply_count(self.server.count)
        else:
            self._reply(404, "text/plain", b"not found\n")

    def do_POST(self):
        if self.path != "/increment":
            self._reply(404, "text/plain", b"not found\n")
            return
        with self.server.lock:
            self.server.count += 1
            self._reply_count(self.server.count)

    def _reply_count(self, count):
        self._reply(200, "application/json",
                    json.dumps({"count": count}).encode())

    def _reply(self, status, content_type, body):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass  # keep the test's output to its own lines


def png_size(path):
    """(width, height) from a PNG's IHDR chunk."""
    with open(path, "rb") as file:
        header = file.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def expect_raises(exception, call, *args):
    try:
        call(*args)
    except exception as error:
        return error
    raise AssertionError(f"{call.__name__}{args!r} did not raise "
                         f"{exception.__name__}")


def main():
    server = CounterServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with cdp.Browser(width=WIDTH, height=HEIGHT) as browser:
            print(f"chromium ready in {time.monotonic() - started:.2f} s")

            browser.navigate(server.url)
            count = "document.getElementById('count').textContent"
            browser.wait_for(f"{count} === '0'")

            browser.click("#increment")
            browser.wait_for(f"{count} === '1'")
            assert server.count == 1, f"server counted {server.count} clicks"

            browser.type_text("#name", "Ivy")
            assert browser.evaluate(
                "document.getElementById('name').value") == "Ivy"
            browser.wait_for("document.getElementById('greeting')"
                             ".textContent === 'Hello, Ivy!'")

            browser.screenshot(SCREENSHOT)
            size = png_size(SCREENSHOT)
            assert size == (WIDTH, HEIGHT), f"screenshot is {size}"

            errors = browser.console_errors()
            assert not errors, f"page logged errors: {errors}"

            # The failure paths, so that a broken helper cannot pass silently.
            expect_raises(cdp.ElementError, browser.click, "#missing")
            expect_raises(cdp.JavaScriptError, browser.evaluate,
                          "null.property")
            expect_raises(cdp.JavaScriptError, browser.evaluate,
                          "Promise.reject(new Error('rejected'))")
            error = expect_raises(AssertionError, browser.wait_for,
                                  f"{count} === '2'", 0.3)
            assert "last value: False" in str(error), error
            expect_raises(cdp.NavigationError, browser.navigate,
                          "http://127.0.0.1:1/")
            browser.evaluate("console.error('deliberate', 42)")
            errors = browser.console_errors()
            assert errors == ["console.error: deliberate 42"], errors
    finally:
        server.shutdown()
        server.server_close()
    print(f"cdp self-test passed; screenshot: {SCREENSHOT}")


if __name__ == "__main__":
    main()
