// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// `ivy worker --exec`: commands in any language serving tasks, called through a real Redis.
@Suite("ivy worker --exec")
struct ExecCommandTests {
    /// Task names under a prefix of their own, which is also their queue: the worker serves only
    /// it, so that it takes no other test's calls.
    private let prefix = "exec\(UUID().uuidString.prefix(8).lowercased())"

    private func task(_ name: String) throws -> UntypedTask {
        try UntypedTask(name: "\(prefix).\(name)", options: TaskOptions(queue: QueueName(prefix)))
    }

    private func json(_ texts: String...) throws -> [RawJSON] {
        try texts.map { try RawJSON(validating: $0) }
    }

    /// Redis's URL, or a skip (a failure with `IVY_REQUIRE_SERVICES=1`) when it is not running.
    private func redisURL(database: Int? = nil) throws -> String {
        let redis = try #require(URLComponents(string: Services.redisURL))
        guard Services.accepts(host: redis.host ?? "127.0.0.1", port: redis.port ?? 6379) else {
            try Services.unavailable("Redis at \(Services.redisURL)", CancellationError())
        }
        var url = redis
        if let database { url.path = "/\(database)" }
        return try #require(url.string)
    }

    /// Runs `ivy worker` with `arguments` on Redis, and `body` with a client of the same Redis,
    /// then stops the worker with SIGTERM and expects a clean exit.
    private func withWorker(
        _ arguments: [String], database: Int? = nil, _ body: (IvyClient, IvyProcess) async throws -> Void
    ) async throws {
        let url = try redisURL(database: database)
        let worker = try IvyProcess(["worker", "--queue", url] + arguments)
        try await withDeadline(.seconds(60), "the worker to start") {
            await worker.waitForStderr(containing: "ivy worker: serving")
        }
        let client: IvyClient
        do { client = try await IvyClient(registry: TaskRegistry(), queue: .url(url)) } catch {
            kill(worker.processIdentifier, SIGKILL)
            throw error
        }
        var failure: (any Error)?
        do { try await body(client, worker) } catch { failure = error }
        await client.close()
        kill(worker.processIdentifier, SIGTERM)
        let finished = try await withDeadline(.seconds(60), "the worker to stop") { await worker.finish() }
        #expect(finished.status == 0, "stderr: \(finished.stderr)")
        if let failure { throw failure }
    }

    private func python() throws -> String {
        try #require(Services.executable("python3"), "python3 is needed on PATH")
    }

    @Test func aResultReachesCallJSONByteForByte() async throws {
        let url = try redisURL()
        try await withWorker([
            "--queues", prefix, "--exec", #"\#(prefix).big=printf '[12345678901234567890,1.0]'"#,
        ]) {
            _, _ in
            let call = try await IvyProcess.run([
                "call", "\(prefix).big", "--wait", "--json", "--queue", url, "--timeout", "60",
            ])
            #expect(call.status == 0, "stderr: \(call.stderr)")
            #expect(call.stdout.contains(#""result":[12345678901234567890,1.0]"#), "\(call.stdout)")
        }
    }

    @Test func theMessageKeyIsNotPassedToCommands() async throws {
        let url = try redisURL()
        let key = ["MESSAGES_ENCRYPTION_KEY": "exec-secret-key-7"]
        let worker = try IvyProcess(
            [
                "worker", "--queue", url, "--queues", prefix,
                "--exec", #"\#(prefix).env=printf '"%s"' "${MESSAGES_ENCRYPTION_KEY-unset}""#,
            ], environment: key)
        defer { kill(worker.processIdentifier, SIGKILL) }
        try await withDeadline(.seconds(60), "the worker to start") {
            await worker.waitForStderr(containing: "ivy worker: serving")
        }
        // An encrypted call through the command line: the worker has the key, its command not.
        let call = try await IvyProcess.run(
            ["call", "\(prefix).env", "--wait", "--queue", url, "--timeout", "60"], environment: key)
        #expect(call.status == 0, "stderr: \(call.stderr)")
        #expect(call.stdout == "\"unset\"\n")
        kill(worker.processIdentifier, SIGTERM)
        #expect(await worker.finish().status == 0)
    }

