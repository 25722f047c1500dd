// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// The deliveries a backend has handed out as reservations, each with the time its visibility
/// runs out.
///
/// AMQP has no visibility timeout: a delivery stays with its consumer until it is settled or
/// its channel closes. The backend keeps the timeout itself: one timer, armed for the earliest
/// deadline, takes the expired ones out and hands them to `onExpired`, which puts them back in
/// their queue. A reservation that is no longer here is lost: its ack, extension or release
/// fails, and the message runs again.
final class AMQPHoldings: Sendable {
    struct Held: Sendable {
        var delivery: AMQPDelivery
        var queue: QueueName
        var messageID: String
        var deliveryCount: Int
        var deadline: ContinuousClock.Instant
    }

    private struct State {
        var held: [UInt64: Held] = [:]
        var nextKey: UInt64 = 0
        /// When the timer wakes, if it is armed.
        var alarm: ContinuousClock.Instant?
        var timer: Task<Void, Never>?
        var isClosed = false
    }

    private let state = Mutex(State())
    private let onExpired: @Sendable ([Held]) -> Void

    init(onExpired: @escaping @Sendable ([Held]) -> Void) {
        self.onExpired = onExpired
    }

    /// Holds a delivery until `deadline`; returns its key.
    func hold(_ held: Held) -> UInt64 {
        state.withLock { state in
            state.nextKey += 1
            guard !state.isClosed else { return state.nextKey }  // closed: lost, as every holding
            state.held[state.nextKey] = held
            if state.alarm.map({ held.deadline < $0 }) ?? true { arm(&state, at: held.deadline) }
            return state.nextKey
        }
    }

    /// Takes a delivery out (to settle it); nil when its visibility ran out or it was lost.
    func take(_ key: UInt64) -> Held? {
        state.withLock { state in state.held.removeValue(forKey: key) }
    }

    /// Puts back a delivery taken out to settle, when settling failed and it is still held.
    func restore(_ key: UInt64, _ held: Held) {
        state.withLock { state in
            guard !state.isClosed else { return }
            state.held[key] = held
            if state.alarm.map({ held.deadline < $0 }) ?? true { arm(&state, at: held.deadline) }
        }
    }

    /// Moves a delivery's deadline; false when it is no longer held or `isValid` says its
    /// delivery can no longer be settled.
    func extend(_ key: UInt64, to deadline: ContinuousClock.Instant, if isValid: (AMQPDelivery) -> Bool)
        -> Bool
    {
        state.withLock { state in
            guard let held = state.held[key], isValid(held.delivery) else { return false }
            state.held[key]!.deadline = deadline
            if state.alarm.map({ deadline < $0 }) ?? true { arm(&state, at: deadline) }
            return true
        }
    }

    /// Drops the deliveries that can no longer be settled (their connection is gone, and the
    /// broker delivers them again).
    func forget(where isLost: (AMQPDelivery) -> Bool) {
        state.withLock { state in state.held = state.held.filter { !isLost($0.value.delivery) } }
    }

    /// Whether deliveries of connection `generation` are held.
    func holds(generation: UInt64) -> Bool {
        state.withLock { state in state.held.values.contains { $0.delivery.generation == generation } }
    }

    /// How many deliveries of `queue` are held.
    func count(of queue: QueueName) -> Int {
        state.withLock { state in state.held.values.count { $0.queue == queue } }
    }

    /// Stops the timer and forgets everything (the connections close, and the broker returns
    /// what was held).
    func close() {
        let timer = state.withLock { state in
            state.isClosed = true
            state.held = [:]
            state.alarm = nil
            return state.timer.take()
        }
        timer?.cancel()
    }

    // MARK: The timer

    private func arm(_ state: inout State, at deadline: ContinuousClock.Instant) {
        guard !state.isClosed else { return }
        state.timer?.cancel()
        state.alarm = deadline
        state.timer = Task { [self] in
            try? await Task.sleep(until: deadline)
            guard !Task.isCancelled else { return }
            expire()
        }
    }

    private func expire() {
        let expired = state.withLock { state -> [Held] in
            let now = ContinuousClock.now
            var expired: [Held] = []
            var earliest: ContinuousClock.Instant?
            for (key, held) in state.held {
                if held.deadline <= now {
                    expired.append(held)
                    state.held[key] = nil
                } else if earliest.map({ held.deadline < $0 }) ?? true {
                    earliest = held.deadline
                }
            }
            state.alarm = nil
            state.timer = nil
            if let earliest { arm(&state, at: earliest) }
            return expired
        }
        if !expired.isEmpty { onExpired(expired) }
    }
}
