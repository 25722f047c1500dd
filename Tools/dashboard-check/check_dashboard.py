# This file is part of Ivy for Swift. MIT licensed; see LICENSE.
"""`ivy dashboard` from outside, as an operator meets it: the built binary on Redis,
a worker, a bench, the JSON API and /metrics over HTTP, and the page in headless
Chromium (login, live counts, requeue and delete by clicking, lookup, logout).

usage: check_dashboard.py IVY_BINARY REDIS_URL OUTPUT_DIR [README_SCREENSHOT]

Saves OUTPUT_DIR/dashboard.png, taken while the bench runs; with README_SCREENSHOT
it is copied there too (the README's picture). Exits 1 with the reasons when a
check fails. Waits are for conditions, each bounded, never for time alone.
"""

import http.client
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

from prometheus_client.parser import text_string_to_metric_families

from cdp import Browser

QUEUE = "testpackage"
HOSTILE = "<img src=x onerror=\"window.pwned=1\">"


class Check:
    """Collects failures instead of stopping at the first, so one run names them all."""

    def __init__(self):
        self.problems = []

    def __call__(self, condition, what):
        print(("ok      " if condition else "FAILED  ") + what, flush=True)
        if not condition:
            self.problems.append(what)
        return condition


def wait_until(condition, what, timeout=60, interval=0.1):
    """Polls `condition` until it returns something truthy; raises on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


def request(address, method, path, headers=None, body=None):
    """One HTTP request; returns (status, headers, body bytes)."""
    host, port = address.rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def raw(address, data):
    """Sends `data` as is and returns the status of the answer."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as connection:
        connection.sendall(data)
        answer = b""
        while b"\r\n" not in answer:
            chunk = connection.recv(4096)
            if not chunk:
                break
            answer += chunk
    match = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return int(match.group(1)) if match else None


class Processes:
    """The processes a run starts, each logging to a file; all killed at the end."""

    def __init__(self, work):
        self.work = work
        self.running = []

    def start(self, name, arguments):
        log = open(os.path.join(self.work, name + ".log"), "wb")
        process = subprocess.Popen(arguments, stdout=log, stderr=subprocess.STDOUT)
        process.log_path = log.name
        self.running.append(process)
        return process

    def log(self, process):
        with open(process.log_path, encoding="utf-8", errors="replace") as file:
            return file.read()

    def stop(self, process, timeout=30):
        """SIGINT, as an operator's ^C; returns the exit status."""
        process.send_signal(signal.SIGINT)
        return process.wait(timeout=timeout)

    def kill_all(self):
        for process in self.running:
            if process.poll() is None:
                process.kill()
                process.wait()


def main(ivy, url, output, readme_screenshot=None):
    check = Check()
    work = tempfile.mkdtemp(prefix="ivy-dashboard-test.")
    processes = Processes(work)
    try:
        run(ivy, url, output, readme_screenshot, work, processes, check)
    finally:
        processes.kill_all()
        shutil.rmtree(work, ignore_errors=True)
    if check.problems:
        print("dashboard-test: failed: " + "; ".join(check.problems), file=sys.stderr)
        sys.exit(1)


