// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// One queue's consumer in a backend, and the deliveries that came in for it but were not yet
/// reserved.
///
/// The broker pushes deliveries to the consumer (on the connection's thread) up to its
/// prefetch; `reserve` takes them from here, or waits here for them. The prefetch is the
/// largest count a reserve asked for, which for a worker is its concurrency: with the
/// deliveries it runs, what waits here is never more than its free slots, so a long task does
/// not hold short ones back behind it.
final class AMQPInlet: Sendable {
    /// The consumer as the broker knows it.
    struct Consumer: Sendable, Equatable {
        var tag: String
        var generation: UInt64
        var prefetch: Int
    }

    private struct Waiter {
        var id: UInt64
        var count: Int
        var continuation: CheckedContinuation<[AMQPDelivery], Never>
        var timer: Task<Void, Never>?
    }

    private struct State {
        var consumer: Consumer?
        /// A reserve is starting a consumer; others wait for deliveries meanwhile.
        var isStarting = false
        var buffer: [AMQPDelivery] = []
        var waiters: [Waiter] = []
        /// Reserves running now, and when the last one ended.
        var reserves = 0
        var lastReserve = ContinuousClock.now
        var nextWaiter: UInt64 = 0
        /// Waiters given an id but not registered yet, and those of them already cancelled.
        var unregistered: Set<UInt64> = []
        var abandoned: Set<UInt64> = []
    }

    let queue: QueueName
    private let state = Mutex(State())

    init(queue: QueueName) { self.queue = queue }

    var consumer: Consumer? { state.withLock { $0.consumer } }

    /// A reserve on this queue starts.
    func reserveBegan() { state.withLock { $0.reserves += 1 } }

    /// A reserve on this queue ends.
    func reserveEnded() {
        state.withLock { state in
            state.reserves -= 1
            state.lastReserve = .now
        }
    }

    /// Whether it has a consumer and no reserve ran for `limit`: nobody takes what it receives.
    func isIdle(for limit: Duration) -> Bool {
        state.withLock { state in
            state.consumer != nil && !state.isStarting && state.reserves == 0
                && .now - state.lastReserve >= limit
        }
    }

    /// Forgets the consumer, to stop it; returns it.
    func stop() -> Consumer? {
        state.withLock { state in
            guard !state.isStarting else { return nil }
            return state.consumer.take()
        }
    }

    /// Whether deliveries of connection `generation` wait here.
    func holds(generation: UInt64) -> Bool {
        state.withLock { state in state.buffer.contains { $0.generation == generation } }
    }

    /// Whether a reserve waits here.
    var hasWaiters: Bool { state.withLock { !$0.waiters.isEmpty } }

    /// How many deliveries wait here for a reserve.
    var bufferedCount: Int { state.withLock { $0.buffer.count } }

    /// Claims the right to start a consumer: true when there is none of `generation` with a
    /// prefetch of at least `count` and no one else is starting one.
    func claimStart(generation: UInt64, count: Int) -> Bool {
        state.withLock { state in
            guard !state.isStarting else { return false }
            if let consumer = state.consumer, consumer.generation == generation, consumer.prefetch >= count {
                return false
            }
            state.isStarting = true
            return true
        }
    }

    /// Ends a start that ``claimStart(generation:count:)`` allowed; returns the consumer it
    /// replaced.
    func started(_ consumer: Consumer?) -> Consumer? {
        state.withLock { state in
            state.isStarting = false
            guard let consumer else { return nil }
            defer { state.consumer = consumer }
            return state.consumer
        }
    }

    /// The broker cancelled the consumer (its queue was deleted): the next reserve starts one.
    func cancelledByBroker() {
        let waiters = state.withLock { state -> [Waiter] in
            state.consumer = nil
            return state.waiters.take()
        }
        for waiter in waiters { resume(waiter, with: []) }
    }

