// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// The `ivy` executable, run as a user would.
@Suite("ivy command line")
struct CommandLineTests {
    @Test func demoShowsTheFlowAndTheResult() async throws {
        let run = try await IvyProcess.run(["demo"])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdoutLines.last == "testpackage.factorial(5) = 120")
        for step in [
            "scheduled testpackage.factorial", "running testpackage.factorial", "succeeded", "caller resumed",
        ] {
            #expect(run.stdout.contains(step), "missing step '\(step)'")
        }
    }

    @Test func demoReportsARemoteFailureAndExitsNonZero() async throws {
        let run = try await IvyProcess.run(["demo", "-n", "25"])
        #expect(run.status == 1)
        #expect(run.stderr.contains("OverflowError"))
        #expect(!run.stdout.contains(" = "))
    }

    @Test func benchWithJSONPrintsOnlyOneObjectAndTheTableOnStderr() async throws {
        let run = try await IvyProcess.run([
            "bench", "-n", "300", "-c", "8", "--latency-calls", "40", "--json",
        ])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("round trip"))
        #expect(run.stdoutLines.count == 1)
        let last = try #require(run.stdoutLines.last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        for key in [
            "backend", "tasks", "concurrency", "enqueue_per_s", "roundtrip_per_s", "p50_ms", "p90_ms",
            "p99_ms",
            "send_errors", "result_errors", "errors",
        ] {
            #expect(object[key] != nil, "missing key \(key)")
        }
        #expect(object["backend"] as? String == "memory://")
        #expect(object["tasks"] as? Int == 300)
        #expect(object["concurrency"] as? Int == 8)
        #expect(object["errors"] as? Int == 0)
        #expect((object["roundtrip_per_s"] as? Double ?? 0) > 0)
        let p50 = object["p50_ms"] as? Double ?? -1
        let p99 = object["p99_ms"] as? Double ?? -1
        #expect(p50 > 0 && p50 <= p99)
    }

    @Test func theNotifierIsTheQueuesServerUnlessToldOtherwise() async throws {
        let redis = try #require(URLComponents(string: Services.redisURL))
        guard Services.accepts(host: redis.host ?? "127.0.0.1", port: redis.port ?? 6379) else {
            try Services.unavailable("Redis at \(Services.redisURL)", CancellationError())
        }
        // A database of its own: other tests' workers serve the example tasks' queue in database 0,
        // and one of them would take this bench's calls and answer where it does not listen.
        var database = redis
        database.path = "/9"
        let url = try #require(database.string)
        let bench = ["bench", "-n", "50", "-c", "4", "--latency-calls", "5", "--timeout", "30", "--json"]
        let byDefault = try await IvyProcess.run(bench + ["--queue", url])
        #expect(byDefault.status == 0, "stderr: \(byDefault.stderr)")
        #expect(byDefault.stderr.contains("notifier \(url)"))
        #expect(byDefault.stdout.contains("\"notifier\":\"\(url)\""))
        // A memory notifier with a broker queue: the in-process workers share it, so results come.
        let inProcess = try await IvyProcess.run(bench + ["--queue", url, "--notify", "memory://"])
        #expect(inProcess.status == 0, "stderr: \(inProcess.stderr)")
        #expect(inProcess.stdoutLines.last?.contains("\"errors\":0") == true)
        let remote = try await IvyProcess.run([
            "bench", "--no-worker", "--queue", url, "--notify", "memory://",
        ])
        #expect(remote.status == 2)
        #expect(remote.stderr.contains("--no-worker needs a shared broker and notifier"))
    }

    @Test func anIronMQQueueWithoutANotifierIsRefusedBeforeConnecting() async throws {
        // Nothing listens on port 9: the refusal must come before any connection.
        let run = try await IvyProcess.run(["demo", "--queue", "ironmq+http://t0ken@127.0.0.1:9/p"])
        #expect(run.status != 0)
        #expect(run.stderr.contains("IronMQ carries queues, not results"))
        #expect(!run.stderr.contains("t0ken"))
    }

    @Test func benchCountsARefusedSendOnceAsASendError() async throws {
        // Bodies over the memory queue's 16 MiB are refused before they are queued.
        let run = try await IvyProcess.run([
            "bench", "-n", "1", "--payload", "17000000", "--phases", "enqueue", "--json",
        ])
        #expect(run.status == 1)
        let last = try #require(run.stdoutLines.last)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(last.utf8)) as? [String: Any])
        #expect(object["send_errors"] as? Int == 1)
        #expect(object["result_errors"] as? Int == 0)
        #expect(object["errors"] as? Int == 1)
        #expect(object["phases"] as? [String] == ["enqueue"])
        #expect(object["roundtrip_per_s"] == nil)
        #expect(object["p50_ms"] == nil)
    }

    @Test(arguments: ["demo", "worker", "bench", "call", "queue", "status", "cancel"])
    func everyCommandHasHelp(_ command: String) async throws {
        let run = try await IvyProcess.run([command, "--help"])
        #expect(run.status == 0)
        #expect(run.stdout.hasPrefix("usage: ivy \(command)"))
    }

    @Test func unknownCommandsAndOptionsAreUsageErrors() async throws {
        let command = try await IvyProcess.run(["frobnicate"])
        #expect(command.status == 2)
        #expect(command.stderr.contains("unknown command 'frobnicate'"))
        let option = try await IvyProcess.run(["bench", "--frob"])
        #expect(option.status == 2)
        #expect(option.stderr.contains("unknown argument '--frob'"))
        let value = try await IvyProcess.run(["bench", "-n", "many"])
        #expect(value.status == 2)
        #expect(value.stderr.contains("-n takes a whole number"))
    }

    @Test func credentialsInABackendURLAreNeverPrinted() async throws {
        let run = try await IvyProcess.run([
            "demo", "--queue", "nosuch://admin:s3cret-pw@127.0.0.1:1/x?token=tok-123",
        ])
        #expect(run.status != 0)
        #expect(!run.stderr.contains("s3cret-pw"))
        #expect(!run.stderr.contains("tok-123"))
        #expect(!run.stdout.contains("s3cret-pw"))
        #expect(run.stderr.contains("***"))
    }

    @Test func encryptWritesNodeIvysTokenAndDecryptReadsIt() async throws {
        let key = ["MESSAGES_ENCRYPTION_KEY": "pass"]
        let encrypted = try await IvyProcess.run(
            ["encrypt", "--legacy"], environment: key, input: "Hello Crypto")
        #expect(encrypted.status == 0, "stderr: \(encrypted.stderr)")
        #expect(encrypted.stdout == "$aes-256-cbc$DWKO1589bRhzNrgivtoXyw==\n")
        let decrypted = try await IvyProcess.run(["decrypt"], environment: key, input: encrypted.stdout)
        #expect(decrypted.status == 0)
        #expect(decrypted.stdout == "Hello Crypto")
    }

    @Test func authenticatedTokensRoundTripWithAKeyFile() async throws {
        let keyFile = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ivy-key-\(UUID().uuidString)")
        try "new-key\nold-key\n".write(to: keyFile, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: keyFile) }
        let encrypted = try await IvyProcess.run(
            ["encrypt", "--key-file", keyFile.path], input: "ünïcode ✓\n")
        #expect(encrypted.stdout.hasPrefix("$ivy-v1$"))
        let decrypted = try await IvyProcess.run(
            ["decrypt", "--key-file", keyFile.path], input: encrypted.stdout)
        #expect(decrypted.stdout == "ünïcode ✓\n")
        // An older key in the file still opens what it sealed.
        let old = try await IvyProcess.run(
            ["encrypt"], environment: ["MESSAGES_ENCRYPTION_KEY": "old-key"], input: "rotated")
        let opened = try await IvyProcess.run(["decrypt", "--key-file", keyFile.path], input: old.stdout)
        #expect(opened.stdout == "rotated")
    }

    @Test func decryptingWithTheWrongKeyFailsWithOneLineAndNoKey() async throws {
        let encrypted = try await IvyProcess.run(
            ["encrypt"], environment: ["MESSAGES_ENCRYPTION_KEY": "right-key-123"], input: "x")
        let run = try await IvyProcess.run(
            ["decrypt"], environment: ["MESSAGES_ENCRYPTION_KEY": "wrong-key-456"], input: encrypted.stdout)
        #expect(run.status == 1)
        #expect(run.stdout.isEmpty)
        #expect(run.stderr.split(separator: "\n").count == 1)
        #expect(run.stderr.contains("decryptionFailed"))
        #expect(!run.stderr.contains("right-key-123") && !run.stderr.contains("wrong-key-456"))
        let tampered = try await IvyProcess.run(
            ["decrypt"], environment: ["MESSAGES_ENCRYPTION_KEY": "k"], input: "$ivy-v1$$AAAA")
        #expect(tampered.status == 1)
    }

    @Test func encryptWritesTheRouteOfATaskMessage() async throws {
        let message = #"{"name":"testpackage.add","args":[1,2],"id":"p-42","notify":"ivy-notifier:p"}"#
        let run = try await IvyProcess.run(
            ["encrypt"], environment: ["MESSAGES_ENCRYPTION_KEY": "k"], input: message)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        // $ivy-v1$<route>$<sealed>: the route, readable without the key, names the call.
        let parts = run.stdout.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "$")
        #expect(parts.count == 3)
        var route = String(parts.count == 3 ? parts[1] : "").replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        while route.count % 4 != 0 { route += "=" }
        let json = Data(base64Encoded: route).map { String(decoding: $0, as: UTF8.self) } ?? ""
        #expect(json == #"{"id":"p-42","notify":"ivy-notifier:p"}"#)
    }

    @Test func encryptWithoutAKeyIsAUsageError() async throws {
        let run = try await IvyProcess.run(["encrypt"], input: "x")
        #expect(run.status == 2)
        #expect(run.stderr.contains("MESSAGES_ENCRYPTION_KEY"))
    }

    @Test func theDemoRunsEncrypted() async throws {
        let run = try await IvyProcess.run(["demo"], environment: ["MESSAGES_ENCRYPTION_KEY": "demo-key"])
        #expect(run.status == 0)
        #expect(run.stdoutLines.last == "testpackage.factorial(5) = 120")
    }

    @Test func workerDrainsAndExitsZeroOnSIGTERM() async throws {
        let worker = try IvyProcess(["worker", "--concurrency", "2"])
        try await withDeadline(.seconds(60), "the worker to start") {
            await worker.waitForStderr(containing: "serving testpackage")
        }
        kill(worker.processIdentifier, SIGTERM)
        let run = try await withDeadline(.seconds(60), "the worker to exit") { await worker.finish() }
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stderr.contains("SIGTERM received"))
        #expect(run.stderr.contains("stopped"))
    }

    @Test(arguments: [
        ["demo", "--timeout", "0"], ["demo", "--timeout", "nan"], ["demo", "--timeout", "-1"],
        ["demo", "--timeout", "1e30"], ["worker", "--queues", ","], ["worker", "--queues", ""],
        ["worker", "--queues", "a,,b"], ["worker", "--queues", "a b"], ["worker", "--queues", "q{x}"],
        ["worker", "--concurrency", "0"], ["worker", "--grace", "-1"],
        ["worker", "--visibility", "0.001"], ["bench", "-c", "0"], ["call", "testpackage.add", "x"],
        ["queue", "size"], ["queue", "peek", "q", "-n", "0"], ["queue", "size", "q{x}"],
        ["queue", "delete-dead", "q"], ["queue", "delete-dead", "q", "--id", "x", "-n", "1"],
        ["queue", "dead", "q", "--id", "x"],
        ["worker", "--events", "--frob"],
        ["call", "testpackage.add", "2", "3", "--in", "soon"],
        ["call", "testpackage.add", "2", "3", "--in", "-1"],
        ["call", "testpackage.add", "2", "3", "--in", "5x"],
        ["call", "testpackage.add", "2", "3", "--in", "nan"],
        ["call", "testpackage.add", "2", "3", "--in", "400d"],
        ["call", "testpackage.add", "2", "3", "--at", "tomorrow"],
        ["call", "testpackage.add", "2", "3", "--at", "2026-12-03T16:00:00"],
        ["call", "testpackage.add", "2", "3", "--in", "1", "--at", "2026-12-03T16:00:00Z"],
        ["worker", "--schedule", "* * * * testpackage.add"],
        ["worker", "--schedule", "61 * * * * testpackage.add"],
        ["worker", "--schedule", "@sometimes testpackage.add"], ["worker", "--schedule", "* * * * *"],
        ["worker", "--schedule", "testpackage.add [1]"],
        ["worker", "--schedule", "* * * * * testpackage.add 2 3"],
        ["worker", "--schedule", "* * * * * testpackage.add [2,"],
        ["worker", "--schedule", "TZ=Mars/Olympus * * * * * testpackage.add"],
        [
            "worker", "--schedule", "* * * * * testpackage.add [1]", "--schedule",
            "* * * * * testpackage.add [1]",
        ],
        ["status"], ["cancel"],
    ])
    func badValuesAreRejectedWithOneLineAndExitCode2(_ arguments: [String]) async throws {
        try await expectOneLineRefusal(arguments, status: 2)
    }

    /// `--in 1 --wait` on memory:// (the call runs in this process): the result comes, and no
    /// sooner than a second after the process started (a lower bound, which load cannot break).
    @Test(arguments: [["--in", "1"], ["--in", "1s"], ["--in", "1000ms"]])
    func aCallInOneSecondWaitsAndPrintsTheResult(_ start: [String]) async throws {
        let clock = ContinuousClock()
        let began = clock.now
        let run = try await IvyProcess.run(["call", "testpackage.add", "2", "3", "--wait"] + start)
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdoutLines.last == "5")
        #expect(clock.now - began >= .seconds(1), "answered before the call's time")
    }

    @Test func aCallAtATimeWaitsAndPrintsTheResult() async throws {
        let at = Date().addingTimeInterval(1)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        let run = try await IvyProcess.run(
            ["call", "testpackage.add", "2", "3", "--wait", "--at", formatter.string(from: at)])
        #expect(run.status == 0, "stderr: \(run.stderr)")
        #expect(run.stdoutLines.last == "5")
        #expect(Date() >= at, "answered before the call's time")
    }

    @Test(arguments: [
        ["demo", "--queue", "redis://"], ["demo", "--queue", "redis://h:99999"],
        ["queue", "size", "q", "--queue", "nosuch://x"],
        ["call", "a.b", "--queue", "amqp://h/v?frame_max=1"],
    ])
    func badURLsAreConfigurationErrorsWithExitCode3(_ arguments: [String]) async throws {
        try await expectOneLineRefusal(arguments, status: 3)
    }

    @Test func versionAndHelpNameTheExitStatuses() async throws {
        let version = try await IvyProcess.run(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.hasPrefix("ivy ") && version.stdoutLines.count == 1)
        let help = try await IvyProcess.run(["--help"])
        for line in ["0  success", "1  the task", "2  usage", "3  connection or configuration"] {
            #expect(help.stdout.contains(line))
        }
    }

    private func expectOneLineRefusal(_ arguments: [String], status: Int32) async throws {
        let run = try await IvyProcess.run(arguments)
        #expect(run.status == status, "stderr: \(run.stderr)")
        #expect(run.stdout.isEmpty)
        let lines = run.stderr.split(separator: "\n")
        #expect(lines.count == 1, "stderr: \(run.stderr)")
        #expect(lines.first?.hasPrefix("ivy \(arguments[0]): ") == true, "stderr: \(run.stderr)")
        #expect(!run.stderr.contains("serving"), "nothing starts before the arguments are checked")
        #expect(!run.stderr.contains("Fatal error") && !run.stderr.contains("Precondition"))
    }
}
