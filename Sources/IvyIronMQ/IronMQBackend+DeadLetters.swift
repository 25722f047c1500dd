// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore
internal import Synchronization

/// Dead letters and inspection.
///
/// A queue's dead letters go to the queue its own `dead_letter` setting names, else to
/// `<queue>--dead`. A queue of the second kind holds one queue's dead letters only, and
/// everything in it is that queue's. One named by the setting may serve several queues: there a
/// queue's dead letters are the Ivy records that name it, requeueing and purging take only
/// those (and leave the rest, and messages IronMQ itself moved there, in place), and the `dead`
/// count is the whole queue's.
extension IronMQBackend {
    /// A dead letter as it waits in its dead-letter queue.
    struct DeadRecord: Codable {
        /// The queue it died in; absent in records written before dead-letter queues could be
        /// shared.
        let queue: String?
        let id: String
        let body: String
        let reason: String
        let deliveryCount: Int
        let deadLetteredAt: String

        enum CodingKeys: String, CodingKey {
            case queue, id, body, reason
            case deliveryCount = "delivery_count"
            case deadLetteredAt = "dead_lettered_at"
        }

        /// The record a dead-letter message holds; nil for anything else (a message IronMQ
        /// moved there itself past `max_reservations`).
        init?(_ body: String) {
            guard let record = try? JSONDecoder().decode(Self.self, from: Data(body.utf8)) else { return nil }
            self = record
        }

        init(
            queue: String, id: String, body: String, reason: String, deliveryCount: Int,
            deadLetteredAt: String
        ) {
            self.queue = queue
            self.id = id
            self.body = body
            self.reason = reason
            self.deliveryCount = deliveryCount
            self.deadLetteredAt = deadLetteredAt
        }
    }

    /// Posts the dead-letter record, then deletes the message: a failure in between leaves a
    /// duplicate record, never a lost message.
    public func deadLetter(_ reservation: Reservation<Receipt>, reason: String) async throws {
        let record = DeadRecord(
            queue: reservation.queue.rawValue, id: reservation.messageID,
            body: String(decoding: reservation.body, as: UTF8.self), reason: reason,
            deliveryCount: reservation.deliveryCount, deadLetteredAt: RFC3339.format(Date()))
        let json = String(decoding: try JSONEncoder().encode(record), as: UTF8.self)
        _ = try await client.post(
            [.init(body: json, delay: nil)], to: try await deadQueue(of: reservation.queue).name)
        try await ack(reservation)
    }

    /// No: IronMQ reports one count, `size`, every message not deleted.
    public var distinguishesStates: Bool { false }

    /// IronMQ's `size` (every message not deleted, reserved and delayed ones included) as
    /// `ready`, and the size of the dead-letter queue as `dead`.
    public func size(of queue: QueueName) async throws -> QueueSize {
        let info = try await client.info(queue.rawValue)
        let deadQueue = info.map { remember($0, of: queue) } ?? DeadQueue(of: queue, named: nil)
        let size = info?.size ?? 0
        let dead = try await client.info(deadQueue.name)?.size ?? 0
        return QueueSize(ready: size, delayed: 0, reserved: 0, dead: dead)
    }

    /// The first `count` messages, 100 at most (IronMQ's peek), whatever the count.
    public func peek(_ queue: QueueName, count: Int) async throws -> [QueuedMessage] {
        try await client.peek(queue.rawValue, count: min(max(count, 1), Self.maximumBatch)).map {
            QueuedMessage(messageID: $0.id, body: Array($0.body.utf8), deliveryCount: $0.reservedCount ?? 0)
        }
    }

    /// The first dead letters of `queue`, from the first 100 messages of its dead-letter queue.
    public func deadLetters(of queue: QueueName, count: Int) async throws -> [DeadLetter] {
        let deadQueue = try await deadQueue(of: queue)
        let wanted = min(max(count, 1), Self.maximumBatch)
        let peeked = try await client.peek(
            deadQueue.name, count: deadQueue.isShared ? Self.maximumBatch : wanted)
        var letters: [DeadLetter] = []
        for message in peeked where letters.count < wanted {
            let record = DeadRecord(message.body)
            guard deadQueue.holds(record, of: queue) else { continue }
            letters.append(
                DeadLetter(
                    queue: queue, messageID: record?.id ?? message.id,
                    body: Array((record?.body ?? message.body).utf8),
                    reason: record?.reason ?? "(not an Ivy dead-letter record)",
                    deliveryCount: record?.deliveryCount ?? 0,
                    deadLetteredAt: record.flatMap { RFC3339.parse($0.deadLetteredAt) }
                        ?? Date(timeIntervalSince1970: 0)))
        }
        return letters
    }