    @Test func pythonAndShellHandlersServeTasksBesideTheExamples() async throws {
        let python = try python()
        try await withTemporaryDirectory { directory in
            let script = directory.appendingPathComponent("handler.py")
            try """
            import json, os, sys
            args = json.load(sys.stdin)
            json.dump({"args": args, "id": os.environ["IVY_TASK_ID"],
                       "name": os.environ["IVY_TASK_NAME"], "attempt": os.environ["IVY_ATTEMPT"]},
                      sys.stdout, sort_keys=True, separators=(",", ":"))
            """.write(to: script, atomically: true, encoding: .utf8)
            // A database of its own: this worker also serves the example tasks' queue, which other
            // tests' workers serve in database 0.
            try await withWorker(
                [
                    "--exec",
                    "\(prefix).sum=\(python) -c 'import json,sys; print(sum(json.load(sys.stdin)))'",
                    "--exec", "\(prefix).script=\(python) \(script.path)",
                    "--exec", "\(prefix).upper=tr a-z A-Z",
                ], database: 11
            ) { client, _ in
                #expect(try await client.call(task("sum"), arguments: json("1", "2", "39.5")).text == "42.5")
                #expect(
                    try await client.call(task("upper"), arguments: json(#""shell""#, #"{"k":"v"}"#)).text
                        == #"["SHELL",{"K":"V"}]"#)
                let pending = try await client.delayedCall(task("script"), arguments: json(#""é""#, "[null]"))
                let result = try await pending.value.text
                #expect(
                    result
                        == #"{"args":["\u00e9",[null]],"attempt":"1","id":"\#(pending.taskID)","name":"\#(prefix).script"}"#
                )
                // The example tasks are served too.
                let add = try UntypedTask(name: "testpackage.add", options: TaskOptions(queue: "testpackage"))
                #expect(try await client.call(add, arguments: json("40", "2")).text == "42")
            }
        }
    }

    @Test func aFailingHandlersCallerGetsTheRemoteError() async throws {
        try await withWorker([
            "--queues", prefix,
            "--exec", #"\#(prefix).fail=echo noise >&2; echo "no such customer: $(cat)" >&2; exit 3"#,
            "--exec", "\(prefix).garbled=echo 'this is not JSON'",
        ]) { client, _ in
            let failed = await #expect(throws: RemoteTaskError.self) {
                try await client.call(task("fail"), arguments: json("42"))
            }
            #expect(failed?.name == "CommandFailed")
            #expect(failed?.message == "no such customer: [42]")
            #expect(failed?.attempt == 1)
            #expect(failed?.retryable == true)
            let garbled = await #expect(throws: RemoteTaskError.self) {
                try await client.call(task("garbled"), arguments: [])
            }
            #expect(garbled?.name == "InvalidCommandOutput")
            #expect(garbled?.retryable == false)
        }
    }

    @Test func retriesRunTheCommandAgainWithTheNextAttempt() async throws {
        let flaky = """
            if [ "$IVY_ATTEMPT" = 1 ]; then echo "attempt 1 fails" >&2; exit 1; fi; \
            printf '"ok on attempt %s"' "$IVY_ATTEMPT"
            """
        try await withWorker([
            "--queues", prefix, "--exec-attempts", "2",
            "--exec", "\(prefix).flaky=\(flaky)",
            "--exec", "\(prefix).once[attempts=1]=\(flaky)",
        ]) { client, _ in
            let retried = try await client.call(task("flaky"), arguments: [])
            #expect(retried.text == #""ok on attempt 2""#)
            let once = await #expect(throws: RemoteTaskError.self) {
                try await client.call(task("once"), arguments: [])
            }
            #expect(once?.message == "attempt 1 fails")
        }
    }

