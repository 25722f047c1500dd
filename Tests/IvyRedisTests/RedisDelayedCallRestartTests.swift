// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// A call that runs later waits in Redis (the delayed set and the scheduled hash), so it
/// survives the server crashing and starting again from its append-only file.
@Suite("Redis: a waiting call survives a restart")
struct RedisDelayedCallRestartTests {
    @Test func aCallForLaterSurvivesARedisCrash() async throws {
        // A server of the test's own, its append-only file synced on every write.
        let redis = try await RedisServerProcess.start(["--appendonly", "yes", "--appendfsync", "always"])
        let queue: QueueName = "later-restart"
        let (executions, executed) = AsyncStream<Date>.makeStream()
        let registry = TaskRegistry()
        let record = try registry.register("later.record", queue: queue) { (value: Int) -> Int in
            executed.yield(Date())
            return value
        }
        let producer = try await TestNode(registry, queue: redis.url(), timeout: .seconds(30))
        let before = Date()
        let pending = try await producer.client.delayedCall(record, 7, after: .seconds(2))
        await redis.crash()
        try await redis.run()

        // Only now a worker: the message waited in the restarted server.
        let worker = try await TestNode(registry, queue: redis.url(), timeout: .seconds(30))
        let serving = Task {
            try await worker.listen(queues: [queue], options: WorkerOptions(concurrency: 2))
        }
        let ran = try await withDeadline(.seconds(60), "the waiting call to run") {
            for await at in executions { return at }
            return Date.distantPast
        }
        // Not earlier than its eta, less the 10 ms the eta's millisecond and the worker's 5 ms
        // tolerance allow (a lower bound: load only makes it later).
        #expect(ran.timeIntervalSince(before) >= 2 - 0.010, "ran before its eta")
        // The producer's subscription may have missed the result while the server was away;
        // either way the call ends, with the value or a timeout.
        do {
            #expect(try await pending.value == 7)
        } catch let error as IvyError {
            #expect(error.code == .resultTimedOut, "unexpected \(error)")
        }
        serving.cancel()
        try await serving.value
        await producer.close()
        await worker.close()
        await redis.stop()
    }

    /// A scheduled message counts as delayed until it is due, and a purge deletes it.
    @Test func aScheduledMessageIsCountedAsDelayedAndPurged() async throws {
        let backend: RedisStreamBackend
        do {
            backend = try await RedisStreamBackend.connect(url: Services.redisURL)
        } catch {
            try Services.unavailable("Redis at \(Services.redisURL)", error)
        }
        let queue = try QueueName("later-size-\(UInt32.random(in: 0...UInt32.max))")
        do {
            _ = try await backend.send(Array("{}".utf8), to: queue, after: .seconds(600))
            _ = try await backend.send(Array("{}".utf8), to: queue)
            let size = try await backend.size(of: queue)
            #expect(size.delayed == 1)
            #expect(size.ready == 1)
            #expect(try await backend.purge(queue) == 2)
            #expect(try await backend.size(of: queue).delayed == 0)
        } catch {
            await backend.close()
            throw error
        }
        await backend.close()
    }
}
