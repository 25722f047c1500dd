// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

@Suite("Redis restart")
struct RedisRestartTests {
    @Test func nothingAcknowledgedIsLostWhenRedisCrashesMidStream() async throws {
        // A server of the test's own (the shared one serves other tests in parallel), its
        // append-only file synced on every write, so it can be killed and started again.
        let redis = try await RedisServerProcess.start(["--appendonly", "yes", "--appendfsync", "always"])
        let queue: QueueName = "restart"
        let (executions, executed) = AsyncStream<Int>.makeStream()
        let registry = TaskRegistry()
        let record = try registry.register("restart.record", queue: queue) { (value: Int) -> Int in
            executed.yield(value)
            return value
        }
        // Generous: every acknowledged call completes, so the timeouts only bound a hang, and the
        // whole suite may be loading the machine.
        let producer = try await TestNode(registry, queue: redis.url(), timeout: .seconds(30))
        let worker = try await TestNode(registry, queue: redis.url(), timeout: .seconds(30))
        let serving = Task {
            try await worker.listen(
                queues: [queue], options: WorkerOptions(concurrency: 8, visibilityTimeout: .seconds(2)))
        }

        // Before the crash, calls work.
        for value in 0..<20 { #expect(try await producer.call(record, value) == value) }

        // Calls the queue has acknowledged, then a crash.
        var pendings: [(value: Int, result: PendingResult<Int>)] = []
        for value in 20..<80 { pendings.append((value, try await producer.delayedCall(record, value))) }
        await redis.crash()

        // While Redis is down, a call fails at once with a clear error.
        let refused = await #expect(throws: IvyError.self) { _ = try await producer.delayedCall(record, -1) }
        #expect(refused?.code == .connectionFailed)

        try await redis.run()

        // Each acknowledged call completes, or fails with a clear error; none hangs.
        for (value, pending) in pendings {
            do {
                #expect(try await pending.value == value)
            } catch let error as IvyError {
                #expect(error.code == .resultTimedOut, "unexpected \(error)")
            }
        }
        // And every acknowledged message runs, whether or not its caller heard back.
        let acknowledged = Set(0..<80)
        try await withDeadline(.seconds(60), "every acknowledged message to run") {
            var seen = Set<Int>()
            for await value in executions {
                seen.insert(value)
                if acknowledged.isSubset(of: seen) { return }
            }
        }
        // The producer and the worker carry on with the restarted server.
        #expect(try await producer.call(record, 1000) == 1000)

        serving.cancel()
        try await serving.value
        await producer.close()
        await worker.close()
        await redis.stop()
    }
}
