// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

@testable import IvyRedisNotify

/// Results across a `kill -9` and restart of Redis (append-only file synced on every write).
@Suite("Redis notifier across a restart")
struct RedisNotifierRestartTests {
    private static let persistent = ["--appendonly", "yes", "--appendfsync", "always"]

    /// How many connections `redis` counts as subscribed to the test's channel.
    private func subscribers(on redis: RedisServerProcess) async throws -> Int {
        let admin = try await RedisConnection.connect(try RedisConfiguration(url: redis.url()))
        let reply = try await admin.command(RedisCommand("PUBSUB", "NUMSUB", "ivy-test-restart"))
        await admin.close()
        return reply.array?.last?.integer ?? 0
    }

    @Test func aDurablePublishIssuedWhileRedisIsDownCompletesOnceItIsBack() async throws {
        try await RedisServerProcess.with(Self.persistent) { redis in
            let logger = RecordingLogger()
            let worker = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=60", logger: logger)
            let producer = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=60", logger: SilentLogger())
            let messages = try await producer.subscribe(to: "ivy-test-restart")
            try await worker.publish(Array("before".utf8), to: "ivy-test-restart")
            #expect(
                try await withDeadline(.seconds(20), "the first result") {
                    await messages.first { _ in true }
                } == Array("before".utf8))

            await redis.crash()
            let publishing = Task {
                try await worker.publish(Array("while down".utf8), to: "ivy-test-restart")
            }
            try await withDeadline(.seconds(30), "the publication to fail and be retried") {
                await logger.waitFor("publishing a result failed; retrying")
            }
            try await redis.run()
            try await withDeadline(.seconds(30), "the publication retried after the restart") {
                try await publishing.value
            }
            // Heard live, or read back from the retained results once resubscribed.
            let received = try await withDeadline(.seconds(30), "the result published across the restart") {
                await messages.first { $0 == Array("while down".utf8) }
            }
            #expect(received != nil)
            await worker.close()
            await producer.close()
        }
    }

    @Test func aResultWhoseAckScriptFailsInARestartStillReachesItsCaller() async throws {
        // Queue and notifier on one server: the ack script keeps and publishes the result. When
        // it fails because Redis is down, it runs again once Redis is back, long before the
        // message's reservation (60 s) could expire and the caller's wait (20 s) end.
        try await RedisServerProcess.with(Self.persistent) { redis in
            let queue: QueueName = "ack-restart"
            let (gate, open) = AsyncStream<Void>.makeStream()
            let registry = TaskRegistry()
            let task = try registry.register("restart.gated", queue: queue) { (value: Int) -> Int in
                for await _ in gate { break }
                return value
            }
            let ivy = try await TestNode(registry, queue: redis.url(), timeout: .seconds(20))
            let events = ivy.events()
            let serving = Task {
                try await ivy.listen(
                    queues: [queue], options: WorkerOptions(concurrency: 1, visibilityTimeout: .seconds(60)))
            }
            let pending = try await ivy.delayedCall(task, 7)
            _ = try await events.collect(1, "the task to start", where: \.isStarted)
            await redis.crash()
            open.yield()  // the task returns while Redis is down: its ack script fails
            // The outage, longer than a connection's own reconnect attempts for a request: a
            // fault's length, not a wait for state.
            try await Task.sleep(for: .seconds(2))
            try await redis.run()
            #expect(try await pending.value == 7)
            serving.cancel()
            try await serving.value
            await ivy.close()
        }
    }

    @Test func aSubscriberReconnectsAndHearsAResultPublishedAfterTheRestart() async throws {
        try await RedisServerProcess.with(Self.persistent) { redis in
            let logger = RecordingLogger()
            // Plain pub/sub: the reconnect alone, with no retained results to read back.
            let producer = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=0", logger: logger)
            let messages = try await producer.subscribe(to: "ivy-test-restart")
            await redis.crash()
            try await withDeadline(.seconds(30), "the subscriber to notice") {
                await logger.waitFor("notifier connection lost")
            }
            try await redis.run()
            // Resubscribed once the restarted server counts it.
            try await withDeadline(.seconds(30), "the subscriber to subscribe again") {
                while try await subscribers(on: redis) == 0 { try await Task.sleep(for: .milliseconds(10)) }
            }
            let worker = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=0", logger: SilentLogger())
            try await worker.publish(Array("after".utf8), to: "ivy-test-restart")
            let received = try await withDeadline(.seconds(20), "the result after the restart") {
                await messages.first { _ in true }
            }
            #expect(received == Array("after".utf8))
            #expect(logger.count(containing: "notifier reconnected") == 1)
            await worker.close()
            await producer.close()
        }
    }

    @Test func aDurablePublishGivesUpWhenTheNotifierCloses() async throws {
        try await RedisServerProcess.with { redis in
            let logger = RecordingLogger()
            let worker = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=600", logger: logger)
            await redis.crash()
            let publishing = Task { try await worker.publish(Array("never".utf8), to: "ivy-test-restart") }
            try await withDeadline(.seconds(30), "the publication to be retried") {
                await logger.waitFor("publishing a result failed; retrying")
            }
            await worker.close()
            let outcome = try await withDeadline(.seconds(30), "the publication to give up") {
                await publishing.result
            }
            #expect(throws: IvyError.self) { try outcome.get() }
        }
    }

    @Test func aDurablePublishGivesUpWhenItsRetentionHasPassed() async throws {
        try await RedisServerProcess.with { redis in
            let worker = try await RedisNotifier.connect(
                url: "\(redis.url())?retain_results=0.5", logger: SilentLogger())
            await redis.crash()
            let error = try await withDeadline(.seconds(30), "the publication to give up") {
                await #expect(throws: IvyError.self) {
                    try await worker.publish(Array("late".utf8), to: "ivy-test-restart")
                }
            }
            #expect(error?.code == .connectionFailed)
            await worker.close()
        }
    }

    @Test func onlyFailuresThatMayPassAreRetried() {
        #expect(RetainedResults.isWorthRetrying(IvyError(.connectionFailed, detail: "Connection refused")))
        #expect(
            RetainedResults.isWorthRetrying(
                IvyError(.commandFailed, detail: "PUBLISH: LOADING Redis is loading the dataset in memory")))
        #expect(
            !RetainedResults.isWorthRetrying(
                IvyError(.commandFailed, detail: "PUBLISH: WRONGTYPE Operation against a key")))
        #expect(
            !RetainedResults.isWorthRetrying(
                IvyError(.connectionFailed, detail: "authentication failed: WRONGPASS invalid")))
        #expect(!RetainedResults.isWorthRetrying(IvyError(.closed)))
        #expect(!RetainedResults.isWorthRetrying(CancellationError()))
    }
}
