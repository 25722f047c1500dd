// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore

/// Sizes, peeks and dead letters through AMQP alone (no management plugin).
///
/// AMQP reports a queue's ready messages (`queue.declare-ok`), not its unacknowledged ones, and
/// has no way to look at a message without taking it. So `reserved` counts only this backend's
/// own reservations, and a peek takes messages with `basic.get` and rejects them back to their
/// place: the broker then flags them redelivered, and a quorum queue counts that as a delivery
/// and puts them at the back. Dead letters looked at on a quorum queue go back as copies
/// instead, which count no delivery (see ``deadLetters(of:count:)``).
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
        try await browse(queue.rawValue, of: queue, count: count).map { delivery in
            QueuedMessage(
                messageID: delivery.messageID ?? "", body: delivery.body,
                deliveryCount: topology.deliveryCount(of: delivery) - 1)
        }
    }

    /// The oldest dead letters, taken with `basic.get` and given back once read: rejected back
    /// to their places on a classic queue; on a quorum queue sent back as copies with their
    /// message id and headers, each confirmed before its original is acked, so that a look
    /// counts no delivery there (a quorum `q.dead` drops a letter past its delivery limit: 20
    /// by default on RabbitMQ 4).
    public func deadLetters(of queue: QueueName, count: Int) async throws -> [DeadLetter] {
        try await browse(AMQPTopology.dead(queue), of: queue, count: count).map { delivery in
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
    /// acked, and those passed are given back as a listing gives them back
    /// (``deadLetters(of:count:)``).
    ///
    /// A classic queue puts what it gets back in its old place, so the dead letters keep their
    /// order; on a quorum queue those passed go behind the other dead letters. The broker does
    /// not answer rejects: a classic queue may count the dead letters passed in ``size(of:)`` a
    /// moment after this returns (a listing on this backend sees them at once).
    ///
    /// It looks at 10,000 dead letters at most, each held unacknowledged and in memory until the
    /// look ends. When the id is not among them it returns false, as for an id not there, and
    /// logs a warning that says so: the search gave up, which is no connection error. Requeue
    /// or purge the older dead letters first.
    public func requeueDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        try await takeDeadLetter(messageID, of: queue, toDo: "requeue") {
            letter, connection throws(IvyError) in
            try await moveBack(letter, to: queue, on: connection)
        }
    }

    /// Takes dead letters as ``requeueDeadLetter(of:messageID:)`` does, within the same bound,
    /// and acks the one with this `message_id`, which deletes it; those passed are given back
    /// in the same way.
    public func deleteDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        try await takeDeadLetter(messageID, of: queue, toDo: "delete") {
            letter, connection throws(IvyError) in
            try await connection.ack(deliveryTag: letter.deliveryTag)
        }
    }

    /// The search of ``requeueDeadLetter(of:messageID:)`` and ``deleteDeadLetter(of:messageID:)``:
    /// ``takeFirst(of:messageID:toDo:on:passing:take:)``, then the dead letters it passed given
    /// back, whatever happens. Returns whether it found the one.
    private func takeDeadLetter(
        _ messageID: String, of queue: QueueName, toDo verb: String,
        take: (AMQPDelivery, AMQPConnection) async throws(IvyError) -> Void
    ) async throws -> Bool {
        let connection = try await link.connection()
        var passed: [AMQPDelivery] = []
        let dead = AMQPTopology.dead(queue)
        do {
            let found = try await takeFirst(
                of: queue, messageID: messageID, toDo: verb, on: connection, passing: &passed, take: take)
            await giveBack(looked: passed, from: dead, of: queue, on: connection)
            return found
        } catch {
            await giveBack(looked: passed, from: dead, of: queue, on: connection)
            throw error
        }
    }

    /// Gets dead letters until the one with `messageID`, which goes to `take`, or until it has
    /// looked at ``deadLetterScanLimit`` of them (then it logs a warning naming what the search
    /// was `toDo`); the others are added to `passed`, for the caller to give back whatever
    /// happens.
    private func takeFirst(
        of queue: QueueName, messageID: String, toDo verb: String, on connection: AMQPConnection,
        passing passed: inout [AMQPDelivery],
        take: (AMQPDelivery, AMQPConnection) async throws(IvyError) -> Void
    ) async throws(IvyError) -> Bool {
        while true {
            guard
                let letter = try await unlessMissing({ () throws(IvyError) in
                    try await connection.get(AMQPTopology.dead(queue))
                })
            else { return false }
            guard (letter.messageID ?? "") != messageID else {
                try await take(letter, connection)
                return true
            }
            passed.append(letter)
            if passed.count >= deadLetterScanLimit {
                logger.warning(
                    "the dead letter to \(verb) is not among the first \(deadLetterScanLimit) dead letters "
                        + "of its queue, and no more are looked at; requeue or purge those first",
                    ["queue": queue.rawValue, "message.id": messageID])
                return false
            }
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

    /// Gives back what a look took with `basic.get` from `name`, one of `queue`'s queues.
    ///
    /// A reject puts each back: a classic queue in its old place, a quorum queue behind the
    /// others, counting the look as a delivery. That count would cost dead letters on a quorum
    /// `q.dead`, which has no dead-letter queue of its own: past a delivery limit (RabbitMQ 4
    /// sets 20 by default) the broker drops a message. So a dead letter taken from there goes
    /// back as a copy with its message id and headers (not the broker's `x-delivery-count`),
    /// confirmed before the original is acked: a connection lost between the two leaves the
    /// letter twice, never gone. A copy that fails has it and the rest rejected back.
    func giveBack(
        looked deliveries: [AMQPDelivery], from name: String, of queue: QueueName,
        on connection: AMQPConnection
    ) async {
        guard topology.queueType == .quorum, name == AMQPTopology.dead(queue) else {
            await rejectBack(deliveries[...], on: connection)
            return
        }
        var left = deliveries[...]
        while let letter = left.first {
            var headers = letter.headers
            headers["x-delivery-count"] = nil
            let before = headers[AMQPTopology.deliveriesHeader]?.integer.flatMap { Int(exactly: $0) } ?? 0
            do throws(IvyError) {
                try await replace(
                    letter, of: queue, messageID: Self.messageID(of: letter), deliveriesBefore: before,
                    to: name,
                    headers: headers)
                left = left.dropFirst()
            } catch {
                logger.warning(
                    "giving a dead letter back as a copy failed; rejecting the rest back, which counts a delivery",
                    ["queue": queue.rawValue, "error": "\(error)"])
                await rejectBack(left, on: connection)
                return
            }
        }
    }

    /// Rejects deliveries taken with `basic.get` back to their queue; one that cannot be (its
    /// connection went) the broker gives back by itself.
    private func rejectBack(_ deliveries: ArraySlice<AMQPDelivery>, on connection: AMQPConnection) async {
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

    /// Up to `count` ready messages of `name`, one of `queue`'s queues, oldest first, taken with
    /// `basic.get` and all given back once read (``giveBack(looked:from:of:on:)``).
    /// None when the queue does not exist.
    private func browse(_ name: String, of queue: QueueName, count: Int) async throws -> [AMQPDelivery] {
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
        await giveBack(looked: taken, from: name, of: queue, on: connection)
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
