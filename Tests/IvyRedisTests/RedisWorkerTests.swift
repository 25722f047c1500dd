// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Producers and workers on a real Redis: several workers, crashed workers, several processes.
@Suite("Redis workers")
struct RedisWorkerTests {
    /// A producer/worker on its own connections to `url`.
    private func makeIvy(
        _ registry: TaskRegistry, url: String = Services.redisURL, channel: String, timeout: Duration = .seconds(30)
    ) async throws -> Ivy {
        do {
            return try await Ivy(
                registry: registry, queue: .url(url), notifier: .url(url),
                options: IvyOptions(resultTimeout: timeout, notificationChannel: channel, logger: SilentLogger(), encryption: nil))
        } catch let error as IvyError where error.code == .connectionFailed {
            try Services.unavailable("Redis at \(url)", error)
        }
    }

    @Test func twoWorkersOnOneQueueRunEachCallOnce() async throws {
        let queue = "rw-\(UUID().uuidString.prefix(8))"
        let runs = Locked<[Int: Int]>([:])
        let registry = TaskRegistry()
        let record = try registry.register("redis.record", queue: queue) { (value: Int) -> Int in
            runs.withLock { $0[value, default: 0] += 1 }
            return value
        }
        let channel = "ivy-notifier-\(queue)"
        let producer = try await makeIvy(registry, channel: channel)
        let workers = [try await makeIvy(registry, channel: channel), try await makeIvy(registry, channel: channel)]
        let serving = workers.map { worker in Task { try await worker.listen(queues: [queue], concurrency: 8) } }
        let results = try await withThrowingTaskGroup(of: Int.self) { group in
            for value in 0..<400 { group.addTask { try await producer.call(record, value) } }
            var results: [Int] = []
            for try await value in group { results.append(value) }
            return results
        }
        #expect(results.sorted() == Array(0..<400))
        let counts = runs.value
        #expect(counts.count == 400)
        #expect(counts.values.allSatisfy { $0 == 1 }, "some call ran twice")
        for task in serving { task.cancel() }
        for task in serving { try await task.value }
        for ivy in workers + [producer] { await ivy.close() }
    }

    @Test func aWorkerKilledMidTaskHasItsTaskRedeliveredAndRunOnceMore() async throws {
        let queue = "rk-\(UUID().uuidString.prefix(8))"
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let channel = "ivy-notifier-\(queue)"
        let producer = try await makeIvy(registry, channel: channel)

        // A worker in its own process, with a one-second reservation.
        let child = try IvyProcess(
            ["worker", "--queue", Services.redisURL, "--notify", Services.redisURL, "--queues", queue,
             "--visibility", "1", "--concurrency", "1", "--events"],
            environment: ["IVY_NOTIFICATION_CHANNEL_NAME": channel])
        let pending = try await producer.delayedCall(tasks.sleep, 1500)
        try await withDeadline(.seconds(30), "the child worker to start the task") {
            await child.waitForStderr(containing: "event: started")
        }
        kill(child.processIdentifier, SIGKILL)
        let killed = await child.finish()
        #expect(killed.status == SIGKILL)

        // Another worker takes the message over once the dead worker's reservation expires.
        let events = producer.events()
        let rescuer = Task {
            try await producer.listen(queues: [queue], options: WorkerOptions(concurrency: 2, visibilityTimeout: .seconds(5)))
        }
        #expect(try await pending.value == 1500)
        let started = try await events.collect(1, "the rescuing worker to start") {
            if case .started(let context) = $0 { return context.taskID == pending.taskID }
            return false
        }
        #expect(started.first?.context?.attempt == 2, "the redelivery is the second attempt")
        rescuer.cancel()
        try await rescuer.value
        // Exactly once more: nothing is left to run again.
        let backend = try await RedisStreamBackend.connect(url: Services.redisURL)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        await backend.close()
        await producer.close()
    }

    @Test func aProducerAndAWorkerInTwoProcesses() async throws {
        _ = try await makeIvy(TaskRegistry(), channel: "probe").close()
        let channel = "ivy-notifier-2p-\(UUID().uuidString.prefix(8))"
        let environment = ["IVY_NOTIFICATION_CHANNEL_NAME": channel]
        let worker = try IvyProcess(
            ["worker", "--queue", Services.redisURL, "--notify", Services.redisURL], environment: environment)
        try await withDeadline(.seconds(30), "the worker to start") { await worker.waitForStderr(containing: "serving") }
        let demo = try await IvyProcess.run(
            ["demo", "--no-worker", "-n", "10", "--queue", Services.redisURL, "--notify", Services.redisURL],
            environment: environment)
        #expect(demo.status == 0, "stderr: \(demo.stderr)")
        #expect(demo.stdoutLines.last == "testpackage.factorial(10) = 3628800")
        let bench = try await IvyProcess.run(
            ["bench", "--no-worker", "-n", "200", "-c", "8", "--latency-calls", "20", "--json",
             "--queue", Services.redisURL, "--notify", Services.redisURL],
            environment: environment)
        #expect(bench.status == 0, "stderr: \(bench.stderr)")
        #expect(bench.stdoutLines.last?.contains("\"errors\":0") == true)
        kill(worker.processIdentifier, SIGTERM)
        let stopped = try await withDeadline(.seconds(30), "the worker to stop") { await worker.finish() }
        #expect(stopped.status == 0)
    }
}
