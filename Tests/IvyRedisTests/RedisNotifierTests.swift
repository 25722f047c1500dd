// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples
import IvyTestSupport
import Testing

@testable import IvyRedisNotify

/// Plain and durable results when a producer's pub/sub connection drops.
@Suite("Redis notifier")
struct RedisNotifierTests {
    private func connect(_ url: String) async throws -> RedisConnection {
        do { return try await RedisConnection.connect(try RedisConfiguration(url: url)) } catch {
            try Services.unavailable("Redis at \(url)", error)
        }
    }

    /// A notifier whose connections carry a name of their own, so the test can find them.
    private func notifier(retainResults: Bool) async throws -> (RedisNotifier, name: String) {
        let name = "ivy-test-\(UUID().uuidString.prefix(8))"
        let retention = retainResults ? "&retain_results=30" : "&retain_results=0"
        return (
            try await RedisNotifier.connect(
                url: "\(Services.redisURL)?name=\(name)\(retention)", logger: SilentLogger()), name
        )
    }

    /// Kills the named pub/sub connection and publishes `payload` in one transaction, so the
    /// subscriber cannot hear it live.
    private func publishWhileDisconnected(
        _ payload: [UInt8], on channel: ChannelName, subscriberName name: String, retained: Bool,
        admin: RedisConnection
    ) async throws {
        let clients = try await admin.command(RedisCommand("CLIENT", "LIST", "TYPE", "pubsub")).text ?? ""
        let line = try #require(clients.split(separator: "\n").first { $0.contains("name=\(name) ") })
        let id = try #require(
            line.split(separator: " ").first { $0.hasPrefix("id=") }.flatMap { Int($0.dropFirst(3)) })
        let publish =
            retained
            ? RedisNotifier.retainAndPublish.command(
                keys: [RedisNotifier.retainedKey(channel)], arguments: [channel.rawValue, 30_000, payload])
            : RedisCommand("PUBLISH", channel.rawValue, payload)
        _ = try await admin.command(RedisCommand("SCRIPT", "LOAD", RedisNotifier.retainAndPublish.source))
        let replies = try await admin.send([
            RedisCommand("MULTI"), RedisCommand("CLIENT", "KILL", "ID", id), publish, RedisCommand("EXEC"),
        ])
        let results = try #require(replies.last?.array)
        #expect(results.first == .integer(1), "the subscriber's connection was killed")
        #expect(results.last == .integer(0), "nobody was subscribed when it was published")
    }

    @Test func aRetainedResultPublishedWhileDisconnectedArrivesAfterTheReconnect() async throws {
        let admin = try await connect(Services.redisURL)
        let (notifier, name) = try await notifier(retainResults: true)
        let channel = try ChannelName("ivy-test-durable-\(UUID().uuidString)")
        let messages = try await notifier.subscribe(to: channel)
        let payload = Array("result while away".utf8)
        try await publishWhileDisconnected(
            payload, on: channel, subscriberName: name, retained: true, admin: admin)
        let received = try await withDeadline(.seconds(20), "the retained result after the reconnect") {
            await messages.first { _ in true }
        }
        #expect(received == payload)
        _ = try await admin.command(RedisCommand("DEL", RedisNotifier.retainedKey(channel)))
        await notifier.close()
        await admin.close()
    }

    @Test func withoutRetentionAResultPublishedWhileDisconnectedIsLost() async throws {
        let admin = try await connect(Services.redisURL)
        let (notifier, name) = try await notifier(retainResults: false)
        let channel = try ChannelName("ivy-test-plain-\(UUID().uuidString)")
        let messages = try await notifier.subscribe(to: channel)
        try await publishWhileDisconnected(
            Array("lost".utf8), on: channel, subscriberName: name, retained: false, admin: admin)
        // Publish markers until the resubscribed connection hears one: the first message it gets
        // is a marker, never the one published while it was away.
        let marker = Array("marker".utf8)
        let publishing = Task {
            while !Task.isCancelled {
                _ = try await admin.command(RedisCommand("PUBLISH", channel.rawValue, marker))
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        let first = try await withDeadline(.seconds(20), "a marker after the reconnect") {
            await messages.first { _ in true }
        }
        publishing.cancel()
        #expect(first == marker)
        await notifier.close()
        await admin.close()
    }

    @Test func concurrentRetainedResultsOnOneChannelAreAllKeptAndDeliveredInOrderOfArrival() async throws {
        let admin = try await connect(Services.redisURL)
        let (notifier, _) = try await notifier(retainResults: true)
        let channel = try ChannelName("ivy-test-durable-\(UUID().uuidString)")
        let received = Locked<[[UInt8]]>([])
        let subscription = try await notifier.subscribe(to: channel) { payload in
            received.withLock { $0.append(payload) }
        }
        // Published together, they go out in batches: each still arrives once and is kept once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<200 {
                group.addTask { try await notifier.publish(Array("r\(index)".utf8), to: channel) }
            }
            try await group.waitForAll()
        }
        try await withDeadline(.seconds(20), "200 results") {
            while received.value.count < 200 { try await Task.sleep(for: .milliseconds(5)) }
        }
        #expect(Set(received.value) == Set((0..<200).map { Array("r\($0)".utf8) }))
        #expect(received.value.count == 200, "no result arrived twice")
        let kept = try await admin.command(
            RedisCommand("XRANGE", RedisNotifier.retainedKey(channel), "-", "+"))
        let keptPayloads = (kept.array ?? []).compactMap { $0.array?.last?.array?.last?.bytes }
        #expect(keptPayloads == received.value, "the stream keeps them in the order subscribers heard them")
        subscription.cancel()
        _ = try await admin.command(RedisCommand("DEL", RedisNotifier.retainedKey(channel)))
        await notifier.close()
        await admin.close()
    }

    @Test func aDurableNotifierKeepsEachResultOfACallInItsChannelsStream() async throws {
        let registry = TaskRegistry()
        let queue = try QueueName("durable-\(UUID().uuidString.prefix(8))")
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let channelBase = try ChannelName("ivy-test-durable-\(queue)")
        let url = "\(Services.redisURL)?retain_results=30"
        let ivy = try await TestNode(registry, queue: Services.redisURL, notifier: url, channel: channelBase)
        let serving = Task { try await ivy.listen(queues: [queue], concurrency: 4) }
        #expect(try await ivy.call(tasks.factorial, 6) == 720)
        let admin = try await connect(Services.redisURL)
        let key = RedisNotifier.retainedKey(ivy.client.notificationChannel)
        #expect(try await admin.command(RedisCommand("XLEN", key)) == .integer(1))
        let ttl = try await admin.command(RedisCommand("PTTL", key)).integer ?? -1
        #expect(ttl > 0 && ttl <= 30_000, "the stream expires with the retention")
        serving.cancel()
        _ = await serving.result
        _ = try await admin.command(RedisCommand("DEL", key))
        await ivy.close()
        await admin.close()
    }

    @Test func retentionIsReadFromTheURL() throws {
        #expect(
            try RedisNotifier.resultRetention(in: "redis://127.0.0.1:6390") == .seconds(30),
            "durable by default")
        #expect(try RedisNotifier.resultRetention(in: "redis://127.0.0.1:6390?retain_results=0") == nil)
        #expect(
            try RedisNotifier.resultRetention(in: "redis://127.0.0.1:6390?retain_results=2.5")
                == .milliseconds(2500))
        #expect(throws: IvyError.self) {
            try RedisNotifier.resultRetention(in: "redis://:pw@127.0.0.1:6390?retain_results=soon")
        }
        let error = #expect(throws: IvyError.self) {
            try RedisNotifier.resultRetention(in: "redis://:pw@127.0.0.1?retain_results=-1")
        }
        #expect(error.map { "\($0)" }?.contains("pw") == false, "the password is not in the error")
    }

    @Test func statusRetentionIsReadFromTheURL() throws {
        func retention(_ url: String) throws -> Duration? {
            try RedisNotifier.retention(
                "status_retention", in: url, default: RedisNotifier.defaultStatusRetention)
        }
        #expect(try retention("redis://127.0.0.1:6390") == .seconds(86_400), "a day by default")
        #expect(try retention("redis://127.0.0.1:6390?status_retention=0") == nil, "0 turns statuses off")
        #expect(try retention("redis://127.0.0.1:6390?retain_results=0&status_retention=60") == .seconds(60))
        let error = #expect(throws: IvyError.self) {
            try retention("redis://:pw@127.0.0.1?status_retention=forever")
        }
        #expect(error.map { "\($0)" }?.contains("status_retention") == true)
        #expect(error.map { "\($0)" }?.contains("pw") == false, "the password is not in the error")
    }

    /// One hash per call, expiring a retention after its last change; the latest state stands,
    /// the first final one for good, and a retry after a cancel was asked is answered cancelled.
    @Test func aStatusIsOneHashThatOnlyMovesForwardAndExpires() async throws {
        let admin = try await connect(Services.redisURL)
        let store = try await RedisNotifier.connect(url: "\(Services.redisURL)?status_retention=60")
        let id = "hash-\(UUID().uuidString.prefix(8))"
        let running = TaskStatus(
            id: id, state: .running, taskName: "t.t", queue: "t", attempt: 2, worker: "w1")
        #expect(try await store.record(running) == .running)
        let late = TaskStatus(id: id, state: .waiting, taskName: "t.t", queue: "t", channel: "ivy-notifier:x")
        _ = try await store.record(late)
        let held = try await store.status(of: id)
        #expect(held.state == .running, "a waiting that arrives late does not win")
        #expect(held.channel == "ivy-notifier:x", "it still adds what it knows")
        let key = "ivy:status:{\(id)}"
        let ttl = try #require(try await admin.command(RedisCommand("PTTL", key)).integer)
        #expect(ttl > 0 && ttl <= 60_000, "expires with the retention: \(ttl) ms")
        let asked = try await store.cancel(id, reason: "Cancelled: test")
        #expect(asked.state == .running && asked.cancelRequested && asked.worker == "w1")
        let retry = TaskStatus(
            id: id, state: .retrying, taskName: "t.t", queue: "t", attempt: 2, reason: "E: x")
        #expect(try await store.record(retry) == .cancelled, "no retry after a cancel was asked")
        #expect(try await store.status(of: id).state == .retrying)
        let stop = TaskStatus(id: id, state: .cancelled, attempt: 2, reason: "Cancelled: not retried")
        #expect(try await store.record(stop) == .cancelled)
        let final = try await store.status(of: id)
        #expect(final.state == .cancelled && final.reason == "Cancelled: not retried")
        #expect(final.taskName == "t.t" && final.worker == "w1" && final.channel == "ivy-notifier:x")
        let after = TaskStatus(id: id, state: .succeeded, taskName: "t.t", attempt: 3)
        _ = try await store.record(after)
        #expect(try await store.status(of: id).state == .cancelled, "a final status is never replaced")
        let fields = try #require(try await admin.command(RedisCommand("HGETALL", key)).array)
        #expect(fields.count == 2 * 5, "waiting, running, retrying, final and k: \(fields.count / 2) fields")
        #expect(try await store.status(of: "never-\(id)").state == .unknown)
        _ = try await admin.command(RedisCommand("DEL", key))
        await store.close()
        await admin.close()
    }

    /// With the queue elsewhere (the notifier publishes the results), a caller that hears of
    /// its result finds the call's status final, for many calls at once (statuses batched) and
    /// for failures too, with durable results and without.
    @Test(arguments: ["", "?retain_results=0"])
    func aStatusIsFinalBeforeItsCallerHearsOfTheResult(_ query: String) async throws {
        let notifier = try await RedisNotifier.connect(url: Services.redisURL + query, logger: SilentLogger())
        let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: notifier)
        let registry = TaskRegistry()
        let queue = try QueueName("order-\(UUID().uuidString.prefix(8))")
        let double = try registry.register("order.double", queue: queue) { (value: Int) -> Int in
            guard value >= 0 else { throw TaskFailure("Negative", "\(value)", retryable: false) }
            return value * 2
        }
        let client = try await IvyClient(
            registry: registry, connection: connection, options: ClientOptions(logger: SilentLogger()))
        let worker = try IvyWorker(
            registry: registry, connection: connection,
            options: WorkerOptions(concurrency: 16, logger: SilentLogger()))
        let serving = Task { try await worker.run() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for value in -8..<40 {
                group.addTask {
                    let pending = try await client.delayedCall(double, value, timeout: .seconds(60))
                    let outcome: Result<Int, any Error>
                    do { outcome = .success(try await pending.value) } catch { outcome = .failure(error) }
                    let status = try await client.status(of: pending.taskID)
                    if value < 0 {
                        #expect(status.state == .failed, "call \(value): \(status.state)")
                    } else {
                        #expect(try outcome.get() == value * 2)
                        #expect(status.state == .succeeded, "call \(value): \(status.state)")
                        #expect(status.result?.text == "\(value * 2)")
                    }
                }
            }
            try await group.waitForAll()
        }
        serving.cancel()
        try await serving.value
        await client.close()
        await worker.close()
        await connection.close()
    }

    @Test func resultsAreKeptInTheNotifiersDatabaseWhenTheQueueUsesAnother() async throws {
        let registry = TaskRegistry()
        let queue = try QueueName("db-\(UUID().uuidString.prefix(8))")
        let tasks = try TestPackage.register(in: registry, queue: queue)
        let ivy = try await TestNode(
            registry, queue: "\(Services.redisURL)/0", notifier: "\(Services.redisURL)/1")
        let serving = Task { try await ivy.listen(queues: [queue], concurrency: 2) }
        #expect(try await ivy.call(tasks.add, 1, 2) == 3)
        let key = RedisNotifier.retainedKey(ivy.client.notificationChannel)
        let inNotifiers = try await connect("\(Services.redisURL)/1")
        let inQueues = try await connect("\(Services.redisURL)/0")
        // Where the producer reads it back after a reconnect.
        #expect(try await inNotifiers.command(RedisCommand("XLEN", key)) == .integer(1))
        #expect(try await inQueues.command(RedisCommand("EXISTS", key)) == .integer(0))
        serving.cancel()
        _ = await serving.result
        _ = try await inNotifiers.command(RedisCommand("DEL", key))
        await ivy.close()
        await inNotifiers.close()
        await inQueues.close()
    }

    /// What else writes to the presence hash (another tool, a hostile client) is left out of the
    /// list, not trusted: a worker's announcement beside it is listed.
    @Test func announcementsThatAreNotOnesAreLeftOut() async throws {
        // A database of its own: the list is of every worker on the server's database.
        let url = "\(Services.redisURL)/14"
        let admin = try await connect(url)
        _ = try await admin.command(RedisCommand("FLUSHDB"))
        let notifier = try await RedisNotifier.connect(url: url, logger: SilentLogger())
        let presence = WorkerPresence(
            id: "real#00000001", name: "real", host: "h", pid: 1, queues: ["q"], backend: "memory://",
            concurrency: 1, running: 0, startedAt: Date(timeIntervalSince1970: 1_800_000_000),
            announcedAt: Date(timeIntervalSince1970: 1_800_000_000), version: "1", tallies: [],
            recentFailures: [])
        try await notifier.announce(presence, for: .seconds(60))
        for (id, text) in [
            ("garbage", "not json"), ("huge", #"{"id":"huge","pid":-1}"#), ("binary", "\u{1}\u{0}"),
        ] {
            _ = try await admin.command(RedisCommand("HSET", "ivy:{workers}", id, text))
            _ = try await admin.command(RedisCommand("ZADD", "ivy:{workers}:alive", "99999999999999", id))
        }
        #expect(try await notifier.presentWorkers() == [presence])
        _ = try await admin.command(RedisCommand("FLUSHDB"))
        await notifier.close()
        await admin.close()
    }
}