def run(ivy, url, output, readme_screenshot, work, processes, check):
    def ivy_run(*arguments, ok=True):
        result = subprocess.run([ivy, *arguments], capture_output=True, text=True, timeout=120)
        if ok and result.returncode != 0:
            raise AssertionError(f"ivy {' '.join(arguments)}: {result.returncode} {result.stderr}")
        return result

    # Refusals before anything listens: no token beyond loopback, a short token.
    refused = ivy_run("dashboard", "--queue", url, "--listen", "0.0.0.0:0", ok=False)
    check(refused.returncode == 3 and "loopback" in refused.stderr,
          f"no token on 0.0.0.0 is refused (exit {refused.returncode}: {refused.stderr.strip()})")
    short = os.path.join(work, "short-token")
    with open(short, "w") as file:
        file.write("tooshort\n")
    refused = ivy_run("dashboard", "--queue", url, "--token-file", short, ok=False)
    check(refused.returncode == 2 and "16 characters" in refused.stderr,
          f"a short token is refused (exit {refused.returncode})")

    token = secrets.token_hex(24)
    token_file = os.path.join(work, "token")
    with open(token_file, "w") as file:
        file.write(token + "\n")
    os.chmod(token_file, 0o600)
    # The database is this test's own: emptied, reservations and announcements of an earlier
    # run included (a purge leaves reserved messages, which would come back and be counted).
    subprocess.run(["redis-cli", "-u", url, "FLUSHDB"], check=True, capture_output=True, timeout=60)

    dashboard = processes.start("dashboard", [
        ivy, "dashboard", "--queue", url, "--listen", "127.0.0.1:0", "--token-file", token_file])
    address = wait_until(
        lambda: (re.search(r"http://(127\.0\.0\.1:\d+)/", processes.log(dashboard)) or [None, None])[1]
        or (dashboard.poll() is not None and AssertionError(processes.log(dashboard))),
        "the dashboard to print its address")
    if isinstance(address, AssertionError):
        raise address
    check(token not in processes.log(dashboard), "the token is not in the dashboard's output")
    worker = processes.start("worker", [ivy, "worker", "--queue", url, "-c", "4"])

    failed_ids = []
    # The second carries markup, which reaches the page as the error, the reason and the body:
    # shown as text, it creates no element and runs nothing.
    for word in ("first", HOSTILE):
        result = ivy_run("call", "--queue", url, "--wait", "--json", "testpackage.fail", json.dumps(word), ok=False)
        check(result.returncode == 1, f"testpackage.fail {word} fails (exit {result.returncode})")
        failed_ids.append(json.loads(result.stdout)["id"])
    for n in (3, 4, 5):
        ivy_run("call", "--queue", url, "--wait", "testpackage.factorial", str(n))

    bearer = {"Authorization": "Bearer " + token}
    http_checks(address, bearer, token, worker.pid, failed_ids, check)

    with Browser() as browser:
        browser_checks(browser, ivy, url, address, token, worker, processes, failed_ids, output,
                       readme_screenshot, check)

    status = processes.stop(dashboard)
    check(status == 0, f"the dashboard stops on SIGINT with status 0 (got {status})")
    check("SIGINT received" in processes.log(dashboard), "and says so")


