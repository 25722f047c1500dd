// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `ivy` binary as an operator and a script use it, on every backend another process can
/// reach: `call`, `queue`, `worker --json`. Results go through Redis.
@Suite("Operator commands")
struct OperatorCommandTests {
    /// Words that must never reach any output: the test servers' secrets.
    private static let secrets = ["ivy-test-password", "ivy-test-token"]

    @Test(arguments: ConformanceBackend.outOfProcess)
    func callWaitsForTheResultAndTheRemoteError(_ kind: ConformanceBackend) async throws {
        let url = try #require(kind.processURL)
        let queue = "call-\(UUID().uuidString.prefix(8).lowercased())"
        try await requireServers(kind, url)
        let worker = try IvyProcess([
            "worker", "--queue", url, "--notify", Services.redisURL, "--queues", queue, "--json",
        ])
        defer { kill(worker.processIdentifier, SIGKILL) }
        let target = [
            "--queue", url, "--notify", Services.redisURL, "--task-queue", queue, "--timeout", "60",
        ]

        let plain = try await IvyProcess.run(["call", "testpackage.factorial", "5", "--wait"] + target)
        #expect(plain.status == 0, "stderr: \(plain.stderr)")
        #expect(plain.stdout == "120\n")

        let json = try await IvyProcess.run(
            ["call", "testpackage.echo", #""ünï \"quoted\"""#, "--wait", "--json"] + target)
        #expect(json.status == 0, "stderr: \(json.stderr)")
        let object = try Self.object(json.stdout)
        #expect(object["result"] as? String == "ünï \"quoted\"")
        #expect(object["task"] as? String == "testpackage.echo")
        #expect(object["queue"] as? String == queue)

        let sleep = try await IvyProcess.run(["call", "testpackage.sleep", "1100", "--wait"] + target)
        #expect(sleep.stdout == "1100\n", "stderr: \(sleep.stderr)")
        let failed = try await IvyProcess.run(
            ["call", "testpackage.factorial", "25", "--wait", "--json"] + target)
        #expect(failed.status == 1)
        let error = try #require(try Self.object(failed.stdout)["error"] as? [String: Any])
        #expect(error["name"] as? String == "OverflowError")
        #expect(failed.stderr.contains("OverflowError"))

        // The worker's events, one JSON object per line on its stdout.
        kill(worker.processIdentifier, SIGTERM)
        let stopped = try await withDeadline(.seconds(60), "the worker to stop") { await worker.finish() }
        #expect(stopped.status == 0, "stderr: \(stopped.stderr)")
        let events = try stopped.stdoutLines.map(Self.object)
        #expect(
            events.contains {
                $0["event"] as? String == "succeeded" && $0["task"] as? String == "testpackage.factorial"
            })
        #expect(
            events.contains {
                $0["event"] as? String == "failed"
                    && ($0["error"] as? String)?.contains("OverflowError") == true
            })
        #expect(events.allSatisfy { $0["time"] is String && $0["queue"] as? String == queue })
        // Durations of a second or more, in milliseconds.
        let slept = events.first {
            $0["event"] as? String == "succeeded" && $0["task"] as? String == "testpackage.sleep"
        }
        let sleptFor = try #require(slept?["duration_ms"] as? Double)
        #expect(sleptFor >= 1100 && sleptFor < 600_000, "duration_ms \(sleptFor)")
        for run in [plain, json, failed, stopped] { Self.expectNoSecret(run) }
    }

