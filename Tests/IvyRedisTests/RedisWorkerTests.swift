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
        _ registry: TaskRegistry, url: String = Services.redisURL, channel: ChannelName,
        timeout: Duration = .seconds(30)
    ) async throws -> TestNode {
        try await TestNode(registry, queue: url, channel: channel, timeout: timeout)
    }

    @Test func twoWorkersOnOneQueueRunEachCallOnce() async throws {
        let queue = try QueueName("rw-\(UUID().uuidString.prefix(8))")
        let runs = Locked<[Int: Int]>([:])
        let registry = TaskRegistry()
        let record = try registry.register("redis.record", queue: queue) { (value: Int) -> Int in
            runs.withLock { $0[value, default: 0] += 1 }
            return value
        }
        let channel = try ChannelName("ivy-notifier-\(queue)")
        let producer = try await makeIvy(registry, channel: channel)
        let workers = [
            try await makeIvy(registry, channel: channel), try await makeIvy(registry, channel: channel),
        ]
        let serving = workers.map { worker in
            Task { try await worker.listen(queues: [queue], concurrency: 8) }
        }
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

    @Test func aProducerAndAWorkerInTwoProcesses() async throws {
        _ = try await makeIvy(TaskRegistry(), channel: "probe").close()
        let channel = "ivy-notifier-2p-\(UUID().uuidString.prefix(8))"
        let environment = ["IVY_NOTIFICATION_CHANNEL_NAME": channel]
        let worker = try IvyProcess(
            ["worker", "--queue", Services.redisURL, "--notify", Services.redisURL], environment: environment)
        try await withDeadline(.seconds(30), "the worker to start") {
            await worker.waitForStderr(containing: "serving")
        }
        let demo = try await IvyProcess.run(
            ["demo", "--no-worker", "-n", "10", "--queue", Services.redisURL, "--notify", Services.redisURL],
            environment: environment)
        #expect(demo.status == 0, "stderr: \(demo.stderr)")
        #expect(demo.stdoutLines.last == "testpackage.factorial(10) = 3628800")
        let bench = try await IvyProcess.run(
            [
                "bench", "--no-worker", "-n", "200", "-c", "8", "--latency-calls", "20", "--json",
                "--queue", Services.redisURL, "--notify", Services.redisURL,
            ],
            environment: environment)
        #expect(bench.status == 0, "stderr: \(bench.stderr)")
        #expect(bench.stdoutLines.last?.contains("\"errors\":0") == true)
        kill(worker.processIdentifier, SIGTERM)
        let stopped = try await withDeadline(.seconds(30), "the worker to stop") { await worker.finish() }
        #expect(stopped.status == 0)
    }

    /// The group's consumers, by name, with how many entries each has pending.
    private func consumers(of queue: String, through admin: RedisConnection) async throws -> [String: Int] {
        let reply = try await admin.command(
            RedisCommand("XINFO", "CONSUMERS", "ivy:{\(queue)}:stream", "ivy"))
        var consumers: [String: Int] = [:]
        for consumer in reply.array ?? [] {
            let fields = consumer.array ?? []
            var name: String?
            var pending = 0
            for index in stride(from: 0, to: fields.count - 1, by: 2) {
                if fields[index].text == "name" { name = fields[index + 1].text }
                if fields[index].text == "pending" { pending = fields[index + 1].integer ?? 0 }
            }
            if let name { consumers[name] = pending }
        }
        return consumers
    }

    @Test func aKilledWorkersMessagesComeBackLongBeforeTheirVisibilityTimeout() async throws {
        let queue = try QueueName("rl-\(UUID().uuidString.prefix(8))")
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let channel = try ChannelName("ivy-notifier-\(queue)")
        let producer = try await makeIvy(registry, channel: channel, timeout: .seconds(120))
        let admin = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisURL))
        let inspector = try await RedisStreamBackend.connect(url: Services.redisURL)

        // A worker in its own process whose reservations would last five minutes.
        let child = try IvyProcess(
            [
                "worker", "--queue", Services.redisURL, "--notify", Services.redisURL, "--queues",
                queue.rawValue,
                "--visibility", "300", "--concurrency", "2", "--events",
            ],
            environment: ["IVY_NOTIFICATION_CHANNEL_NAME": channel.rawValue])
        // Tasks long enough to be killed in the middle of on a loaded machine.
        let first = try await producer.delayedCall(tasks.sleep, 5000)
        let second = try await producer.delayedCall(tasks.sleep, 5000)
        // Its events, not the queue's size: a look at the size could miss a short window.
        do {
            try await withDeadline(.seconds(60), "the child worker to start both tasks") {
                await child.waitForStderr { $0.components(separatedBy: " started testpackage.").count >= 3 }
            }
        } catch {
            kill(child.processIdentifier, SIGKILL)
            let size = try? await inspector.size(of: queue)
            Issue.record("size \(size.map { "\($0)" } ?? "?"); the child's stderr: \(child.stderrText)")
            throw error
        }
        kill(child.processIdentifier, SIGKILL)
        #expect(await child.finish().status == SIGKILL)

        // A live worker frees the dead one's reservations once it stops announcing itself.
        let rescuer = Task {
            try await producer.listen(
                queues: [queue], options: WorkerOptions(concurrency: 2, visibilityTimeout: .seconds(300)))
        }
        let results = try await withDeadline(
            .seconds(60), "the killed worker's messages to run again (not after 300 s)"
        ) {
            [try await first.value, try await second.value]
        }
        #expect(results == [5000, 5000])
        // The dead consumer is deleted from the group once nothing is pending for it.
        try await withDeadline(.seconds(30), "the dead consumer to be deleted from the group") {
            while try await consumers(of: queue.rawValue, through: admin).count > 1 {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        rescuer.cancel()
        try await rescuer.value
        await producer.close()
        // And a consumer that closes leaves the group too: closing waits for its `leave` script.
        let left = try await consumers(of: queue.rawValue, through: admin)
        #expect(left.isEmpty, "consumers left, with their pending counts: \(left)")
        await inspector.close()
        await admin.close()
    }

    @Test func aLiveWorkerWhoseTaskRunsAMinuteKeepsItsMessage() async throws {
        let queue = try QueueName("rs-\(UUID().uuidString.prefix(8))")
        let probe = Locked(0)
        let registry = TaskRegistry()
        // A minute: fifteen liveness periods (4 s), with another worker asking for work all along.
        let long = try registry.register("redis.long", queue: queue) { (ms: Int) -> Int in
            probe.withLock { $0 += 1 }
            try await Task.sleep(for: .milliseconds(ms))
            return ms
        }
        let channel = try ChannelName("ivy-notifier-\(queue)")
        let producer = try await makeIvy(registry, channel: channel, timeout: .seconds(120))
        let other = try await makeIvy(registry, channel: channel)
        let options = WorkerOptions(concurrency: 1, visibilityTimeout: .seconds(120))
        let events = producer.events()
        let pending = try await producer.delayedCall(long, 60_000)
        let serving = Task { try await producer.listen(queues: [queue], options: options) }
        _ = try await events.collect(1, "the task to start", where: \.isStarted)
        let asking = Task { try await other.listen(queues: [queue], options: options) }
        #expect(try await pending.value == 60_000)
        #expect(probe.value == 1, "the message of a live worker was taken from it")
        for task in [serving, asking] { task.cancel() }
        for task in [serving, asking] { try await task.value }
        await other.close()
        await producer.close()
    }

    @Test func aStalledServerMakesNoLiveWorkerLookDead() async throws {
        // Beats wait while the server is stopped and all run when it goes on; none may free the
        // work of a worker that was beating as well.
        try await RedisServerProcess.with { redis in
            let queue = try QueueName("rp-\(UUID().uuidString.prefix(8))")
            let runs = Locked(0)
            let registry = TaskRegistry()
            let long = try registry.register("redis.paused", queue: queue) { (ms: Int) -> Int in
                runs.withLock { $0 += 1 }
                try await Task.sleep(for: .milliseconds(ms))
                return ms
            }
            let channel = try ChannelName("ivy-notifier-\(queue)")
            let producer = try await makeIvy(
                registry, url: redis.url(), channel: channel, timeout: .seconds(120))
            // Several others, so that the holder's beat is rarely the first to run after the stall.
            var others: [TestNode] = []
            for _ in 0..<3 { others.append(try await makeIvy(registry, url: redis.url(), channel: channel)) }
            let options = WorkerOptions(concurrency: 1, visibilityTimeout: .seconds(120))
            let events = producer.events()
            let pending = try await producer.delayedCall(long, 12_000)
            let serving = Task { try await producer.listen(queues: [queue], options: options) }
            _ = try await events.collect(1, "the task to start", where: \.isStarted)
            let asking = others.map { other in
                Task { try await other.listen(queues: [queue], options: options) }
            }
            try await withDeadline(.seconds(30), "every worker to announce itself") {
                let admin = try await RedisConnection.connect(try RedisConfiguration(url: redis.url()))
                while try await admin.command(RedisCommand("ZCARD", "ivy:{\(queue)}:consumers")).integer != 4
                {
                    try await Task.sleep(for: .milliseconds(20))
                }
                await admin.close()
            }
            redis.pause()
            try await Task.sleep(for: .seconds(6))  // the stall itself: longer than a liveness period
            redis.resume()
            #expect(try await pending.value == 12_000)
            #expect(runs.value == 1, "a live worker's message was taken from it after the stall")
            for task in [serving] + asking { task.cancel() }
            for task in [serving] + asking { try await task.value }
            for ivy in others + [producer] { await ivy.close() }
        }
    }

    /// With the notifier on the queue's server, a call's statuses go in the requests the call
    /// makes anyway: per call, one `HMGET` (the reserve script's: the worker reads nothing
    /// more), `waiting` and `running` (two `HSET`s), the final status and the result (two
    /// `HSETNX`s).
    /// Both ways of sending record `waiting` and tell the client's watchers once.
    @Test func aCallsStatusesRideInTheRequestsItMakesAnyway() async throws {
        try await RedisServerProcess.with { redis in
            let queue = try QueueName("rs-\(UUID().uuidString.prefix(8))")
            let registry = TaskRegistry()
            let double = try registry.register("redis.double", queue: queue) { (value: Int) -> Int in
                2 * value
            }
            let node = try await makeIvy(registry, url: redis.url(), channel: "ivy-notifier-rs")
            let events = node.events()
            // Announcements (an HSET in a script) would count too.
            let serving = Task {
                try await node.listen(
                    queues: [queue], options: WorkerOptions(concurrency: 4, presenceInterval: nil))
            }
            let admin = try await RedisConnection.connect(try RedisConfiguration(url: redis.url()))
            _ = try await admin.command(RedisCommand("CONFIG", "RESETSTAT"))
            let pending = try await node.delayedCall(double, 21)
            #expect(try await pending.value == 42)
            #expect(try await node.call(double, 4) == 8)
            let stats = try #require(try await admin.command(RedisCommand("INFO", "commandstats")).text)
            func calls(_ command: String) -> Int {
                let line = stats.split(whereSeparator: \.isNewline).first {
                    $0.hasPrefix("cmdstat_\(command):")
                }
                return line.flatMap { Int($0.split(separator: "=")[1].prefix { $0.isNumber }) } ?? 0
            }
            let counts: [Int] = [calls("hmget"), calls("hset"), calls("hsetnx")]
            #expect(
                counts == [2, 4, 4],
                "HMGET, HSET, HSETNX for two calls: \(stats)")
            // Written by the reserve script, which knows the call by the id its entry carries (a
            // worker's own `running` also names the task).
            let running = try #require(
                try await admin.command(RedisCommand("HGET", "ivy:status:{\(pending.taskID)}", "5")).text)
            #expect(
                running.hasPrefix(#"{"s":"running","a":1,"q":"\#(queue)","w":"#)
                    && !running.contains(#""n":"#))
            let status = try await node.client.status(of: pending.taskID)
            #expect(status.state == .succeeded && status.attempt == 1 && status.worker != nil)
            let answer = try RawJSON(validating: "42")
            #expect(status.taskName == "redis.double" && status.result == answer)
            var scheduled: [String] = []
            for await event in events {
                if event.kind == .scheduled, let id = event.task?.taskID { scheduled.append(id) }
                if event.kind == .callerResumed, event.task?.taskID != pending.taskID { break }
            }
            #expect(scheduled.count == 2 && scheduled.first == pending.taskID, "\(scheduled)")
            serving.cancel()
            try await serving.value
            await admin.close()
            await node.close()
        }
    }
}