    @Test func aTimedOutHandlerLeavesNoProcessBehind() async throws {
        try await withTemporaryDirectory { directory in
            // The shell and its background sleep write their pids first: the file proves the
            // command ran before its timeout, and names what must be gone after it.
            let pids = directory.appendingPathComponent("pids").path
            try await withWorker([
                "--queues", prefix, "--exec",
                "\(prefix).slow[timeout=1]=echo $$ > \(pids).new; sleep 1000 & echo $! >> \(pids).new; mv \(pids).new \(pids); wait",
            ]) { client, _ in
                let timedOut = await #expect(throws: RemoteTaskError.self) {
                    try await client.call(task("slow"), arguments: [])
                }
                #expect(timedOut?.name == "TaskTimedOut")
                let identifiers = Processes.identifiers(in: URL(fileURLWithPath: pids))
                #expect(identifiers.count == 2, "the command did not start before its timeout")
                try await waitUntil("the command's processes to be gone") {
                    identifiers.allSatisfy(Processes.isGone)
                }
            }
        }
    }

    @Test func aWorkerStoppedPastItsGraceKillsTheCommandsItRuns() async throws {
        let marker = "sleep \(Int.random(in: 1_000_000...9_999_999))"
        let url = try redisURL()
        let worker = try IvyProcess([
            "worker", "--queue", url, "--queues", prefix, "--grace", "0",
            "--exec", "\(prefix).long=\(marker) & \(marker)",
        ])
        try await withDeadline(.seconds(60), "the worker to start") {
            await worker.waitForStderr(containing: "ivy worker: serving")
        }
        let client = try await IvyClient(registry: TaskRegistry(), queue: .url(url))
        _ = try await client.enqueue(task("long"), arguments: [])
        await client.close()
        let others: @Sendable () -> [Int32] = {
            Processes.matching(marker).filter { $0 != worker.processIdentifier }
        }
        try await waitUntil("the command to run") { others().count >= 2 }
        kill(worker.processIdentifier, SIGTERM)
        let finished = try await withDeadline(.seconds(60), "the worker to stop") { await worker.finish() }
        #expect(finished.status == 0, "stderr: \(finished.stderr)")
        try await waitUntil("the command's processes to be gone") { others().isEmpty }
    }

    @Test(arguments: [
        ["--exec", "no-command"], ["--exec", "a.b="], ["--exec", "a.b=  "], ["--exec", "nodots=echo 1"],
        ["--exec", "=echo 1"], ["--exec", "a b.c=echo 1"], ["--exec", "a.b\nc=echo 1"],
        ["--exec", "a.b[timeout=0]=echo 1"], ["--exec", "a.b[timeout=soon]=echo 1"],
        ["--exec", "a.b[attempts=0]=echo 1"], ["--exec", "a.b[retries=2]=echo 1"],
        ["--exec", "a.b[queue=a b]=echo 1"], ["--exec", "a.b[timeout=1=echo 1"],
        ["--exec", "a.b[timeout=1]echo 1"], ["--exec", "a.b[timeout=1,timeout=2]=echo 1"],
        ["--exec", "a.b=echo 1", "--exec", "a.b=echo 2"], ["--exec", "testpackage.add=echo 1"],
        ["--exec-timeout", "0"], ["--exec-attempts", "0"], ["--exec"],
    ])
    func badExecOptionsAreRejectedWithOneLineAndExitCode2(_ arguments: [String]) async throws {
        let run = try await IvyProcess.run(["worker"] + arguments)
        #expect(run.status == 2, "stderr: \(run.stderr)")
        #expect(run.stdout.isEmpty)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(run.stderr)")
        #expect(lines.first?.hasPrefix("ivy worker: ") == true, "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("serving"), "nothing starts before the arguments are checked")
    }
}
