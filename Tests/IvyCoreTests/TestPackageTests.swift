// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyExamples
import IvyTestSupport
import Testing

@testable import IvyCore

/// The example plugin's tasks, run directly through a registry (no queue, no worker).
struct TestPackageTests {
    let registry = TaskRegistry()
    let plugin: TestPackage

    init() throws {
        plugin = try TestPackage.register(in: registry)
    }

    private func run(_ name: String, _ args: String) async throws -> String {
        let task = try #require(registry.task(named: name))
        return String(decoding: try await task.run(Array(args.utf8)[...]), as: UTF8.self)
    }

    private func failure(_ name: String, _ args: String) async throws -> TaskFailure {
        try await #require(throws: TaskFailure.self) { try await run(name, args) }
    }

    @Test func registersEveryTaskOnOneQueue() {
        #expect(
            registry.names == [
                "testpackage.add", "testpackage.echo", "testpackage.factorial", "testpackage.fail",
                "testpackage.sleep",
            ])
        #expect(registry.queues == [TestPackage.queue])
        #expect(plugin.factorial.name == "testpackage.factorial")
        #expect(plugin.add.name == "testpackage.add")
        #expect(plugin.echo.name == "testpackage.echo")
        #expect(plugin.sleep.name == "testpackage.sleep")
        #expect(plugin.fail.name == "testpackage.fail")
        #expect(plugin.factorial.options.retry.maxAttempts == 10)
        #expect(plugin.fail.options.retry == .fixed(.milliseconds(50), maxAttempts: 3))
        #expect(plugin.sleep.options.timeout == .seconds(300))
    }

    @Test func registeringTwiceIsADuplicate() {
        let error = #expect(throws: IvyError.self) { try TestPackage.register(in: registry) }
        #expect(error?.code == .duplicateTask)
    }

    @Test(arguments: [(0, 1), (1, 1), (2, 2), (5, 120), (10, 3_628_800), (20, 2_432_902_008_176_640_000)])
    func factorial(_ n: Int, _ expected: Int) async throws {
        #expect(try await run("testpackage.factorial", "[\(n)]") == "[\(expected)]")
    }

    @Test func factorialPast20Overflows() async throws {
        for n in [21, 22, 100] {
            let error = try await failure("testpackage.factorial", "[\(n)]")
            #expect(error.name == "OverflowError")
            #expect(!error.retryable)
        }
    }

    @Test func factorialOfANegativeNumberIsAValueError() async throws {
        let error = try await failure("testpackage.factorial", "[-1]")
        #expect(error.name == "ValueError")
        #expect(!error.retryable)
        #expect(error.message.contains("-1"))
    }

    @Test func addAddsAndReportsOverflow() async throws {
        #expect(try await run("testpackage.add", "[2,3]") == "[5]")
        #expect(try await run("testpackage.add", "[-9223372036854775808,9223372036854775807]") == "[-1]")
        for args in ["[9223372036854775807,1]", "[-9223372036854775808,-1]"] {
            let error = try await failure("testpackage.add", args)
            #expect(error.name == "OverflowError")
            #expect(!error.retryable)
        }
    }

    @Test func echoReturnsUnicodeUnchanged() async throws {
        let result = try await run(
            "testpackage.echo", #"["h\u00e9llo 😀 \ud83d\ude00 中文 \"q\" \\ \n\t\u0001"]"#)
        let decoded = try JSONDecoder().decode([String].self, from: Data(result.utf8))
        #expect(decoded == ["héllo 😀 😀 中文 \"q\" \\ \n\t\u{01}"])
        #expect(try await run("testpackage.echo", #"[""]"#) == #"[""]"#)
    }

    @Test func failThrowsARetryableTestFailure() async throws {
        let error = try await failure("testpackage.fail", #"["boom é"]"#)
        #expect(error == TaskFailure("TestFailure", "boom é", retryable: true))
    }

    @Test func sleepReturnsItsArgument() async throws {
        #expect(try await run("testpackage.sleep", "[0]") == "[0]")
    }

    @Test func sleepHonoursCancellation() async throws {
        let task = try #require(registry.task(named: "testpackage.sleep"))
        let call = Task { try await task.run(Array("[600000]".utf8)[...]) }
        call.cancel()
        try await withDeadline(.seconds(10)) {
            await #expect(throws: CancellationError.self) { try await call.value }
        }
    }

    @Test func wrongArgumentsAreUndecodable() async throws {
        for (name, args) in [
            ("testpackage.factorial", #"["5"]"#), ("testpackage.factorial", "[5,6]"),
            ("testpackage.add", "[1]"),
            ("testpackage.echo", "[5]"), ("testpackage.fail", "[]"),
        ] {
            let error = try await #require(throws: IvyError.self) { try await run(name, args) }
            #expect(error.code == .argumentsUndecodable, "\(name) \(args)")
        }
    }

    @Test func nodeIvyMessageRunsThroughTheRegistry() async throws {
        let message = try TaskMessage(
            decoding: Array(#"{"name":"testpackage.factorial","options":{},"args":[5]}"#.utf8))
        let task = try #require(registry.task(named: message.name))
        #expect(try await task.run(message.args[...]) == Array("[120]".utf8))
    }
}
