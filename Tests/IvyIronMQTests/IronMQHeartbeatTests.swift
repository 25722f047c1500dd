// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// IronMQ raises `reserved_count` on every touch, the heartbeat of a long task: attempts and
/// redeliveries must not be read from it as they are on Redis (PROTOCOL.md §5, §7).
@Suite("IronMQ heartbeats and attempts")
struct IronMQHeartbeatTests {
    /// A worker whose heartbeats fire every second (a third of 3 s); the local server allows
    /// reservations of one second.
    private static let options = WorkerOptions(
        concurrency: 1, visibilityTimeout: .seconds(3), pollWait: .seconds(1), extraDeliveries: 3,
        logger: SilentLogger())

    private func connect() async throws -> (IvyConnection, QueueName) {
        do {
            let connection = try await IvyConnection.connect(
                queue: .url(Services.ironMQURL), notifier: .memory, logger: SilentLogger())
            return (connection, try QueueName("hb-\(UUID().uuidString.prefix(8).lowercased())"))
        } catch {
            try Services.unavailable("IronMQ at \(Redaction.redact(url: Services.ironMQURL))", error)
        }
    }

    @Test func eachTouchRaisesTheDeliveryCount() async throws {
        let (connection, queue) = try await connect()
        let backend = try #require(connection.backend as? IronMQBackend)
        _ = try await backend.send(Array(#"{"name":"a.b","args":[]}"#.utf8), to: queue)
        var reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(reservation.deliveryCount == 1)
        for _ in 0..<2 { reservation = try await backend.extend(reservation, visibility: .seconds(30)) }
        try await backend.release(reservation, delay: .zero)
        let again = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(again.deliveryCount == 4, "one delivery, two touches, one more delivery")
        try await backend.ack(again)
        await connection.close()
    }

    @Test func aLongTaskThatFailsOnceRunsAgainAsItsSecondAttemptWhateverItsHeartbeats() async throws {
        let (connection, queue) = try await connect()
        let registry = TaskRegistry()
        let attempts = Locked<[Int]>([])
        let flaky = try registry.register(
            "heartbeat.flaky", queue: queue, retry: .fixed(.milliseconds(100), maxAttempts: 2)
        ) { (milliseconds: Int) async throws -> Int in
            let attempt = TaskContext.current?.attempt ?? 0
            attempts.withLock { $0.append(attempt) }
            // The task's own work: long enough for several heartbeats, each a touch.
            try await Task.sleep(for: .milliseconds(milliseconds))
            if attempt == 1 { throw TaskFailure("Flaky", "the first attempt fails") }
            return attempt
        }
        let client = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(resultTimeout: .seconds(60), logger: SilentLogger()))
        let worker = try IvyWorker(registry: registry, connection: connection, options: Self.options)
        let running = Task { try await worker.run() }
        // Read from `reserved_count` (one delivery and about four touches, then one more
        // delivery), the retry would be attempt 6 and past the 2 + 3 deliveries allowed.
        #expect(try await client.call(flaky, 4500) == 2)
        // A machine stalled past the reservation may run the first attempt twice, never more
        // than the two attempts the task has.
        let seen = attempts.value
        #expect(seen.first == 1 && seen.last == 2 && seen.allSatisfy { $0 <= 2 }, "attempts: \(seen)")
        running.cancel()
        try await running.value
        await client.close()
        await connection.close()
    }

    @Test(arguments: [(touches: 8, exhausted: false), (touches: 14, exhausted: true)])
    func touchesCountAsRedeliveriesOnlyPastTheirAllowance(touches: Int, exhausted: Bool) async throws {
        let (connection, queue) = try await connect()
        let backend = try #require(connection.backend as? IronMQBackend)
        let registry = TaskRegistry()
        // A one-second timeout: a delivery may make ceil(1 / 1) + 2 = 3, and the four
        // deliveries the worker allows (extraDeliveries 3, plus one) 12 in all.
        let echo = try registry.register("heartbeat.echo", queue: queue, timeout: .seconds(1)) {
            (value: Int) in value
        }
        let client = try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(resultTimeout: .seconds(60), logger: SilentLogger()))
        let pending = try await client.delayedCall(echo, 7)
        // As if workers had touched it `touches` times and died: 1 + touches + 1 deliveries.
        var reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        for _ in 0..<touches { reservation = try await backend.extend(reservation, visibility: .seconds(30)) }
        try await backend.release(reservation, delay: .zero)

        let worker = try IvyWorker(registry: registry, connection: connection, options: Self.options)
        let running = Task { try await worker.run() }
        if exhausted {
            let error = await #expect(throws: RemoteTaskError.self) { try await pending.value }
            #expect(error?.name == "AttemptsExhausted")
            #expect(error?.message.contains("heartbeats included") == true)
            #expect(try await backend.deadLetters(of: queue, count: 10).count == 1)
        } else {
            #expect(try await pending.value == 7)
        }
        running.cancel()
        try await running.value
        await client.close()
        await connection.close()
    }
}