def http_checks(address, bearer, token, worker_pid, failed_ids, check):
    status, headers, _ = request(address, "GET", "/api/backends/0")
    check(status == 401 and "Bearer" in headers.get("WWW-Authenticate", ""), f"the API without the token: 401 ({status})")
    status, headers, _ = request(address, "GET", "/backends/0")
    check(status == 303 and headers.get("Location") == "/login", f"a page without the token: to the login form ({status})")
    status, _, _ = request(address, "GET", "/metrics", {"Authorization": "Bearer " + "0" * len(token)})
    check(status == 401, f"/metrics with a wrong token: 401 ({status})")
    status, _, _ = request(address, "POST", "/login", {"Content-Type": "application/x-www-form-urlencoded"},
                           b"token=wrong-token-of-some-length")
    check(status == 401, f"a wrong token at the login form: 401 ({status})")

    def report():
        status, _, body = request(address, "GET", "/api/backends/0", bearer)
        return json.loads(body) if status == 200 else None

    def worker_done():
        current = report()
        if not current:
            return None
        mine = [w for w in current["workers"] if w["pid"] == worker_pid]
        queue = [q for q in current["queues"] if q["name"] == QUEUE]
        if mine and mine[0]["succeeded"] == 3 and mine[0]["failed"] == 2 and queue and queue[0]["dead"] == 2:
            return current
        return None

    current = wait_until(worker_done, "the worker's announcement of 3 successes and 2 failures", timeout=60)
    mine = next(w for w in current["workers"] if w["pid"] == worker_pid)
    check(mine["queues"] == [QUEUE] and mine["concurrency"] == 4, f"the worker's queues and concurrency: {mine}")
    failures = [f for f in current["failures"] if f["taskID"] in failed_ids]
    check(sorted({f["kind"] for f in failures}) == ["failed", "retried"]
          and sum(f["kind"] == "failed" for f in failures) == 2, f"recent failures: {failures}")
    check(token not in json.dumps(current), "the token is not in the API's answer")

    status, headers, body = request(address, "GET", "/metrics", bearer)
    families = {family.name: family for family in text_string_to_metric_families(body.decode())}

    def value(family, name, **labels):
        for sample in families[family].samples if family in families else []:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
        return None

    check(status == 200 and headers.get("Content-Type", "").startswith("text/plain; version=0.0.4"),
          f"/metrics answers in the text format ({status})")
    check(value("ivy_queue_messages", "ivy_queue_messages", queue=QUEUE, state="dead") == 2,
          "/metrics: 2 dead in the queue")
    check((value("ivy_workers", "ivy_workers") or 0) >= 1, "/metrics: workers alive")
    check(value("ivy_worker_tasks", "ivy_worker_tasks_total", worker=mine["id"], task="testpackage.factorial",
                outcome="succeeded") == 3, "/metrics: the worker's 3 successes")
    check(value("ivy_worker_tasks", "ivy_worker_tasks_total", worker=mine["id"], task="testpackage.fail",
                outcome="failed") == 2, "/metrics: the worker's 2 failures")

    check(value("ivy_worker_task_run_seconds", "ivy_worker_task_run_seconds_count", worker=mine["id"],
                task="testpackage.factorial") == 3, "/metrics: the worker's 3 run times")
    check(value("ivy_worker_task_result_latency_seconds", "ivy_worker_task_result_latency_seconds_count",
                worker=mine["id"], task="testpackage.fail") == 2, "/metrics: result latency of the 2 failed calls")
    status, _, body = request(address, "GET", "/api/tasks?id=" + failed_ids[0], bearer)
    check(status == 200 and json.loads(body)["state"] == "failed", f"a failed call's status by id ({status})")
    status, _, body = request(address, "POST", "/api/backends/0/dead/requeue",
                              {**bearer, "Content-Type": "application/json"},
                              json.dumps({"queue": QUEUE, "id": "x"}).encode())
    check(status == 403, f"a change without the CSRF token: 403 ({status})")
    check(raw(address, b"NOT HTTP AT ALL\r\n\r\n") == 400, "a malformed request: 400")
    oversized = (b"POST /api/backends/0/dead/requeue HTTP/1.1\r\nHost: x\r\nContent-Length: 4194304\r\n"
                 b"Authorization: Bearer " + token.encode() + b"\r\n\r\n")
    check(raw(address, oversized) == 413, "a body past the limit: 413")
    status, _, _ = request(address, "GET", "/api/backends/0", bearer)
    check(status == 200, f"the server still answers after them ({status})")


def cell(browser, column):
    return browser.evaluate(
        f"document.querySelector('tr[data-queue=\"{QUEUE}\"] td.{column}')?.textContent ?? null")