    @Test(arguments: ConformanceBackend.outOfProcess)
    func queueAdministrationShowsAndFixesAQueue(_ kind: ConformanceBackend) async throws {
        let url = try #require(kind.processURL)
        let queue = "ops-\(UUID().uuidString.prefix(8).lowercased())"
        try await requireServers(kind, url)
        let at = ["--queue", url]
        var runs: [IvyProcess.Finished] = []
        func ivy(_ arguments: [String]) async throws -> IvyProcess.Finished {
            let run = try await IvyProcess.run(arguments + at)
            runs.append(run)
            return run
        }

        // Four calls of a task nobody registered, queued without waiting.
        var ids: [String] = []
        for n in 1...4 {
            let sent = try await ivy(["call", "\(queue).missing", "\(n)", "{\"n\":[\(n)]}", "--json"])
            #expect(sent.status == 0, "stderr: \(sent.stderr)")
            ids.append(try #require(try Self.object(sent.stdout)["id"] as? String))
        }
        let size = try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)
        let live =
            (size["ready"] as? Int ?? 0) + (size["delayed"] as? Int ?? 0) + (size["reserved"] as? Int ?? 0)
        #expect(live == 4)
        #expect(size["dead"] as? Int == 0)

        let peek = try await ivy(["queue", "peek", queue, "-n", "2", "--json"])
        #expect(peek.status == 0, "stderr: \(peek.stderr)")
        let peeked = try #require(try Self.object(peek.stdout)["messages"] as? [[String: Any]])
        #expect(peeked.count == 2)
        for message in peeked {
            let body = try #require(message["body"] as? [String: Any])
            #expect(body["name"] as? String == "\(queue).missing")
            #expect(ids.contains(body["id"] as? String ?? ""))
        }

        // A worker serving the queue knows no such task: each call goes to the dead letter.
        let worker = try IvyProcess([
            "worker", "--queue", url, "--notify", Services.redisURL, "--queues", queue, "--events",
        ])
        try await withDeadline(.seconds(60), "four dead letters") {
            await worker.waitForStderr { text in
                text.split(separator: "\n").count { $0.contains(" deadLettered ") || $0.contains(" failed ") }
                    >= 4
            }
        }
        kill(worker.processIdentifier, SIGTERM)
        runs.append(await worker.finish())

        let dead = try await ivy(["queue", "dead", queue, "--json"])
        let letters = try #require(try Self.object(dead.stdout)["messages"] as? [[String: Any]])
        #expect(letters.count == 4)
        for letter in letters {
            #expect((letter["reason"] as? String)?.contains("\(queue).missing") == true, "\(letter)")
            #expect((letter["attempts"] as? Int ?? 0) >= 1)
            #expect(letter["dead_lettered_at"] is String)
            #expect((letter["body"] as? [String: Any])?["name"] as? String == "\(queue).missing")
        }
        let human = try await ivy(["queue", "dead", queue])
        #expect(human.stdout.contains("reason: "))

        // One dead letter back by its id; an id no dead letter has is exit status 1 and named.
        let chosen = try #require(letters[1]["id"] as? String)
        let byID = try Self.object(
            try await ivy(["queue", "requeue-dead", queue, "--id", chosen, "--json"]).stdout)
        #expect(byID["count"] as? Int == 1)
        let unknown = try await ivy(["queue", "requeue-dead", queue, "--id", "no-such-id", "--json"])
        #expect(unknown.status == 1)
        #expect(try Self.object(unknown.stdout)["missing"] as? [String] == ["no-such-id"])
        #expect(unknown.stderr.contains("no-such-id"))
        // The dead letters as a listing shows them (a quorum queue's count can lag a look behind).
        let left = try Self.object(try await ivy(["queue", "dead", queue, "--json"]).stdout)["messages"]
        let leftIDs = (left as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(leftIDs.count == 3 && !leftIDs.contains(chosen))

        // One deleted by its id, the others left; it cannot be deleted again, and an unknown id
        // is exit status 1 and named, as for requeue-dead.
        let doomed = try #require(leftIDs.first)
        let deleted = try await ivy(["queue", "delete-dead", queue, "--id", doomed, "--json"])
        #expect(deleted.status == 0, "stderr: \(deleted.stderr)")
        let deletedReport = try Self.object(deleted.stdout)
        #expect(deletedReport["action"] as? String == "delete-dead")
        #expect(deletedReport["count"] as? Int == 1)
        #expect(deletedReport["missing"] as? [String] == [])
        let again = try await ivy([
            "queue", "delete-dead", queue, "--id", doomed, "--id", "no-such-id", "--json",
        ])
        #expect(again.status == 1)
        let againReport = try Self.object(again.stdout)
        #expect(againReport["count"] as? Int == 0)
        #expect(againReport["missing"] as? [String] == [doomed, "no-such-id"])
        #expect(again.stderr.contains("no-such-id"))
        let kept = try Self.object(try await ivy(["queue", "dead", queue, "--json"]).stdout)["messages"]
        let keptIDs = (kept as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
        #expect(Set(keptIDs) == Set(leftIDs.dropFirst()))
        let noneBack = try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)
        #expect(noneBack["ready"] as? Int == 1, "only the requeued one is live")
        let unknownText = try await ivy(["queue", "delete-dead", queue, "--id", "no-such-id"])
        #expect(unknownText.status == 1)
        #expect(unknownText.stdout == "\(queue): 0 dead letter(s) deleted\n")

        let requeued = try Self.object(
            try await ivy(["queue", "requeue-dead", queue, "-n", "1", "--json"]).stdout)
        #expect(requeued["count"] as? Int == 1)
        let afterRequeue = try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)
        #expect(afterRequeue["ready"] as? Int == 2)
        // The rest, with no -n: every dead letter, however many.
        let all = try Self.object(try await ivy(["queue", "requeue-dead", queue, "--json"]).stdout)
        #expect(all["count"] as? Int == 1)
        let allBack = try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)
        #expect(allBack["ready"] as? Int == 3)

