// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Synchronization
import Testing

/// The queue backend contract (PROTOCOL.md, "Backend contract"), checked on every backend.
@Suite("Backend contract")
struct BackendConformanceTests {
    private static func body(_ text: String) -> [UInt8] { Array(text.utf8) }

    private func withBackend(
        _ kind: ConformanceBackend, _ check: (any InspectableQueueBackend, QueueName) async throws -> Void
    ) async throws {
        let (backend, notifier) = try await kind.open()
        do { try await check(backend, freshQueue()) } catch {
            await backend.close()
            await notifier.close()
            throw error
        }
        await backend.close()
        await notifier.close()
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func sendReserveAck(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await sendReserveAck(backend, queue) }
    }

    private func sendReserveAck(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let id = try await backend.send(Self.body("hello"), to: queue)
        #expect(try await backend.size(of: queue).ready == 1)
        let batch = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(30), wait: .seconds(5))
        #expect(batch.count == 1)
        let reservation = try #require(batch.first)
        #expect(reservation.messageID == id)
        #expect(reservation.body == Self.body("hello"))
        #expect(reservation.deliveryCount == 1)
        #expect(reservation.queue == queue)
        #expect(
            try await backend.size(of: queue)
                == backend.comparable(QueueSize(ready: 0, delayed: 0, reserved: 1, dead: 0)))
        try await backend.ack(reservation)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
        let again = try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .zero)
        #expect(again.isEmpty)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func reservedMessageIsInvisibleUntilTheVisibilityTimeoutThenComesBack(_ kind: ConformanceBackend)
        async throws
    {
        try await withBackend(kind) { backend, queue in try await visibilityExpiry(backend, queue) }
    }

    private func visibilityExpiry<Backend: InspectableQueueBackend>(_ backend: Backend, _ queue: QueueName)
        async throws
    {
        _ = try await backend.send(batch: (0..<3).map { Self.body("m\($0)") }, to: queue)
        // A consumer reserves everything and "crashes": it never acks. The reservations start
        // during the call, so the time is taken before it.
        let clock = ContinuousClock()
        let reservedAt = clock.now
        let first = try await backend.reserve(
            from: queue, count: 3, visibility: .milliseconds(400), wait: .seconds(5))
        #expect(first.count == 3)
        // Hidden while the reservations last. Only a look that ended within the visibility timeout
        // of `reservedAt` proves it (the reservations began after it); a loaded machine may be
        // slower, and then what the look took counts as redelivered.
        var redelivered = try await backend.reserve(
            from: queue, count: 3, visibility: .seconds(30), wait: .zero)
        if clock.now - reservedAt < .milliseconds(400) { #expect(redelivered.isEmpty) }
        // Another consumer's blocking reserve wakes when the reservations expire.
        while redelivered.count < 3 {
            let batch = try await backend.reserve(
                from: queue, count: 3, visibility: .seconds(30), wait: .seconds(10))
            try #require(!batch.isEmpty, "expired reservations did not come back")
            redelivered += batch
        }
        #expect(clock.now - reservedAt >= .milliseconds(400))
        #expect(Set(redelivered.map(\.messageID)) == Set(first.map(\.messageID)))
        #expect(redelivered.allSatisfy { $0.deliveryCount == 2 })
        for reservation in redelivered { try await backend.ack(reservation) }
        #expect(try await backend.size(of: queue).reserved == 0)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func ackAfterTheReservationExpiredFailsAndTheMessageIsNotLost(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await lateAck(backend, queue) }
    }

    private func lateAck(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        _ = try await backend.send(Self.body("late"), to: queue)
        let stale = try #require(
            try await backend.reserve(
                from: queue, count: 1, visibility: .milliseconds(100), wait: .seconds(5)
            ).first)
        let fresh = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(10))
                .first,
            "the expired reservation did not come back")
        #expect(fresh.messageID == stale.messageID)
        await #expect(throws: IvyError.self) { try await backend.ack(stale) }
        try await backend.ack(fresh)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func extendKeepsTheReservation(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await extend(backend, queue) }
    }

    private func extend<Backend: InspectableQueueBackend>(_ backend: Backend, _ queue: QueueName) async throws
    {
        _ = try await backend.send(Self.body("long"), to: queue)
        // A loaded machine may let a short reservation run out before the extension reaches
        // the broker; then the message is back, and the check runs again with a longer one.
        for visibility in [Duration.milliseconds(300), .seconds(1), .seconds(3), .seconds(10)] {
            let reservation = try #require(
                try await backend.reserve(from: queue, count: 1, visibility: visibility, wait: .seconds(30))
                    .first)
            let extended: Reservation<Backend.Receipt>
            do { extended = try await backend.extend(reservation, visibility: .seconds(60)) } catch let error
                as IvyError where error.code == .reservationLost
            {
                continue
            }
            // Past the original timeout, another consumer still sees nothing.
            let stolen = try await backend.reserve(
                from: queue, count: 1, visibility: .seconds(30), wait: visibility + .milliseconds(600))
            #expect(stolen.isEmpty)
            try await backend.ack(extended)
            return
        }
        Issue.record("every extension came after its reservation had run out")
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func releaseWithDelayHidesTheMessageForTheDelayAndCountsTheDelivery(_ kind: ConformanceBackend)
        async throws
    {
        try await withBackend(kind) { backend, queue in try await releaseWithDelay(backend, queue) }
    }

    private func releaseWithDelay(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        _ = try await backend.send(Self.body("retry me"), to: queue)
        _ = try await backend.send(Self.body("much later"), to: queue)
        let batch = try await backend.reserve(
            from: queue, count: 2, visibility: .seconds(30), wait: .seconds(5))
        let first = try #require(batch.first { $0.body == Self.body("retry me") })
        let later = try #require(batch.first { $0.body == Self.body("much later") })
        // One delay no machine outlasts, to see the message hidden; one short enough to wait out.
        // (A short delay alone cannot show hiding: a loaded machine may pass it before the next step.)
        // The sizes are taken while the short one is still reserved: a message on its way back
        // from a delay may be counted in both places (or neither) on a broker that moves it.
        try await backend.release(later, delay: .seconds(3600))
        #expect(
            try await backend.size(of: queue)
                == backend.comparable(QueueSize(ready: 0, delayed: 1, reserved: 1, dead: 0)))
        let clock = ContinuousClock()
        let releasedAt = clock.now
        try await backend.release(first, delay: .milliseconds(300))
        let early = try await backend.reserve(from: queue, count: 2, visibility: .seconds(30), wait: .zero)
        #expect(early.allSatisfy { $0.messageID != later.messageID }, "a delayed message came back early")
        var second = early.first
        if second == nil {
            second = try await backend.reserve(
                from: queue, count: 1, visibility: .seconds(30), wait: .seconds(10)
            ).first
        }
        let again = try #require(second, "the released message did not come back")
        #expect(clock.now - releasedAt >= .milliseconds(300))
        #expect(again.messageID == first.messageID)
        #expect(again.body == first.body)
        #expect(again.deliveryCount == 2)
        // Released without delay: visible at once.
        try await backend.release(again, delay: .zero)
        let third = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(third.deliveryCount == 3)
        #expect(third.messageID == first.messageID)
        try await backend.ack(third)
        #expect(
            try await backend.size(of: queue)
                == backend.comparable(QueueSize(ready: 0, delayed: 1, reserved: 0, dead: 0)))
        #expect(try await backend.purge(queue) == 1)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func deadLetterKeepsTheBodyAndReasonAndCanBeRequeuedOrPurged(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await deadLetter(backend, queue) }
    }

    private func deadLetter(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        _ = try await backend.send(batch: [Self.body("bad 1"), Self.body("bad 2")], to: queue)
        let batch = try await backend.reserve(
            from: queue, count: 2, visibility: .seconds(30), wait: .seconds(5))
        #expect(batch.count == 2)
        for reservation in batch {
            try await backend.deadLetter(reservation, reason: "reason for \(reservation.messageID)")
        }
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 2))
        let letters = try await backend.deadLetters(of: queue, count: 10)
        #expect(letters.map(\.body) == [Self.body("bad 1"), Self.body("bad 2")])
        #expect(letters.map(\.reason) == batch.map { "reason for \($0.messageID)" })
        #expect(letters.allSatisfy { $0.deliveryCount == 1 && $0.queue == queue })

        #expect(try await backend.requeueDeadLetters(of: queue, count: 1) == 1)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 1, delayed: 0, reserved: 0, dead: 1))
        let requeued = try #require(
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(5))
                .first)
        #expect(requeued.body == Self.body("bad 1"))
        try await backend.ack(requeued)
        #expect(try await backend.purgeDeadLetters(of: queue) == 1)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0))
    }

    /// Reserves `count` messages, in as many reserves as it takes.
    private func reserve<Backend: InspectableQueueBackend>(
        _ count: Int, from queue: QueueName, in backend: Backend
    ) async throws -> [Reservation<Backend.Receipt>] {
        var reserved: [Reservation<Backend.Receipt>] = []
        while reserved.count < count {
            let batch = try await backend.reserve(
                from: queue, count: count - reserved.count, visibility: .seconds(30), wait: .seconds(5))
            try #require(!batch.isEmpty, "\(count - reserved.count) of \(count) messages did not come")
            reserved += batch
        }
        return reserved
    }

    /// Sends a message for each of `bodies` and dead-letters them in that order.
    private func makeDeadLetters(
        _ bodies: [[UInt8]], in backend: some InspectableQueueBackend, _ queue: QueueName
    ) async throws {
        _ = try await backend.send(batch: bodies, to: queue)
        let reserved = try await reserve(bodies.count, from: queue, in: backend)
        for body in bodies {
            let reservation = try #require(reserved.first { $0.body == body })
            try await backend.deadLetter(reservation, reason: "dead on purpose")
        }
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func requeueingWithTheLargestCountMovesEveryDeadLetter(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await requeueAll(backend, queue) }
    }

    /// `ivy queue requeue-dead` without `-n` asks for `Int.max`.
    private func requeueAll(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let bodies = ["dead 1", "dead 2", "dead 3"].map(Self.body)
        try await makeDeadLetters(bodies, in: backend, queue)
        #expect(try await backend.requeueDeadLetters(of: queue, count: .max) == 3)
        #expect(try await backend.size(of: queue) == QueueSize(ready: 3, delayed: 0, reserved: 0, dead: 0))
        #expect(try await backend.requeueDeadLetters(of: queue, count: .max) == 0)
        let back = try await reserve(3, from: queue, in: backend)
        #expect(Set(back.map(\.body)) == Set(bodies))
        for reservation in back { try await backend.ack(reservation) }
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func oneDeadLetterIsRequeuedByItsIDAndTheOthersStay(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await requeueByID(backend, queue) }
    }

    private func requeueByID<Backend: InspectableQueueBackend>(_ backend: Backend, _ queue: QueueName)
        async throws
    {
        let bodies = ["dead 1", "dead 2", "dead 3"].map(Self.body)
        try await makeDeadLetters(bodies, in: backend, queue)
        let letters = try await backend.deadLetters(of: queue, count: 10)
        #expect(letters.map(\.body) == bodies)
        try #require(letters.count == 3)
        let allDead = QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 3)

        #expect(try await backend.requeueDeadLetter(of: queue, messageID: "no-such-message") == false)
        try await Self.waitForSize(
            allDead, of: queue, in: backend, "an unknown id to leave the queue as it was")
        #expect(Set(try await backend.deadLetters(of: queue, count: 10)) == Set(letters))

        #expect(try await backend.requeueDeadLetter(of: queue, messageID: letters[1].messageID))
        let oneBack = backend.comparable(QueueSize(ready: 1, delayed: 0, reserved: 0, dead: 2))
        try await Self.waitForSize(oneBack, of: queue, in: backend, "one dead letter to be back in the queue")
        let left = try await backend.deadLetters(of: queue, count: 10)
        #expect(Set(left.map(\.messageID)) == [letters[0].messageID, letters[2].messageID])
        #expect(Set(left.map(\.body)) == [bodies[0], bodies[2]])
        let requeued = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(30), wait: .seconds(5))
        #expect(requeued.map(\.body) == [bodies[1]], "not exactly the dead letter asked for came back")
        #expect(requeued.first?.deliveryCount == 1)
        for reservation in requeued { try await backend.ack(reservation) }
        #expect(
            try await backend.requeueDeadLetter(of: queue, messageID: letters[1].messageID) == false,
            "a dead letter was requeued twice")
        // Counted before the purge: it deletes only what the broker has taken back by then.
        try await Self.waitForSize(
            QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 2), of: queue, in: backend,
            "the dead letters the search passed to be back")
        #expect(try await backend.purgeDeadLetters(of: queue) == 2)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func oneDeadLetterIsDeletedByItsIDAndTheOthersStay(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await deleteByID(backend, queue) }
    }

    private func deleteByID(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let bodies = ["dead 1", "dead 2", "dead 3"].map(Self.body)
        try await makeDeadLetters(bodies, in: backend, queue)
        let letters = try await backend.deadLetters(of: queue, count: 10)
        #expect(letters.map(\.body) == bodies)
        try #require(letters.count == 3)

        #expect(try await backend.deleteDeadLetter(of: queue, messageID: letters[1].messageID))
        // Counted before each look that follows: a search gives back the dead letters it passed.
        let twoDead = QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 2)
        try await Self.waitForSize(twoDead, of: queue, in: backend, "one dead letter gone, and none requeued")
        #expect(
            try await backend.deleteDeadLetter(of: queue, messageID: letters[1].messageID) == false,
            "a dead letter was deleted twice")
        try await Self.waitForSize(
            twoDead, of: queue, in: backend, "the dead letters the search passed to be back")
        #expect(try await backend.deleteDeadLetter(of: queue, messageID: "no-such-message") == false)
        try await Self.waitForSize(
            twoDead, of: queue, in: backend, "an unknown id to leave the queue as it was")

        let left = try await backend.deadLetters(of: queue, count: 10)
        #expect(Set(left.map(\.messageID)) == [letters[0].messageID, letters[2].messageID])
        #expect(Set(left.map(\.body)) == [bodies[0], bodies[2]])
        let requeued = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(30), wait: .zero)
        #expect(requeued.isEmpty, "a deleted dead letter came back to the queue")
        try await Self.waitForSize(
            twoDead, of: queue, in: backend, "the dead letters the listing took to be back")
        #expect(try await backend.purgeDeadLetters(of: queue) == 2)
    }

    /// Waits until the queue's size is `expected`, failing with ``DeadlineExceeded`` (saying
    /// `what` did not happen) when it is not within the deadline. The broker may count a message
    /// a look gave back a moment after: AMQP gives back with a reject, which it does not answer.
    private static func waitForSize(
        _ expected: QueueSize, of queue: QueueName, in backend: some InspectableQueueBackend, _ what: String
    ) async throws {
        try await withDeadline(.seconds(30), what) {
            // The pause only paces the asking; nothing depends on its length.
            while try await backend.size(of: queue) != expected {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func messagesComeOutInTheOrderTheyWentIn(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await fifo(backend, queue) }
    }

    private func fifo(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let singles = (0..<20).map { "single-\($0)" }
        for text in singles { _ = try await backend.send(Self.body(text), to: queue) }
        let batched = (0..<30).map { "batch-\($0)" }
        _ = try await backend.send(batch: batched.map(Self.body), to: queue)
        #expect(try await backend.peek(queue, count: 3).map(\.body) == singles.prefix(3).map(Self.body))
        // A peek that takes messages and gives them back may put them behind the others.
        let expected =
            backend.peekKeepsOrder ? singles + batched : singles.dropFirst(3) + batched + singles.prefix(3)
        var received: [String] = []
        while received.count < 50 {
            let batch = try await backend.reserve(
                from: queue, count: 7, visibility: .seconds(600), wait: .seconds(5))
            try #require(!batch.isEmpty)
            #expect(batch.count <= 7)
            received += batch.map { String(decoding: $0.body, as: UTF8.self) }
            for reservation in batch { try await backend.ack(reservation) }
        }
        #expect(received == expected)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func batchesOfManySizes(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await batches(backend, queue) }
    }

    private func batches(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        var sent = 0
        for size in [1, 2, 99, 100, 101, 250] {
            let ids = try await backend.send(batch: (0..<size).map { Self.body("\(size)-\($0)") }, to: queue)
            #expect(ids.count == size)
            #expect(Set(ids).count == size)
            sent += size
        }
        #expect(try await backend.send(batch: [], to: queue).isEmpty)
        #expect(try await backend.size(of: queue).ready == sent)
        var received = 0
        while received < sent {
            // Acked one by one: on a slow, shared machine a hundred acks over HTTP (IronMQ) took
            // more than 30 s, and the reservations ran out before the last.
            let batch = try await backend.reserve(
                from: queue, count: 100, visibility: .seconds(600), wait: .seconds(5))
            try #require(!batch.isEmpty)
            #expect(batch.count <= 100)
            received += batch.count
            for reservation in batch { try await backend.ack(reservation) }
        }
        #expect(received == sent)
        #expect(try await backend.size(of: queue).ready == 0)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func oversizedMessagesAreRefusedBeforeTheyReachTheBroker(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await oversized(backend, queue) }
    }

    private func oversized(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let body = [UInt8](repeating: UInt8(ascii: "x"), count: backend.maximumMessageSize + 1)
        let error = await #expect(throws: IvyError.self) { _ = try await backend.send(body, to: queue) }
        #expect(error?.code == .messageTooLarge)
        guard let pipelined = backend as? any PipelinedQueueBackend else { return }
        let reported = try await Self.sendReporting(body, to: queue, through: pipelined)
        guard case .failure(let reportedError) = reported else {
            Issue.record("an oversized message was reported sent")
            return
        }
        #expect((reportedError as? IvyError)?.code == .messageTooLarge)
        #expect(try await backend.size(of: queue).ready == 0)
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func aSendThatReportsThroughACallbackDeliversTheMessageUnderTheIdItReports(_ kind: ConformanceBackend)
        async throws
    {
        try await withBackend(kind) { backend, queue in try await sendReporting(backend, queue) }
    }

    private func sendReporting(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        // A capability: only the backends that declare it are held to it.
        guard let pipelined = backend as? any PipelinedQueueBackend else { return }
        let id = try await Self.sendReporting(Self.body("reported"), to: queue, through: pipelined).get()
        let reserved = try await backend.reserve(
            from: queue, count: 10, visibility: .seconds(30), wait: .seconds(5))
        #expect(reserved.map(\.messageID) == [id])
        #expect(reserved.first?.body == Self.body("reported"))
        for reservation in reserved { try await backend.ack(reservation) }
    }

    /// What `send(_:to:completion:)` reported, once.
    private static func sendReporting(
        _ body: [UInt8], to queue: QueueName, through backend: any PipelinedQueueBackend
    ) async throws -> Result<String, any Error> {
        let reports = Locked<[Result<String, any Error>]>([])
        try await withDeadline(.seconds(10), "the send to report") {
            await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
                backend.send(body, to: queue) { outcome in
                    reports.withLock { $0.append(outcome) }
                    done.resume()
                }
            }
        }
        #expect(reports.value.count == 1, "a send reports once")
        return reports.value[0]
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func concurrentConsumersReceiveEachMessageOnce(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await concurrentConsumers(backend, queue) }
    }

    private func concurrentConsumers(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws
    {
        let total = 400
        let sentIDs = try await backend.send(batch: (0..<total).map { Self.body("c\($0)") }, to: queue)
        let seen = Locked<[String]>([])
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<4 {
                group.addTask {
                    while seen.withLock({ $0.count }) < total {
                        let batch = try await backend.reserve(
                            from: queue, count: 10, visibility: .seconds(30), wait: .milliseconds(200))
                        for reservation in batch {
                            seen.withLock { $0.append(reservation.messageID) }
                            try await backend.ack(reservation)
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        let ids = seen.withLock { $0 }
        #expect(ids.count == total)
        #expect(Set(ids) == Set(sentIDs))
    }

    @Test(arguments: ConformanceBackend.withTransports)
    func aBlockedReserveReturnsWhenItsTaskIsCancelled(_ kind: ConformanceBackend) async throws {
        try await withBackend(kind) { backend, queue in try await cancelledReserve(backend, queue) }
    }

    private func cancelledReserve(_ backend: some InspectableQueueBackend, _ queue: QueueName) async throws {
        let reserving = Task {
            try await backend.reserve(from: queue, count: 1, visibility: .seconds(30), wait: .seconds(60))
                .count
        }
        reserving.cancel()
        let count = try await withDeadline(.seconds(10), "the cancelled reserve") {
            try await reserving.value
        }
        #expect(count == 0)
    }
}
