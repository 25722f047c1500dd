// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Testing

@testable import IvyCore

/// Options a program builds from its own configuration fail with a typed error naming the field,
/// where they are used; nothing out of range reaches a trap.
struct ConfigurationValidationTests {
    /// The detail of the configuration error `body` throws; nil if it throws none.
    private func field(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch let error as IvyError {
            #expect(error.code == .invalidConfiguration)
            return error.detail
        } catch {
            Issue.record("not an IvyError: \(error)")
            return nil
        }
    }

    @Test func workerOptionsNameTheFieldOutOfRange() {
        #expect(field { try WorkerOptions().validate() } == nil)
        #expect(
            field { try WorkerOptions(concurrency: 0).validate() }?.hasPrefix("WorkerOptions.concurrency")
                == true)
        #expect(
            field { try WorkerOptions(visibilityTimeout: .milliseconds(5)).validate() }?.hasPrefix(
                "WorkerOptions.visibilityTimeout") == true)
        #expect(
            field { try WorkerOptions(pollWait: .seconds(-1)).validate() }?.hasPrefix(
                "WorkerOptions.pollWait") == true)
        #expect(
            field { try WorkerOptions(pauseCheckInterval: .zero).validate() }?.hasPrefix(
                "WorkerOptions.pauseCheckInterval") == true)
        #expect(
            field { try WorkerOptions(gracePeriod: .seconds(-1)).validate() }?.hasPrefix(
                "WorkerOptions.gracePeriod") == true)
        #expect(
            field { try WorkerOptions(errorBackoff: .seconds(1e9)).validate() }?.hasPrefix(
                "WorkerOptions.errorBackoff") == true)
        #expect(
            field { try WorkerOptions(extraDeliveries: -1).validate() }?.hasPrefix(
                "WorkerOptions.extraDeliveries") == true)
    }

    @Test func producerTaskAndRetryOptionsNameTheFieldOutOfRange() {
        let options = ClientOptions(resultTimeout: .zero, logger: SilentLogger(), encryption: nil)
        #expect(field { try options.validate() }?.hasPrefix("ClientOptions.resultTimeout") == true)
        // Names from variables (configuration) are checked; `QueueName("…")` with a literal is a
        // literal, checked by a precondition.
        for name in ["", "with space", "tab\there", String(repeating: "c", count: 1025)] {
            #expect(field { _ = try ChannelName(name) }?.hasPrefix("a channel name") == true)
        }
        for name in ["", "a{b}", "with space", "é", String(repeating: "q", count: 201)] {
            #expect(field { _ = try QueueName(name) }?.hasPrefix("a queue name") == true)
        }
        let valid = "ok.queue_1-a:b"
        #expect((try? QueueName(valid))?.rawValue == valid)
        #expect(field { try WorkerOptions(queues: []).validate() }?.hasPrefix("WorkerOptions.queues") == true)
        #expect(
            field { try MessageEncryption(key: "").validate() }?.contains("key must not be empty") == true)
        #expect(
            field { try TaskOptions(queue: "q", timeout: .zero).validate() }?.hasPrefix("TaskOptions.timeout")
                == true)
        #expect(
            field { try RetryPolicy(maxAttempts: 0, backoff: .immediate).validate() }?.hasPrefix(
                "RetryPolicy.maxAttempts") == true)
        #expect(
            field { try RetryPolicy.fixed(.seconds(-1)).validate() }?.hasPrefix("RetryPolicy.fixed") == true)
        #expect(
            field { try RetryPolicy.exponential(maximum: .seconds(1e12)).validate() }?.hasPrefix(
                "RetryPolicy.exponential maximum") == true)
    }

    @Test func registeringATaskWithOptionsOutOfRangeThrows() {
        let registry = TaskRegistry()
        #expect(throws: IvyError.self) {
            try registry.register("a.b", queue: "q", timeout: .zero) { (n: Int) in n }
        }
        #expect(throws: IvyError.self) {
            try registry.register("a.c", queue: "q", retry: .linear(maxAttempts: -3)) { (n: Int) in n }
        }
        #expect(registry.names.isEmpty, "nothing half-registered")
    }

    @Test func aClientWithOptionsOutOfRangeIsNotMade() async throws {
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
        let error = await #expect(throws: IvyError.self) {
            _ = try await IvyClient(
                registry: TaskRegistry(), connection: connection,
                options: ClientOptions(resultTimeout: .seconds(-5), logger: SilentLogger(), encryption: nil))
        }
        #expect(error?.code == .invalidConfiguration)
        await connection.close()
    }

    @Test func aWorkerWithOptionsOutOfRangeOrNoQueueIsNotMade() async throws {
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
        let registry = TaskRegistry()
        var options = WorkerOptions(logger: SilentLogger(), encryption: nil)
        let none = #expect(throws: IvyError.self) {
            _ = try IvyWorker(registry: registry, connection: connection, options: options)
        }
        #expect(none?.detail?.contains("no queue to serve") == true)
        try registry.register("a.b", queue: "q") { (n: Int) in n }
        options.concurrency = -1  // options are plain values: set after init, checked at use
        let error = #expect(throws: IvyError.self) {
            _ = try IvyWorker(registry: registry, connection: connection, options: options)
        }
        #expect(error?.detail?.hasPrefix("WorkerOptions.concurrency") == true)
        await connection.close()
    }

    @Test func retryDelaysNeverOverflowWhateverTheAttempt() {
        let linear = RetryPolicy(maxAttempts: Int.max, backoff: .linear(step: .seconds(86_400)))
        #expect(linear.delay(afterAttempt: Int.max - 1) == RetryPolicy.longestDelay)
        let exponential = RetryPolicy(
            maxAttempts: Int.max, backoff: .exponential(base: .seconds(1), maximum: .seconds(1e12)))
        #expect(exponential.delay(afterAttempt: 1_000) == RetryPolicy.longestDelay)
        #expect(RetryPolicy.fixed(.seconds(1e12)).delay(afterAttempt: 1) == RetryPolicy.longestDelay)
        #expect(RetryPolicy.linear(.milliseconds(50)).delay(afterAttempt: 3) == .milliseconds(150))
    }
}