        // Paused and resumed, as every worker would see it.
        let paused = try Self.object(try await ivy(["queue", "pause", queue, "--json"]).stdout)
        #expect(paused["paused"] as? Bool == true)
        #expect(
            try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)["paused"] as? Bool
                == true)
        #expect(try await ivy(["queue", "size", queue]).stdout.contains("(paused)"))
        _ = try await ivy(["queue", "resume", queue])
        #expect(
            try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)["paused"] as? Bool
                == false)

        let unconfirmed = try await ivy(["queue", "purge", queue])
        #expect(unconfirmed.status == 2)
        #expect(unconfirmed.stderr.contains("--yes"))
        let purged = try Self.object(try await ivy(["queue", "purge", queue, "--yes", "--json"]).stdout)
        #expect(purged["count"] as? Int == 3)
        let purgedDead = try Self.object(
            try await ivy(["queue", "purge", queue, "--dead", "--yes", "--json"]).stdout)
        #expect(purgedDead["count"] as? Int == 0)
        let empty = try Self.object(try await ivy(["queue", "size", queue, "--json"]).stdout)
        #expect(empty["ready"] as? Int == 0 && empty["dead"] as? Int == 0)
        for run in runs { Self.expectNoSecret(run) }
    }

    @Test func sealedBodiesShowDecryptedOnlyWithTheKey() async throws {
        try await requireServers(.redis, Services.redisURL)
        let queue = "sealed-\(UUID().uuidString.prefix(8).lowercased())"
        let key = ["MESSAGES_ENCRYPTION_KEY": "operator-key-123"]
        let at = ["--queue", Services.redisURL]
        let sent = try await IvyProcess.run(["call", "\(queue).task", "42"] + at, environment: key)
        #expect(sent.status == 0, "stderr: \(sent.stderr)")

        let withoutKey = try await IvyProcess.run(["queue", "peek", queue, "--json"] + at)
        let hidden = try #require((try Self.object(withoutKey.stdout)["messages"] as? [[String: Any]])?.first)
        #expect(hidden["body"] as? String == "<sealed>")
        #expect(hidden["sealed"] as? Bool == true)

        let withKey = try await IvyProcess.run(["queue", "peek", queue, "--json"] + at, environment: key)
        let shown = try #require((try Self.object(withKey.stdout)["messages"] as? [[String: Any]])?.first)
        #expect((shown["body"] as? [String: Any])?["args"] as? [Int] == [42])
        #expect(shown["sealed"] as? Bool == true)

        let wrongKey = try await IvyProcess.run(
            ["queue", "peek", queue] + at, environment: ["MESSAGES_ENCRYPTION_KEY": "another-key"])
        #expect(wrongKey.stdout.contains("<sealed: the key given does not open it>"))
        for run in [sent, withoutKey, withKey, wrongKey] {
            #expect(!run.stdout.contains("operator-key-123") && !run.stderr.contains("operator-key-123"))
        }
        _ = try await IvyProcess.run(["queue", "purge", queue, "--yes"] + at)
    }

    @Test func jsonOutputCarriesBodiesByteForByte() async throws {
        try await requireServers(.redis, Services.redisURL)
        let queue = "bytes-\(UUID().uuidString.prefix(8).lowercased())"
        let at = ["--queue", Services.redisURL]
        // Values Foundation's coders would change: a 64-bit overflow, an out-of-range double, a
        // repeated key.
        let sent = try await IvyProcess.run(
            ["call", "\(queue).task", "12345678901234567890", "1e400", #"{"a":1,"a":2}"#] + at)
        #expect(sent.status == 0, "stderr: \(sent.stderr)")
        let peek = try await IvyProcess.run(["queue", "peek", queue, "--json"] + at)
        #expect(peek.status == 0, "stderr: \(peek.stderr)")
        #expect(peek.stdout.contains(#""args":[12345678901234567890,1e400,{"a":1,"a":2}]"#), "\(peek.stdout)")
        _ = try await IvyProcess.run(["queue", "purge", queue, "--yes"] + at)
    }

    @Test func aPausedQueuesCallGetsAHintThatSaysSo() async throws {
        try await requireServers(.redis, Services.redisURL)
        let queue = "held-\(UUID().uuidString.prefix(8).lowercased())"
        let at = ["--queue", Services.redisURL]
        _ = try await IvyProcess.run(["queue", "pause", queue] + at)
        let call = try IvyProcess(["call", "\(queue).task", "--wait", "--timeout", "300"] + at)
        defer { kill(call.processIdentifier, SIGKILL) }
        try await withDeadline(.seconds(60), "the hint") {
            await call.waitForStderr(containing: "queue '\(queue)' is paused")
        }
        kill(call.processIdentifier, SIGTERM)
        _ = await call.finish()
        _ = try await IvyProcess.run(["queue", "resume", queue] + at)
        _ = try await IvyProcess.run(["queue", "purge", queue, "--yes"] + at)
    }

    @Test func aCallNoWorkerTakesGetsAHintWhileItWaits() async throws {
        try await requireServers(.redis, Services.redisURL)
        let queue = "nobody-\(UUID().uuidString.prefix(8).lowercased())"
        let call = try IvyProcess([
            "call", "\(queue).task", "--wait", "--queue", Services.redisURL, "--timeout", "300",
        ])
        defer { kill(call.processIdentifier, SIGKILL) }
        try await withDeadline(.seconds(60), "the hint") {
            await call.waitForStderr(
                containing: "no worker has taken it yet: is one serving queue '\(queue)'")
        }
        kill(call.processIdentifier, SIGTERM)
        _ = await call.finish()
        _ = try await IvyProcess.run(["queue", "purge", queue, "--yes", "--queue", Services.redisURL])
    }

    @Test func anUnreachableOrRefusingServerExitsWith3AndShowsNoSecret() async throws {
        let refused = try await IvyProcess.run(["queue", "size", "q", "--queue", "redis://127.0.0.1:9"])
        #expect(refused.status == 3, "stderr: \(refused.stderr)")
        #expect(refused.stdout.isEmpty)
        try await requireServers(.amqpQuorum, Services.amqpURL)
        let wrongPassword = Services.amqpURL.replacingOccurrences(
            of: "ivy-test-password", with: "not-the-password")
        let denied = try await IvyProcess.run(["queue", "size", "q", "--queue", wrongPassword, "--json"])
        #expect(denied.status == 3, "stderr: \(denied.stderr)")
        #expect(denied.stdout.isEmpty)
        #expect(!denied.stderr.contains("not-the-password"))
        Self.expectNoSecret(denied)
    }

    @Test func badCallArgumentsAreUsageErrors() async throws {
        let notJSON = try await IvyProcess.run(["call", "testpackage.echo", "hello"])
        #expect(notJSON.status == 2)
        #expect(notJSON.stderr.contains("argument 1 is not one JSON value"))
        let noName = try await IvyProcess.run(["call"])
        #expect(noName.status == 2)
        let badName = try await IvyProcess.run(["call", "nodots", "1"])
        #expect(badName.status == 2)
        let memoryNotifier = try await IvyProcess.run([
            "call", "testpackage.echo", "1", "--wait", "--queue", Services.redisURL, "--notify", "memory://",
        ])
        #expect(memoryNotifier.status == 2)
        #expect(memoryNotifier.stderr.contains("--wait needs a notifier the workers share"))
        // memory:// runs the example tasks in the process and awaits the call.
        let inProcess = try await IvyProcess.run(["call", "testpackage.factorial", "6"])
        #expect(inProcess.status == 0, "stderr: \(inProcess.stderr)")
        #expect(inProcess.stdout == "720\n")
        let badAction = try await IvyProcess.run(["queue", "frob", "q"])
        #expect(badAction.status == 2)
        #expect(badAction.stderr.contains("unknown action 'frob'"))
        // A negative number is an argument, not an option.
        let negative = try await IvyProcess.run(["call", "testpackage.add", "-2", "5", "--json"])
        #expect(negative.status == 0, "stderr: \(negative.stderr)")
        #expect(try Self.object(negative.stdout)["result"] as? Int == 3)
    }

    /// `ivy status` and `ivy cancel` from a shell, through the statuses a worker in another
    /// process records on Redis.
    @Test(arguments: ConformanceBackend.outOfProcess)
    func statusAndCancelFollowCallsFromTheShell(_ kind: ConformanceBackend) async throws {
        let url = try #require(kind.processURL)
        let queue = "status-\(UUID().uuidString.prefix(8).lowercased())"
        try await requireServers(kind, url)
        let worker = try IvyProcess([
            "worker", "--queue", url, "--notify", Services.redisURL, "--queues", queue,
            "--allow-cancel-running",
        ])
        defer { kill(worker.processIdentifier, SIGKILL) }
        let target = ["--queue", url, "--notify", Services.redisURL]
        @Sendable func ivy(_ arguments: [String]) async throws -> IvyProcess.Finished {
            let run = try await IvyProcess.run(arguments + target)
            Self.expectNoSecret(run)
            return run
        }
        @Sendable func call(_ arguments: [String]) async throws -> String {
            let run = try await ivy(["call"] + arguments + ["--task-queue", queue])
            #expect(run.status == 0, "stderr: \(run.stderr)")
            return run.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        /// `ivy status --json`, each value as text.
        @Sendable func status(_ id: String) async throws -> [String: String] {
            let run = try await ivy(["status", id, "--json"])
            #expect(run.status == 0, "stderr: \(run.stderr)")
            return try Self.object(run.stdout).mapValues { "\($0)" }
        }
        @Sendable func waitFor(_ id: String, _ state: String) async throws -> [String: String] {
            try await withDeadline(.seconds(60), "\(id) to be \(state)") {
                while true {
                    let found = try await status(id)
                    if found["state"] == state { return found }
                    try await Task.sleep(for: .milliseconds(100))
                }
            }
        }

        let done = try await call(["testpackage.factorial", "5"])
        let succeeded = try await waitFor(done, "succeeded")
        #expect(succeeded["result"] == "120")
        #expect(succeeded["task"] == "testpackage.factorial")
        #expect(succeeded["queue"] == queue)
        #expect(succeeded["worker"]?.hasSuffix(":\(worker.processIdentifier)") == true)
        let text = try await ivy(["status", done])
        #expect(text.stdout.hasPrefix("\(done)  succeeded (attempt 1 on "), "stdout: \(text.stdout)")
        #expect(text.stdout.contains("result   120"))

        let later = try await call(["testpackage.factorial", "3", "--in", "1h"])
        #expect(try await status(later)["state"] == "scheduled")
        let cancelled = try await ivy(["cancel", later])
        #expect(cancelled.status == 0 && cancelled.stdout == "\(later)  cancelled\n", "\(cancelled)")
        // Cancelling is idempotent; a call that has ended is not cancelled.
        let again = try await ivy(["cancel", later])
        #expect(again.status == 0 && again.stdout == "\(later)  cancelled\n", "\(again)")
        let tooLate = try await ivy(["cancel", done])
        #expect(tooLate.status == 1, "a finished call cannot be cancelled")
        #expect(tooLate.stdout == "\(done)  not cancelled: it is already succeeded\n", "\(tooLate)")

        let long = try await call(["testpackage.sleep", "600000"])
        _ = try await waitFor(long, "running")
        let asked = try await ivy(["cancel", long])
        #expect(asked.status == 0, "stderr: \(asked.stderr)")
        #expect(asked.stdout.contains("a cancel was asked"))
        let stopped = try await waitFor(long, "cancelled")
        #expect(stopped["reason"]?.hasPrefix("Cancelled") == true)

        let unknown = try await status("no-such-call")
        #expect(unknown["state"] == "unknown")
        let noID = try await IvyProcess.run(["status"] + target)
        #expect(noID.status == 2)
        let inProcess = try await IvyProcess.run(["cancel", "x", "--notify", "memory://"])
        #expect(
            inProcess.status == 2 && inProcess.stderr.contains("--notify redis://"), "\(inProcess.stderr)")
    }

    // MARK: Helpers

    private func requireServers(_ kind: ConformanceBackend, _ url: String) async throws {
        // Opening the backend (and Redis for results) fails or cancels the test as the
        // conformance suite does when a server is away.
        for backend in [kind, .redis] {
            let opened = try await backend.open()
            await opened.backend.close()
            await opened.notifier.close()
        }
    }

    private static func object(_ text: String) throws -> [String: Any] {
        let lines = text.split(separator: "\n")
        #expect(lines.count == 1, "stdout: \(text)")
        return try #require(
            try JSONSerialization.jsonObject(with: Data((lines.first ?? "").utf8)) as? [String: Any])
    }

    private static func object(_ line: String.SubSequence) throws -> [String: Any] {
        try object(String(line))
    }

    private static func expectNoSecret(_ run: IvyProcess.Finished) {
        for secret in secrets {
            #expect(!run.stdout.contains(secret) && !run.stderr.contains(secret))
        }
    }
}