    public func requeueDeadLetters(of queue: QueueName, count: Int) async throws -> Int {
        let deadQueue = try await deadQueue(of: queue)
        return try await sweep(deadQueue, of: queue, limit: count) { message, record in
            try await moveBack(message, record, from: deadQueue, to: queue)
        }.taken
    }

    /// Reserves the dead-letter queue batch by batch, oldest first, until it meets the dead
    /// letter; the others it reserved are released so that the dead-letter queue keeps its
    /// order. In a shared dead-letter queue, only the records naming `queue` are looked at.
    ///
    /// It looks at 500 messages of the dead-letter queue at most (five reservations; a listing
    /// shows letters of the first 100 only), each reserved for a minute: a search that is
    /// interrupted hides no more than those, for no longer than that. An id not among them is
    /// reported as not found, and a warning in the log says that the search gave up.
    public func requeueDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        let deadQueue = try await deadQueue(of: queue)
        return try await takeDeadLetter(messageID, of: queue, from: deadQueue, toDo: "requeue") {
            message, record in try await moveBack(message, record, from: deadQueue, to: queue)
        }
    }

    /// Searches as ``requeueDeadLetter(of:messageID:)`` does, within the same bound, and
    /// deletes the dead letter from the dead-letter queue.
    public func deleteDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        let deadQueue = try await deadQueue(of: queue)
        return try await takeDeadLetter(messageID, of: queue, from: deadQueue, toDo: "delete") { message, _ in
            try await client.delete(message.id, reservation: message.reservationID, from: deadQueue.name)
        }
    }

    /// Sweeps `deadQueue` for `queue`'s dead letter with `messageID` (its record's id, else the
    /// message's own), looking at ``deadLetterScanLimit`` messages at most, and hands it to
    /// `take`, which deletes it; logs a warning, naming what the search was `toDo`, when it gave
    /// up. Returns whether it took one.
    private func takeDeadLetter(
        _ messageID: String, of queue: QueueName, from deadQueue: DeadQueue, toDo verb: String,
        take: (IronMQClient.ReservedMessage, DeadRecord?) async throws -> Void
    ) async throws -> Bool {
        let sweep = try await sweep(
            deadQueue, of: queue, limit: 1, lookingAtMost: deadLetterScanLimit,
            holdingFor: Self.searchReservation,
            where: { message, record in (record?.id ?? message.id) == messageID }, take: take)
        if sweep.gaveUp {
            logger.warning(
                "the dead letter to \(verb) is not among the first \(deadLetterScanLimit) messages of its "
                    + "dead-letter queue, and no more are looked at; requeue or purge those first",
                ["queue": queue.rawValue, "message.id": messageID, "dead_letter_queue": deadQueue.name])
        }
        return sweep.taken == 1
    }

    /// Posts a reserved dead letter's body to `queue` as a new message, then deletes it from
    /// the dead-letter queue: a failure in between leaves it in both, never in neither.
    private func moveBack(
        _ message: IronMQClient.ReservedMessage, _ record: DeadRecord?, from deadQueue: DeadQueue,
        to queue: QueueName
    ) async throws {
        _ = try await client.post([.init(body: record?.body ?? message.body, delay: nil)], to: queue.rawValue)
        try await client.delete(message.id, reservation: message.reservationID, from: deadQueue.name)
    }

    /// IronMQ's clear: reserved messages go too, not only ready and delayed ones.
    public func purge(_ queue: QueueName) async throws -> Int {
        let size = try await client.info(queue.rawValue)?.size ?? 0
        try await client.clear(queue.rawValue)
        return size
    }

    public func purgeDeadLetters(of queue: QueueName) async throws -> Int {
        let deadQueue = try await deadQueue(of: queue)
        guard deadQueue.isShared else {
            let size = try await client.info(deadQueue.name)?.size ?? 0
            try await client.clear(deadQueue.name)
            return size
        }
        return try await sweep(deadQueue, of: queue, limit: Int.max) { message, _ in
            try await client.delete(message.id, reservation: message.reservationID, from: deadQueue.name)
        }.taken
    }

    // MARK: Support

    /// Where a queue's dead letters go.
    struct DeadQueue: Sendable {
        let name: String
        /// Named by the queue's `dead_letter` setting: other queues may use it too.
        let isShared: Bool

        init(of queue: QueueName, named setting: String?) {
            let own = "\(queue.rawValue)--dead"
            name = setting.flatMap { $0.isEmpty ? nil : $0 } ?? own
            isShared = name != own
        }

        /// Whether a message of this dead-letter queue (its record, if it is one) is `queue`'s.
        func holds(_ record: DeadRecord?, of queue: QueueName) -> Bool {
            !isShared || record?.queue == queue.rawValue
        }
    }

    /// The queue's dead-letter queue: read from its settings the first time, then remembered
    /// (a queue that does not exist yet is asked again).
    func deadQueue(of queue: QueueName) async throws -> DeadQueue {
        if let known = deadQueues.withLock({ $0[queue] }) { return known }
        guard let info = try await client.info(queue.rawValue) else {
            return DeadQueue(of: queue, named: nil)
        }
        return remember(info, of: queue)
    }

    /// The dead-letter queue `info` names for `queue`, remembered.
    private func remember(_ info: IronMQClient.QueueInfo, of queue: QueueName) -> DeadQueue {
        let deadQueue = DeadQueue(of: queue, named: info.deadLetter?.queueName)
        deadQueues.withLock { $0[queue] = deadQueue }
        return deadQueue
    }

    /// What a sweep did: how many messages it took, and whether it stopped at its bound on
    /// what it looks at with more perhaps left.
    private struct Sweep {
        var taken = 0
        var gaveUp = false
    }

    /// Reserves the dead-letter queue batch by batch, each message for `timeout` seconds, and
    /// hands each of `queue`'s messages that `wanted` accepts to `take` (which deletes it), up
    /// to `limit`, looking at no more than `scanLimit` messages; the others, reserved meanwhile
    /// so that each is seen once, are put back at the end, or when `take` fails.
    private func sweep(
        _ deadQueue: DeadQueue, of queue: QueueName, limit: Int, lookingAtMost scanLimit: Int = .max,
        holdingFor timeout: Int = IronMQBackend.sweepReservation,
        where wanted: (IronMQClient.ReservedMessage, DeadRecord?) -> Bool = { _, _ in true },
        take: (IronMQClient.ReservedMessage, DeadRecord?) async throws -> Void
    ) async throws -> Sweep {
        var sweep = Sweep()
        var looked = 0
        var others: [IronMQClient.ReservedMessage] = []
        do {
            while sweep.taken < limit {
                guard looked < scanLimit else {
                    sweep.gaveUp = true
                    break
                }
                let batch =
                    try await client.reserve(
                        from: deadQueue.name, count: min(Self.maximumBatch, scanLimit - looked),
                        timeout: max(
                            timeout, Self.seconds(minimumReservation, in: 1...Self.longestReservation)),
                        wait: 0, absentOn404: true) ?? []
                guard !batch.isEmpty else { break }
                looked += batch.count
                for message in batch {
                    let record = DeadRecord(message.body)
                    if sweep.taken < limit && deadQueue.holds(record, of: queue) && wanted(message, record) {
                        try await take(message, record)
                        sweep.taken += 1
                    } else {
                        others.append(message)
                    }
                }
            }
        } catch {
            await putBack(others, in: deadQueue.name)
            throw error
        }
        await putBack(others, in: deadQueue.name)
        return sweep
    }

    /// Releases messages a sweep reserved but did not take; one that fails comes back by itself
    /// when its reservation runs out. IronMQ puts a released message at the front of its queue,
    /// so they are released last first, and the queue keeps its order.
    private func putBack(_ messages: [IronMQClient.ReservedMessage], in queue: String) async {
        for message in messages.reversed() {
            try? await client.release(message.id, reservation: message.reservationID, delay: 0, in: queue)
        }
    }

    /// How long a sweep holds what it reserved: long enough to go through a large queue.
    static let sweepReservation = 600

    /// How long a search for one dead letter holds what it reserved: long enough to look at
    /// ``deadLetterScanLimit`` of them and put them back, short enough that a search cut short
    /// (Control-C) hides them only briefly. Never below the server's shortest reservation.
    static let searchReservation = 60
}
