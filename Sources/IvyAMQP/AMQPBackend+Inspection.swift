// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore

/// Sizes, peeks and dead letters through AMQP alone (no management plugin).
///
/// AMQP reports a queue's ready messages (`queue.declare-ok`), not its unacknowledged ones, and
/// has no way to look at a message without taking it. So `reserved` counts only this backend's
/// own reservations, and a peek takes messages with `basic.get` and rejects them back to their
/// place: the broker then flags them redelivered, and a quorum queue counts that as a delivery
/// and puts them at the back.
extension AMQPBackend {
    /// Whether a peek leaves the queue's order as it was: on a classic queue; a quorum queue
    /// puts the messages a peek looked at behind the others.
    public var peekKeepsOrder: Bool { topology.queueType == .classic }

    /// Ready messages in the work queue, and those delivered to this backend's consumer but not
    /// reserved; delayed: in its delay queues; reserved: held by this backend; dead: in its
    /// dead-letter queue. Declares the queues that do not exist yet, delay queues included.
    public func size(of queue: QueueName) async throws -> QueueSize {
        let connection = try await link.connection()
        let ready = try await connection.declareQueue(
            queue.rawValue, arguments: topology.workQueueArguments(for: queue)
        )
        .messages
        let dead = try await connection.declareQueue(
            AMQPTopology.dead(queue), arguments: topology.queueArguments
        )
        .messages
        // Declared rather than looked at: a passive declare of a missing queue costs its channel,
        // and while a slow count runs, messages move between the queues.
        var delayed = 0
        for rung in AMQPTopology.rungs {
            delayed += try await connection.declareQueue(
                AMQPTopology.delay(queue, rung: rung),
                arguments: topology.delayArguments(for: queue, rung: rung)
            ).messages
        }
        let held = held(in: queue)
        return QueueSize(ready: ready + held.buffered, delayed: delayed, reserved: held.reserved, dead: dead)
    }

    public func peek(_ queue: QueueName, count: Int) async throws -> [QueuedMessage] {
        try await browse(queue.rawValue, count: count).map { delivery in
            QueuedMessage(
                messageID: delivery.messageID ?? "", body: delivery.body,
                deliveryCount: topology.deliveryCount(of: delivery) - 1)
        }
    }

    public func deadLetters(of queue: QueueName, count: Int) async throws -> [DeadLetter] {
        try await browse(AMQPTopology.dead(queue), count: count).map { delivery in
            let headers = delivery.headers
            let milliseconds = headers[AMQPTopology.deadLetteredAtHeader]?.integer ?? 0
            return DeadLetter(
                queue: headers[AMQPTopology.queueHeader]?.string.flatMap { try? QueueName($0) } ?? queue,
                messageID: delivery.messageID ?? "", body: delivery.body,
                reason: headers[AMQPTopology.reasonHeader]?.string ?? "",
                deliveryCount: headers[AMQPTopology.deliveriesHeader]?.integer.flatMap { Int(exactly: $0) }
                    ?? 0,
                deadLetteredAt: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
        }
    }

    /// Takes dead letters one at a time and sends each to the work queue as a new message
    /// (its delivery count from zero), then acks it.
    public func requeueDeadLetters(of queue: QueueName, count: Int) async throws -> Int {
        let connection = try await link.connection()
        var moved = 0
        while moved < count,
            let letter = try await unlessMissing({ () throws(IvyError) in
                try await connection.get(AMQPTopology.dead(queue))
            })
        {
            try await moveBack(letter, to: queue, on: connection)
            moved += 1
        }
        return moved
    }

    /// Takes dead letters with `basic.get`, oldest first, keeping those it passes, until it meets
    /// the one with this `message_id`; that one is sent to the work queue as a new message and
    /// acked, and those passed are rejected back.
    ///
    /// A classic queue puts what it gets back in its old place, so the dead letters keep their
    /// order. A quorum queue puts it behind the other dead letters and counts the look as a
    /// delivery (which a delivery limit on the dead-letter queue would count too, as it counts a
    /// ``deadLetters(of:count:)``). The broker does not answer rejects: a quorum queue may count
    /// the dead letters passed in ``size(of:)`` a moment after this returns (a listing on this
    /// backend sees them at once). At most 10,000 dead letters are passed.
    ///
    /// - Throws: ``IvyError/Code/commandFailed`` when the id is not among the first 10,000 dead
    ///   letters and there are more (nothing moved then).
    public func requeueDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        let connection = try await link.connection()
        var passed: [AMQPDelivery] = []
        do {
            let moved = try await requeueFirst(
                of: queue, messageID: messageID, on: connection, passing: &passed)
            await rejectBack(passed, on: connection)
            return moved
        } catch {
            await rejectBack(passed, on: connection)
            throw error
        }
    }