    /// The connection changed (lost or retired): drops the deliveries that can no longer be
    /// settled, and wakes the waiters, so that they start a consumer on the new one.
    func connectionChanged(isAlive: (UInt64) -> Bool) {
        let waiters = state.withLock { state -> [Waiter] in
            state.buffer.removeAll { !isAlive($0.generation) }
            if let consumer = state.consumer, !isAlive(consumer.generation) { state.consumer = nil }
            return state.waiters.take()
        }
        for waiter in waiters { resume(waiter, with: []) }
    }

    /// A delivery for this queue's consumer, on the connection's thread; waiters get it at the
    /// end of the burst it came in (``burstEnded()``), so that they get a batch, not the first.
    func deliver(_ delivery: AMQPDelivery) {
        state.withLock { state in state.buffer.append(delivery) }
    }

    /// The deliveries that arrived together are all in: hands them to the waiters, oldest first.
    func burstEnded() {
        let handed = state.withLock { state -> [(Waiter, [AMQPDelivery])] in
            var handed: [(Waiter, [AMQPDelivery])] = []
            while !state.waiters.isEmpty && !state.buffer.isEmpty {
                let waiter = state.waiters.removeFirst()
                handed.append((waiter, Self.take(waiter.count, from: &state.buffer)))
            }
            return handed
        }
        for (waiter, deliveries) in handed { resume(waiter, with: deliveries) }
    }

    /// Up to `count` deliveries that came in, oldest first, without waiting.
    func take(_ count: Int) -> [AMQPDelivery] {
        state.withLock { state in Self.take(count, from: &state.buffer) }
    }

    /// Up to `count` deliveries, waiting up to `wait` for the first; empty when none came, when
    /// the calling task is cancelled, or when the connection changed.
    func wait(_ count: Int, for wait: Duration) async -> [AMQPDelivery] {
        let id = state.withLock { state in
            state.nextWaiter += 1
            state.unregistered.insert(state.nextWaiter)
            return state.nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<[AMQPDelivery], Never>) in
                let ready = state.withLock { state -> [AMQPDelivery]? in
                    state.unregistered.remove(id)
                    if state.abandoned.remove(id) != nil { return [] }
                    if !state.buffer.isEmpty { return Self.take(count, from: &state.buffer) }
                    let timer = Task { [self] in
                        try? await Task.sleep(for: wait)
                        if !Task.isCancelled { abandon(id) }
                    }
                    state.waiters.append(
                        Waiter(id: id, count: count, continuation: continuation, timer: timer))
                    return nil
                }
                if let ready { continuation.resume(returning: ready) }
            }
        } onCancel: {
            abandon(id)
        }
    }

    /// Everything buffered, for closing; and wakes the waiters.
    func drain() -> [AMQPDelivery] {
        let (buffer, waiters) = state.withLock { state in (state.buffer.take(), state.waiters.take()) }
        for waiter in waiters { resume(waiter, with: []) }
        return buffer
    }

    // MARK: Helpers

    private func abandon(_ id: UInt64) {
        let waiter = state.withLock { state -> Waiter? in
            guard let index = state.waiters.firstIndex(where: { $0.id == id }) else {
                if state.unregistered.contains(id) { state.abandoned.insert(id) }
                return nil
            }
            return state.waiters.remove(at: index)
        }
        if let waiter { resume(waiter, with: []) }
    }

    private func resume(_ waiter: Waiter, with deliveries: [AMQPDelivery]) {
        waiter.timer?.cancel()
        waiter.continuation.resume(returning: deliveries)
    }

    private static func take(_ count: Int, from buffer: inout [AMQPDelivery]) -> [AMQPDelivery] {
        let taken = Array(buffer.prefix(count))
        buffer.removeFirst(taken.count)
        return taken
    }
}

extension Array {
    /// The array's elements, leaving it empty.
    fileprivate mutating func take() -> [Element] {
        defer { self = [] }
        return self
    }
}
