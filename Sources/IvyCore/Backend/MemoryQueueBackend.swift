// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation

/// An in-process queue backend with the full contract: visibility timeouts, extend, release
/// with delay, delivery counts and a dead letter.
///
/// It is the embedded default (`memory://`) and the test double to use in your own tests.
/// Messages live as long as the instance: producer and worker must share it, so it serves one
/// process only. Pausing a queue (``PausableQueueBackend``) holds back the workers sharing
/// the instance.
public actor MemoryQueueBackend: InspectableQueueBackend, PausableQueueBackend, DelayedSendQueueBackend {
    public struct Receipt: Sendable, Hashable {
        fileprivate let token: UInt64
    }

    public nonisolated let endpoint = "memory://"
    public nonisolated let maximumMessageSize: Int

    private let clock = ContinuousClock()
    private var queues: [QueueName: MemoryQueue] = [:]
    private var pausedQueues: Set<QueueName> = []
    private var nextMessageNumber: UInt64 = 0
    private var waiters: [QueueName: [UInt64: CheckedContinuation<Void, Never>]] = [:]
    private var timers: [UInt64: Task<Void, Never>] = [:]
    private var nextWaiterID: UInt64 = 0
    private var isClosed = false

    /// A backend that accepts bodies of up to 16 MiB.
    public init() {
        maximumMessageSize = 16 << 20
    }

    /// - Parameter maximumMessageSize: The largest body accepted, in bytes (1 B to 2 GiB).
    /// - Throws: ``IvyError/Code/invalidConfiguration`` for a size out of that range.
    public init(maximumMessageSize: Int) throws(IvyError) {
        try IvyError.check("maximumMessageSize", maximumMessageSize, in: 1...(1 << 31))
        self.maximumMessageSize = maximumMessageSize
    }

    public func send(_ body: [UInt8], to queue: QueueName) throws -> String {
        try checkOpen()
        try checkSize(body, queue: queue)
        let id = makeMessageID()
        queues[queue, default: MemoryQueue()].append(.init(id: id, body: body, deliveryCount: 0))
        wakeAll(on: queue)
        return id
    }

    /// No limit worth speaking of: a message waits in the delayed list, as a released one does.
    public nonisolated var longestSendDelay: Duration { .seconds(Int64(Int32.max)) }

    public func send(_ body: [UInt8], to queue: QueueName, after delay: Duration) throws -> String {
        guard delay > .zero else { return try send(body, to: queue) }
        try checkOpen()
        try checkSize(body, queue: queue)
        let id = makeMessageID()
        queues[queue, default: MemoryQueue()].delay(
            .init(id: id, body: body, deliveryCount: 0),
            until: clock.now.advanced(by: min(delay, longestSendDelay)))
        // Waiters recompute when to wake: the message may be due before their deadline.
        wakeAll(on: queue)
        return id
    }

    public func send(batch bodies: [[UInt8]], to queue: QueueName) throws -> [String] {
        try checkOpen()
        for body in bodies { try checkSize(body, queue: queue) }
        var ids: [String] = []
        ids.reserveCapacity(bodies.count)
        for body in bodies {
            let id = makeMessageID()
            queues[queue, default: MemoryQueue()].append(.init(id: id, body: body, deliveryCount: 0))
            ids.append(id)
        }
        wakeAll(on: queue)
        return ids
    }

    public func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]
    {
        precondition(count > 0, "count must be at least 1")
        try checkOpen()
        let deadline = clock.now.advanced(by: wait)
        while true {
            let now = clock.now
            let taken = queues[queue, default: MemoryQueue()].take(
                count: count, visibility: visibility, now: now)
            if !taken.isEmpty {
                return taken.map {
                    Reservation(
                        queue: queue, messageID: $0.record.id, body: $0.record.body,
                        deliveryCount: $0.record.deliveryCount, receipt: Receipt(token: $0.token))
                }
            }
            if Task.isCancelled || isClosed || now >= deadline { return [] }
            let wake = queues[queue]?.nextEventTime.map { min($0, deadline) } ?? deadline
            await waitForActivity(on: queue, until: wake)
        }
    }

    public func ack(_ reservation: Reservation<Receipt>) throws {
        _ = try removeReservation(reservation)
    }

    public func extend(_ reservation: Reservation<Receipt>, visibility: Duration) throws -> Reservation<
        Receipt
    > {
        let now = clock.now
        try checkHeld(reservation, now: now)
        queues[reservation.queue]?.extend(reservation.receipt.token, until: now.advanced(by: visibility))
        return reservation
    }

    public func release(_ reservation: Reservation<Receipt>, delay: Duration) throws {
        let record = try removeReservation(reservation)
        if delay > .zero {
            queues[reservation.queue]?.delay(record, until: clock.now.advanced(by: delay))
        } else {
            queues[reservation.queue]?.append(record)
        }
        // Waiters recompute when to wake: a delayed message may be due before their deadline.
        wakeAll(on: reservation.queue)
    }

    public func deadLetter(_ reservation: Reservation<Receipt>, reason: String) throws {
        let record = try removeReservation(reservation)
        queues[reservation.queue]?.dead.append(
            DeadLetter(
                queue: reservation.queue, messageID: record.id, body: record.body, reason: reason,
                deliveryCount: record.deliveryCount, deadLetteredAt: Date()))
    }

    public func close() {
        isClosed = true
        for queue in Array(waiters.keys) { wakeAll(on: queue) }
    }

    // MARK: Inspection

    public func size(of queue: QueueName) -> QueueSize {
        queues[queue]?.promote(now: clock.now)
        guard let state = queues[queue] else { return QueueSize(ready: 0, delayed: 0, reserved: 0, dead: 0) }
        return QueueSize(
            ready: state.ready.count, delayed: state.delayed.count, reserved: state.reserved.count,
            dead: state.dead.count)
    }

    public func peek(_ queue: QueueName, count: Int) -> [QueuedMessage] {
        queues[queue]?.promote(now: clock.now)
        return (queues[queue]?.ready.prefix(count) ?? []).map {
            QueuedMessage(messageID: $0.id, body: $0.body, deliveryCount: $0.deliveryCount)
        }
    }

    public func deadLetters(of queue: QueueName, count: Int) -> [DeadLetter] {
        Array((queues[queue]?.dead ?? []).prefix(count))
    }

    public func requeueDeadLetters(of queue: QueueName, count: Int) -> Int {
        guard let dead = queues[queue]?.dead, !dead.isEmpty else { return 0 }
        let moving = dead.prefix(count)
        for letter in moving {
            queues[queue]?.append(.init(id: letter.messageID, body: letter.body, deliveryCount: 0))
        }
        queues[queue]?.dead.removeFirst(moving.count)
        wakeAll(on: queue)
        return moving.count
    }

    public func requeueDeadLetter(of queue: QueueName, messageID: String) -> Bool {
        guard let letter = removeDeadLetter(of: queue, messageID: messageID) else { return false }
        queues[queue]?.append(.init(id: letter.messageID, body: letter.body, deliveryCount: 0))
        wakeAll(on: queue)
        return true
    }

    public func deleteDeadLetter(of queue: QueueName, messageID: String) -> Bool {
        removeDeadLetter(of: queue, messageID: messageID) != nil
    }

    public func purge(_ queue: QueueName) -> Int {
        queues[queue]?.purgeReady() ?? 0
    }

    public func purgeDeadLetters(of queue: QueueName) -> Int {
        let count = queues[queue]?.dead.count ?? 0
        queues[queue]?.dead.removeAll()
        return count
    }

    // MARK: Pausing

    // Closed, these fail as a broker's do once its connection is closed: a worker checking
    // whether its queue is paused learns so, and stops.

    public func pause(_ queue: QueueName) throws {
        try checkOpen()
        pausedQueues.insert(queue)
    }

    public func resume(_ queue: QueueName) throws {
        try checkOpen()
        pausedQueues.remove(queue)
    }

    public func isPaused(_ queue: QueueName) throws -> Bool {
        try checkOpen()
        return pausedQueues.contains(queue)
    }

    // MARK: Internals

    private func checkOpen() throws(IvyError) {
        guard !isClosed else { throw IvyError(.closed, endpoint: endpoint) }
    }

    private func makeMessageID() -> String {
        nextMessageNumber += 1
        return "mem-\(nextMessageNumber)"
    }

    /// Takes the oldest dead letter of `queue` with `messageID` out of the dead letter.
    private func removeDeadLetter(of queue: QueueName, messageID: String) -> DeadLetter? {
        guard let index = queues[queue]?.dead.firstIndex(where: { $0.messageID == messageID }) else {
            return nil
        }
        return queues[queue]?.dead.remove(at: index)
    }

    private func checkHeld(_ reservation: Reservation<Receipt>, now: ContinuousClock.Instant) throws(IvyError)
    {
        guard queues[reservation.queue]?.holds(reservation.receipt.token, now: now) == true else {
            wakeAll(on: reservation.queue)
            throw IvyError(
                .reservationLost, endpoint: endpoint,
                detail: "message \(reservation.messageID) on \(reservation.queue): the reservation expired")
        }
    }

    private func removeReservation(_ reservation: Reservation<Receipt>) throws(IvyError) -> MemoryQueue.Record
    {
        try checkHeld(reservation, now: clock.now)
        return queues[reservation.queue]!.removeReservation(reservation.receipt.token)!
    }

    /// Suspends until a send or release on `queue`, until `deadline`, or until cancelled.
    private func waitForActivity(on queue: QueueName, until deadline: ContinuousClock.Instant) async {
        nextWaiterID += 1
        let id = nextWaiterID
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                waiters[queue, default: [:]][id] = continuation
                timers[id] = Task { [weak self, clock] in
                    try? await Task.sleep(until: deadline, clock: clock)
                    await self?.wake(id, on: queue)
                }
            }
        } onCancel: {
            Task { await self.wake(id, on: queue) }
        }
    }

    private func wake(_ id: UInt64, on queue: QueueName) {
        timers.removeValue(forKey: id)?.cancel()
        waiters[queue]?.removeValue(forKey: id)?.resume()
    }

    private func wakeAll(on queue: QueueName) {
        guard let pending = waiters.removeValue(forKey: queue) else { return }
        for (id, continuation) in pending {
            timers.removeValue(forKey: id)?.cancel()
            continuation.resume()
        }
    }
}