    /// How many dead letters ``requeueDeadLetter(of:messageID:)`` passes at most while it looks
    /// for one: each is held, unacknowledged and in memory, until the look ends.
    static let deadLetterScanLimit = 10_000

    /// Gets dead letters until the one with `messageID`, which moves back; the others are added
    /// to `passed`, for the caller to reject back whatever happens.
    private func requeueFirst(
        of queue: QueueName, messageID: String, on connection: AMQPConnection,
        passing passed: inout [AMQPDelivery]
    ) async throws(IvyError) -> Bool {
        while true {
            guard passed.count < Self.deadLetterScanLimit else {
                throw IvyError(
                    .commandFailed, endpoint: endpoint,
                    detail:
                        "message \(messageID) is not among the first \(Self.deadLetterScanLimit) dead letters "
                        + "of queue \(queue); requeue or purge those first")
            }
            guard
                let letter = try await unlessMissing({ () throws(IvyError) in
                    try await connection.get(AMQPTopology.dead(queue))
                })
            else { return false }
            guard (letter.messageID ?? "") == messageID else {
                passed.append(letter)
                continue
            }
            try await moveBack(letter, to: queue, on: connection)
            return true
        }
    }

    /// Sends a dead letter taken with `basic.get` to the work queue as a new message (its
    /// delivery count from zero), then acks it; rejects it back when the send fails.
    private func moveBack(_ letter: AMQPDelivery, to queue: QueueName, on connection: AMQPConnection)
        async throws(IvyError)
    {
        do {
            try await publish(
                letter.body, to: queue.rawValue, declaring: queue,
                messageID: letter.messageID.flatMap { $0.isEmpty ? nil : $0 }
                    ?? "requeued-\(UUID().uuidString)")
        } catch {
            try? await connection.reject(deliveryTag: letter.deliveryTag, requeue: true)
            throw error
        }
        try await connection.ack(deliveryTag: letter.deliveryTag)
    }

    /// Rejects deliveries taken with `basic.get` back to their queue; one that cannot be (its
    /// connection went) the broker gives back by itself.
    private func rejectBack(_ deliveries: [AMQPDelivery], on connection: AMQPConnection) async {
        for delivery in deliveries {
            try? await connection.reject(deliveryTag: delivery.deliveryTag, requeue: true)
        }
    }

    /// Purges the work queue and its delay queues.
    public func purge(_ queue: QueueName) async throws -> Int {
        let connection = try await link.connection()
        var purged = try await ifExists { () throws(IvyError) in try await connection.purge(queue.rawValue) }
        for rung in AMQPTopology.rungs {
            purged += try await ifExists { () throws(IvyError) in
                try await connection.purge(AMQPTopology.delay(queue, rung: rung))
            }
        }
        return purged
    }

    public func purgeDeadLetters(of queue: QueueName) async throws -> Int {
        let connection = try await link.connection()
        return try await ifExists { () throws(IvyError) in
            try await connection.purge(AMQPTopology.dead(queue))
        }
    }

    /// Up to `count` of a queue's ready messages, oldest first, taken with `basic.get` and all
    /// rejected back once read, so that they keep their order. None when the queue does not exist.
    private func browse(_ name: String, count: Int) async throws -> [AMQPDelivery] {
        let connection = try await link.connection()
        var taken: [AMQPDelivery] = []
        var failure: IvyError?
        while taken.count < count {
            do {
                guard
                    let delivery = try await unlessMissing({ () throws(IvyError) in
                        try await connection.get(name)
                    })
                else { break }
                taken.append(delivery)
            } catch {
                failure = error
                break
            }
        }
        await rejectBack(taken, on: connection)
        if let failure { throw failure }
        return taken
    }

    /// A count from the broker, or 0 when the queue it is about does not exist.
    private func ifExists(_ count: () async throws(IvyError) -> Int) async throws(IvyError) -> Int {
        try await unlessMissing(count) ?? 0
    }

    /// What the broker answered, or nil when the queue it is about does not exist.
    private func unlessMissing<Value>(_ ask: () async throws(IvyError) -> Value?) async throws(IvyError)
        -> Value?
    {
        do { return try await ask() } catch
            where error.code == .commandFailed && error.detail?.contains("NOT_FOUND") == true
        {
            return nil
        }
    }
}
