// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// What the Redis backend does beyond the shared conformance suite.
@Suite("Redis stream backend")
struct RedisStreamBackendTests {
    private func open() async throws -> (RedisStreamBackend, RedisNotifier, queue: QueueName) {
        do {
            let backend = try await RedisStreamBackend.connect(url: Services.redisURL)
            let notifier = try await RedisNotifier.connect(url: Services.redisURL, logger: SilentLogger())
            return (backend, notifier, try QueueName("rb-\(UUID().uuidString.prefix(8))"))
        } catch {
            try Services.unavailable("Redis at \(Services.redisURL)", error)
        }
    }

    @Test func anExtensionKeepsTheReceiptSoALateHeartbeatCannotCostTheAck() async throws {
        let (backend, notifier, queue) = try await open()
        _ = try await backend.send(Array("m".utf8), to: queue)
        let reservation = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        let extended = try await backend.extend(reservation, visibility: .seconds(60))
        #expect(extended.receipt == reservation.receipt)
        // The heartbeat's answer never reached the worker: it acks with what it had.
        try await backend.ack(reservation)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        let error = await #expect(throws: IvyError.self) {
            _ = try await backend.extend(reservation, visibility: .seconds(1))
        }
        #expect(error?.code == .reservationLost, "an acknowledged message cannot be extended")
        await notifier.close()
        await backend.close()
    }

    @Test func aResultIsPublishedEvenWhenItsReservationWasLost() async throws {
        let (backend, notifier, queue) = try await open()
        let channel = try ChannelName("ivy-test-\(queue)")
        let published = Locked<[[UInt8]]>([])
        let subscription = try await notifier.subscribe(to: channel) { payload in
            published.withLock { $0.append(payload) }
        }
        _ = try await backend.send(Array("m".utf8), to: queue)
        let first = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .milliseconds(50), wait: .seconds(5))
                .first)
        // Another consumer takes the message once the first reservation has expired.
        let second = try await withDeadline(.seconds(10), "the expired message to come back") {
            while true {
                if let again = try await backend.reserve(
                    from: queue, count: 1, visibility: .seconds(30), wait: .seconds(1)
                ).first {
                    return again
                }
            }
        }
        #expect(second.deliveryCount == 2)
        #expect(backend.canPublish(through: notifier))
        let outcome = await withCheckedContinuation { continuation in
            backend.ack(first, publishing: Array("done".utf8), to: channel, through: notifier, recording: nil)
            {
                continuation.resume(returning: $0)
            }
        }
        #expect((outcome.ackError as? IvyError)?.code == .reservationLost)
        #expect(outcome.publishError == nil)
        try await withDeadline(.seconds(10), "the published result") {
            while published.value.isEmpty { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(published.value == [Array("done".utf8)])
        // Again, now that the reservation is known lost.
        let reported = try await withDeadline(.seconds(10), "the callback ack to report") {
            await withCheckedContinuation { continuation in
                backend.ack(
                    first, publishing: Array("again".utf8), to: channel, through: notifier, recording: nil
                ) {
                    continuation.resume(returning: $0)
                }
            }
        }
        #expect((reported.ackError as? IvyError)?.code == .reservationLost)
        #expect(reported.publishError == nil)
        try await withDeadline(.seconds(10), "the second published result") {
            while published.value.count < 2 { try await Task.sleep(for: .milliseconds(10)) }
        }
        #expect(published.value == [Array("done".utf8), Array("again".utf8)])
        subscription.cancel()
        try await backend.ack(second)
        await notifier.close()
        await backend.close()
    }

    // After a reserve that emptied the queue, the next one blocks on the signal list without
    // asking the script first. These check both ways that can go wrong: blocking while messages
    // are still ready, and sleeping through a lease that expires with no send to wake it. Each
    // reserve may wait 30 s; the deadlines are shorter, so a blocked reserve fails the test.

    @Test func aFullBatchWithMoreBehindItDoesNotMakeTheNextReserveBlock() async throws {
        let (backend, notifier, queue) = try await open()
        _ = try await backend.send(batch: ["a", "b", "c"].map { Array($0.utf8) }, to: queue)
        let bodies = try await withDeadline(.seconds(10), "the messages still ready after each full batch") {
            var bodies: [String] = []
            while bodies.count < 3 {
                try Task.checkCancellation()
                let batch = try await backend.reserve(
                    from: queue, count: 1, visibility: .seconds(30), wait: .seconds(30))
                for reservation in batch {
                    bodies.append(String(decoding: reservation.body, as: UTF8.self))
                    try await backend.ack(reservation)
                }
            }
            return bodies
        }
        #expect(bodies == ["a", "b", "c"])
        // The third batch was full too, and emptied the queue: the next reserve blocks until a send.
        let waiting = Task {
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(30))
        }
        _ = try await backend.send(Array("d".utf8), to: queue)
        let next = try await withDeadline(.seconds(10), "the reserve woken by a send") {
            try await waiting.value
        }
        #expect(next.map { String(decoding: $0.body, as: UTF8.self) } == ["d"])
        await notifier.close()
        await backend.close()
    }

    @Test func aReserveThatLastFoundTheQueueEmptyWakesWhenALeaseExpires() async throws {
        let (backend, notifier, queue) = try await open()
        _ = try await backend.send(Array("m".utf8), to: queue)
        let first = try await backend.reserve(
            from: queue, count: 4, visibility: .milliseconds(300), wait: .seconds(5))
        #expect(first.count == 1)
        // No ack and no send: only the lease's expiry can end this wait early.
        let again = try await withDeadline(.seconds(10), "the expired message to come back") {
            try await backend.reserve(from: queue, count: 4, visibility: .seconds(30), wait: .seconds(30))
        }
        #expect(again.map(\.messageID) == first.map(\.messageID))
        #expect(again.first?.deliveryCount == 2)
        for reservation in again { try await backend.ack(reservation) }
        await notifier.close()
        await backend.close()
    }

    @Test func aReserveThatLastFoundTheQueueEmptySeesADelayAnotherConsumerLearnedOf() async throws {
        let (first, notifier, queue) = try await open()
        let second = try await RedisStreamBackend.connect(url: Services.redisURL)
        #expect(try await first.reserve(from: queue, count: 4, visibility: .seconds(30), wait: .zero).isEmpty)
        // The second consumer takes a message, releases it for a moment and looks again: it
        // learns when the message comes due and empties the signal list. The first knows nothing
        // of this, and nothing will push to the list again.
        let id = try await second.send(Array("m".utf8), to: queue)
        var taken = try #require(
            try await second.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .zero).first)
        // The second must look again before the delay runs out; on a loaded machine it may not,
        // and then it takes the message back and tries with a longer delay.
        var held: Reservation<RedisStreamBackend.Receipt>? = taken
        for delay in [Duration.milliseconds(200), .seconds(1), .seconds(3)] {
            try await second.release(taken, delay: delay)
            held = try await second.reserve(from: queue, count: 4, visibility: .seconds(30), wait: .zero)
                .first
            guard let early = held else { break }
            taken = early
        }
        // Every round too slow: give it back now, so that the check below still has its message.
        if let held { try await second.release(held, delay: .zero) }
        let again = try await withDeadline(.seconds(20), "the released message to come back") {
            try await first.reserve(from: queue, count: 4, visibility: .seconds(30), wait: .seconds(30))
        }
        #expect(again.map(\.messageID) == [id])
        for reservation in again { try await first.ack(reservation) }
        await second.close()
        await notifier.close()
        await first.close()
    }

    @Test func aReserveCancelledWhileBlockedReturnsAtOnceAndTheConnectionServesAgain() async throws {
        let (backend, notifier, queue) = try await open()
        let reserving = Task {
            try await backend.reserve(from: queue, count: 4, visibility: .seconds(30), wait: .seconds(30))
        }
        let admin = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisURL))
        try await withDeadline(.seconds(20), "the reserve to block") {
            while !(try await admin.command(RedisCommand("CLIENT", "LIST")).text ?? "").contains("cmd=blpop")
            {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        reserving.cancel()
        let reserved = try await withDeadline(.seconds(5), "the cancelled reserve") {
            try await reserving.value
        }
        #expect(reserved.isEmpty)
        _ = try await backend.send(Array("m".utf8), to: queue)
        let next = try await backend.reserve(
            from: queue, count: 4, visibility: .seconds(30), wait: .seconds(5))
        #expect(next.count == 1)
        await admin.close()
        await notifier.close()
        await backend.close()
    }

    /// More dead letters than two script calls look at (200 each), so that a walk over them goes
    /// on from where the previous call stopped.
    private static let deadLettersPastTwoWindows = 450

    /// Sends `count` messages and dead-letters them, oldest first; returns their bodies and
    /// reservations.
    private func makeDeadLetters(_ count: Int, in backend: RedisStreamBackend, queue: QueueName)
        async throws -> (bodies: [[UInt8]], reserved: [Reservation<RedisStreamBackend.Receipt>])
    {
        let bodies = (0..<count).map { Array("dead \($0)".utf8) }
        _ = try await backend.send(batch: bodies, to: queue)
        let reserved = try await backend.reserve(
            from: queue, count: count, visibility: .seconds(60), wait: .seconds(5))
        try #require(reserved.count == count)
        for reservation in reserved { try await backend.deadLetter(reservation, reason: "dead") }
        return (bodies, reserved)
    }

    @Test func aDeadLetterPastTheFirstWindowsIsRequeuedByItsID() async throws {
        let (backend, notifier, queue) = try await open()
        let count = Self.deadLettersPastTwoWindows
        let (bodies, reserved) = try await makeDeadLetters(count, in: backend, queue: queue)
        let wanted = try #require(reserved.last { $0.body == bodies[count - 3] })

        #expect(try await backend.requeueDeadLetter(of: queue, messageID: "0-1") == false)
        #expect(try await backend.requeueDeadLetter(of: queue, messageID: wanted.messageID))
        #expect(
            try await backend.size(of: queue) == QueueSize(ready: 1, delayed: 0, reserved: 0, dead: count - 1)
        )
        let back = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(30), wait: .seconds(5))
        #expect(back.map(\.body) == [bodies[count - 3]])
        #expect(try await backend.purgeDeadLetters(of: queue) == count - 1)
        for reservation in back { try await backend.ack(reservation) }
        await notifier.close()
        await backend.close()
    }

    @Test func aDeadLetterPastTheFirstWindowsIsDeletedByItsID() async throws {
        let (backend, notifier, queue) = try await open()
        let count = Self.deadLettersPastTwoWindows
        let (bodies, reserved) = try await makeDeadLetters(count, in: backend, queue: queue)
        let doomed = try #require(reserved.last { $0.body == bodies[count - 3] })

        #expect(try await backend.deleteDeadLetter(of: queue, messageID: "0-1") == false)
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: doomed.messageID))
        #expect(
            try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: count - 1)
        )
        let left = try await backend.deadLetters(of: queue, count: count)
        #expect(
            left.map(\.body) == bodies.filter { $0 != bodies[count - 3] }, "not the others in their order")
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: doomed.messageID) == false)
        #expect(try await backend.purgeDeadLetters(of: queue) == count - 1)
        await notifier.close()
        await backend.close()
    }

    @Test func deadLettersAreRequeuedInWindowsWhateverTheCount() async throws {
        let (backend, notifier, queue) = try await open()
        let count = Self.deadLettersPastTwoWindows
        let (bodies, _) = try await makeDeadLetters(count, in: backend, queue: queue)

        // One more than a window: the second script call moves just the one.
        #expect(try await backend.requeueDeadLetters(of: queue, count: 201) == 201)
        #expect(
            try await backend.size(of: queue)
                == QueueSize(ready: 201, delayed: 0, reserved: 0, dead: count - 201))
        // What `ivy queue requeue-dead` asks for: everything, in windows, ending at a short one.
        #expect(try await backend.requeueDeadLetters(of: queue, count: .max) == count - 201)
        #expect(
            try await backend.size(of: queue) == QueueSize(ready: count, delayed: 0, reserved: 0, dead: 0))
        #expect(try await backend.requeueDeadLetters(of: queue, count: .max) == 0)
        #expect(try await backend.peek(queue, count: .max).map(\.body) == bodies, "not in their old order")
        #expect(try await backend.purge(queue) == count)
        await notifier.close()
        await backend.close()
    }

    @Test func aMessageAddedWithoutTheSignalPushIsStillTakenByAReserveThatIsBlocked() async throws {
        let (backend, notifier, queue) = try await open()
        let admin = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisURL))
        let signal = "ivy:{\(queue)}:signal"
        // The reserve's script empties the signal list when it finds the queue drained: once the
        // marker is gone, the reserve has gone on to block.
        _ = try await admin.command(RedisCommand("LPUSH", signal, "marker"))
        let reserving = Task {
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(3600))
        }
        try await withDeadline(.seconds(20), "the reserve to find the queue empty") {
            while try await admin.command(RedisCommand("EXISTS", signal)).integer != 0 {
                try await Task.sleep(for: .milliseconds(10))
            }
        }
        // As another language's producer might: XADD, and no push to the signal list.
        _ = try await admin.command(RedisCommand("XADD", "ivy:{\(queue)}:stream", "*", "b", "foreign"))
        let taken = try await withDeadline(
            .seconds(30), "the reserve to take the message (it waited for a push before)"
        ) {
            try await reserving.value
        }
        #expect(taken.map { String(decoding: $0.body, as: UTF8.self) } == ["foreign"])
        try await backend.ack(try #require(taken.first))
        await admin.close()
        await notifier.close()
        await backend.close()
    }

    /// With the notifier's statuses on the same server, a call's `waiting` goes with its send and
    /// its `running` with the reserve, which tells the worker what it found: no request more.
    @Test func statusesRideInTheSendAndTheReserveTheWorkerMakesAnyway() async throws {
        let (backend, notifier, queue) = try await open()
        let admin = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisURL))
        #expect(backend.canRecordStatuses(in: notifier))
        let statusless = try await RedisNotifier.connect(url: "\(Services.redisURL)?status_retention=0")
        #expect(!backend.canRecordStatuses(in: statusless), "a notifier that keeps no statuses")
        await statusless.close()
        let id = "ride-\(UUID().uuidString.prefix(8))"
        func send(_ id: String) async throws {
            let waiting = TaskStatus(
                id: id, state: .waiting, taskName: "t.ride", queue: queue.rawValue, channel: "ivy-notifier:x")
            let _: String = try await withCheckedThrowingContinuation { continuation in
                backend.send(Array(id.utf8), to: queue, recording: waiting, keptFor: .seconds(60)) {
                    continuation.resume(with: $0)
                }
            }
        }
        func reserve() async throws -> Reservation<RedisStreamBackend.Receipt> {
            try #require(
                try await backend.reserve(
                    from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5),
                    recordingStartsOn: "w1",
                    keptFor: .seconds(60)
                ).first)
        }
        try await send(id)
        #expect(try await notifier.status(of: id).state == .waiting, "recorded in the send's request")
        let entry = try #require(
            try await admin.command(RedisCommand("XRANGE", "ivy:{\(queue)}:stream", "-", "+")).array?.first?
                .array)
        #expect(
            entry[1].array?.compactMap(\.text) == ["b", id, "i", id], "the body first, then the call's id")

        let first = try await reserve()
        #expect(first.recordedStart == RecordedStart(callID: id, attempt: 1, state: .running))
        var status = try await notifier.status(of: id)
        #expect(status.state == .running && status.attempt == 1 && status.worker == "w1")
        #expect(
            status.taskName == "t.ride" && status.queue == queue.rawValue
                && status.channel == "ivy-notifier:x")
        #expect(abs(status.updatedAt?.timeIntervalSinceNow ?? .infinity) < 3600, "by the server's clock")
        let ttl = try #require(try await admin.command(RedisCommand("PTTL", "ivy:status:{\(id)}")).integer)
        #expect(ttl > 0 && ttl <= 60_000, "kept the retention: \(ttl) ms")

        // Delivered again, it is the next attempt; a cancel asked while one ran stops the next.
        try await backend.release(first, delay: .zero)
        let second = try await reserve()
        #expect(second.recordedStart == RecordedStart(callID: id, attempt: 2, state: .running))
        #expect(try await notifier.cancel(id, reason: "Cancelled: test").cancelRequested)
        try await backend.release(second, delay: .zero)
        let third = try await reserve()
        #expect(third.recordedStart?.state == .cancelled)
        try await backend.ack(third)

        // Cancelled before any worker took it: the reserve says so, and records no start.
        let early = "early-\(id)"
        try await send(early)
        #expect(try await notifier.cancel(early, reason: "Cancelled: test").state == .cancelled)
        let cancelled = try await reserve()
        #expect(cancelled.recordedStart == RecordedStart(callID: early, attempt: 1, state: .cancelled))
        status = try await notifier.status(of: early)
        #expect(status.state == .cancelled && status.reason == "Cancelled: test")
        try await backend.ack(cancelled)

        // A message without an id (sent without a status, or by another producer) is left to
        // the worker; so is every message of a reserve that records nothing.
        _ = try await backend.send(Array("plain".utf8), to: queue)
        #expect(try await reserve().recordedStart == nil)
        try await send("unrecorded-\(id)")
        let unrecorded = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(unrecorded.recordedStart == nil)
        #expect(try await notifier.status(of: "unrecorded-\(id)").state == .waiting)

        // Entries another producer wrote: an id that is not text, an `i` not second.
        let stream = "ivy:{\(queue)}:stream"
        _ = try await admin.command(
            RedisCommand("XADD", stream, "*", "b", "x", "i", [0xFF, 0xFE] as [UInt8]))
        _ = try await admin.command(RedisCommand("XADD", stream, "*", "b", "y", "z", "1", "i", "late-\(id)"))
        let foreign = try await backend.reserve(
            from: queue, count: 2, visibility: .seconds(30), wait: .seconds(5), recordingStartsOn: "w1",
            keptFor: .seconds(60))
        #expect(foreign.count == 2 && foreign.allSatisfy { $0.recordedStart == nil })
        #expect(try await notifier.status(of: "late-\(id)").state == .unknown)
        for key in [id, early, "unrecorded-\(id)"] {
            _ = try await admin.command(RedisCommand("DEL", "ivy:status:{\(key)}"))
        }
        _ = try await backend.purge(queue)
        await admin.close()
        await notifier.close()
        await backend.close()
    }
}