def browser_checks(browser, ivy, url, address, token, worker, processes, failed_ids, output,
                   readme_screenshot, check):
    browser.navigate(f"http://{address}/")
    check(browser.evaluate("location.pathname") == "/login", "the browser is sent to the login form")
    browser.type_text("input[name=token]", token)
    browser.click("button[type=submit]")
    browser.wait_for("location.pathname === '/backends/0'")
    browser.wait_for(f"document.querySelector('tr[data-queue=\"{QUEUE}\"] td.dead')?.textContent === '2'")
    check(True, "logged in: the page shows the queue with 2 dead letters")
    browser.wait_for(f"[...document.querySelectorAll('#workers tr')].some(r => r.cells[2]?.textContent === '{worker.pid}')")
    check(True, "the worker is listed with its pid")
    browser.wait_for("document.querySelector('#failures').textContent.includes('TestFailure')")
    check(True, "its failures are listed")
    check(browser.evaluate(f"document.querySelector('#failures').textContent.includes({json.dumps(HOSTILE)})"),
          "markup in an error is shown as text")

    # A bench long enough to outlast the checks, stopped once they are made; few calls at once,
    # so that on two shared cores it leaves the browser and the dashboard room.
    bench = processes.start("bench", [
        ivy, "bench", "--queue", url, "-n", "1000000", "-c", "4", "--phases", "roundtrip"])
    seen = set()
    top_rate = 0.0
    busy_since = None
    shot = os.path.join(output, "dashboard.png")
    if os.path.exists(shot):
        os.remove(shot)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and bench.poll() is None:
        # Counted from when the bench's own worker has announced work: before, the queue's
        # throughput is that of the earlier calls.
        done = browser.evaluate(
            f"[...document.querySelectorAll('#workers tr')].find(r => r.cells[2]?.textContent === '{bench.pid}')"
            "?.cells[5].textContent ?? '0'")
        if busy_since is None and int(done.replace(",", "")) > 0:
            busy_since = time.monotonic()
        if busy_since is not None:
            seen.add((cell(browser, "ready"), cell(browser, "reserved")))
            rate = browser.evaluate(
                f"document.querySelector('tr[data-queue=\"{QUEUE}\"] .rate')?.textContent ?? '0/s'")
            top_rate = max(top_rate, float(rate.rstrip("/s").replace(",", "")))
            # Done once the counts have moved and the sparkline has 10 s of the bench: the
            # README's picture is taken then.
            if len(seen) >= 3 and top_rate > 0 and time.monotonic() - busy_since > 10:
                browser.screenshot(shot)
                break
        time.sleep(0.2)
    check(bench.poll() is None, f"the bench ran throughout (exit {bench.poll()}): {processes.log(bench)[-500:]}")
    bench.send_signal(signal.SIGINT)
    bench.wait(timeout=60)
    check(len(seen) >= 3, f"the queue's counts change while the bench runs: {sorted(seen, key=str)[:8]}")
    check(top_rate > 0, f"its throughput shows calls ending: up to {top_rate}/s")
    check(os.path.exists(shot), f"a screenshot while it ran: {shot}")
    if readme_screenshot and os.path.exists(shot):
        shutil.copyfile(shot, readme_screenshot)

    check(processes.stop(worker) == 0, "the worker drains on SIGINT")
    # What the bench left queued goes, so that the requeue below is the one ready message.
    subprocess.run([ivy, "queue", "purge", QUEUE, "--queue", url, "--yes"], capture_output=True, timeout=60,
                   check=True)
    browser.wait_for(f"![...document.querySelectorAll('#workers tr')].some(r => r.cells[2]?.textContent === '{worker.pid}')")
    check(True, "a stopped worker leaves the list")

    browser.click(f"button.show-dead[data-queue=\"{QUEUE}\"]")
    browser.wait_for("document.querySelectorAll('#dead button.requeue').length === 2")
    browser.click("#dead button.requeue")
    browser.wait_for("document.querySelector('#message').textContent.startsWith('Requeued')")
    browser.wait_for(f"document.querySelector('tr[data-queue=\"{QUEUE}\"] td.dead')?.textContent === '1' "
                     f"&& document.querySelector('tr[data-queue=\"{QUEUE}\"] td.ready')?.textContent === '1'")
    check(True, "a click on Requeue moves a dead letter back: 1 ready, 1 dead")
    browser.click("#dead button.delete")
    browser.wait_for("document.querySelector('#dead button.delete')?.textContent === 'Really delete?'")
    browser.click("#dead button.delete")
    browser.wait_for(f"document.querySelector('tr[data-queue=\"{QUEUE}\"] td.dead')?.textContent === '0'")
    check(True, "two clicks on Delete delete the other")
    size = json.loads(subprocess.run([ivy, "queue", "size", QUEUE, "--queue", url, "--json"],
                                     capture_output=True, text=True, timeout=60).stdout)
    check(size.get("ready") == 1 and size.get("dead") == 0, f"ivy queue size agrees: {size}")

    browser.type_text("#task-id", failed_ids[1])
    browser.click("#lookup button")
    browser.wait_for("document.querySelector('#status-result .state-failed')?.textContent === 'failed'")
    check(True, "a lookup by id shows the call failed")
    check(browser.console_errors() == [], f"no script error on the page: {browser.console_errors()}")
    check(browser.evaluate("window.pwned === undefined && document.querySelectorAll('img').length === 0"),
          "the markup in errors, reasons and bodies created no element and ran nothing")

    browser.click("#logout")
    browser.wait_for("location.pathname === '/login'")
    status = browser.evaluate("fetch('/api/backends/0').then(r => r.status)")
    check(status == 401, f"after logging out, the API refuses the browser ({status})")


if __name__ == "__main__":
    if len(sys.argv) not in (4, 5):
        sys.exit(__doc__)
    main(*sys.argv[1:])
