// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Watches a worker's reserved messages from reservation to settlement: extends their
/// reservations (heartbeat) and takes over attempts that run past their timeout or that
/// shutdown interrupts.
///
/// Each message runs in a task of its own. Whoever removes its attempt from here settles the
/// message and frees its slot: the task itself through ``end(_:)`` when it is done, or the
/// supervisor when it takes over. A taken-over task is cancelled and never settles anything,
/// so a task body that ignores cancellation keeps running in the background but cannot hold a
/// slot, a message or the worker's shutdown.
///
/// One supervisor serves every attempt of a worker instead of a timer per message. It parks
/// while nothing runs and otherwise wakes every ``tick``, so heartbeats and timeouts fire at
/// most a tick late.
final class AttemptSupervisor<Backend: QueueBackend>: Sendable {
    typealias TimeoutHandler = @Sendable (Reservation<Backend.Receipt>) -> Void

    private struct Attempt {
        var reservation: Reservation<Backend.Receipt>
        var nextBeat: ContinuousClock.Instant
        /// The task running the message, once it is attached.
        var task: Task<Void, Never>?
        /// Set once the task body starts.
        var deadline: ContinuousClock.Instant?
        var onTimeout: TimeoutHandler?
        /// An extension of its reservation is on its way to the broker.
        var isBeating = false
    }
    private typealias Beat = (id: UInt64, reservation: Reservation<Backend.Receipt>)

    private struct State {
        var attempts: [UInt64: Attempt] = [:]
        var nextID: UInt64 = 0
        /// Attempts taken over before their task was attached.
        var takenBeforeAttach: Set<UInt64> = []
        var isInterrupting = false
        /// Attempts ended while a heartbeat was on its way: resumed with the renewed reservation.
        var awaitingRenewal: [UInt64: CheckedContinuation<Reservation<Backend.Receipt>?, Never>] = [:]
    }

    private let backend: Backend
    private let visibility: Duration
    private let beatInterval: Duration
    private let tick: Duration
    private let logger: any IvyLogger
    private let clock = ContinuousClock()
    private let state = Mutex(State())
    private let work = Wakeup()

    init(backend: Backend, visibility: Duration, logger: any IvyLogger) {
        self.backend = backend
        self.visibility = visibility
        self.logger = logger
        beatInterval = visibility / 3
        tick = min(.milliseconds(50), visibility / 6)
    }

    /// Starts watching freshly reserved messages; returns their attempt ids in order, or nil
    /// when shutdown has already interrupted the worker (the caller releases them).
    func admit(_ reservations: [Reservation<Backend.Receipt>]) -> [UInt64]? {
        let nextBeat = clock.now.advanced(by: beatInterval)
        let (ids, wasIdle) = state.withLock { state -> ([UInt64]?, Bool) in
            guard !state.isInterrupting else { return (nil, false) }
            let wasIdle = state.attempts.isEmpty
            var ids: [UInt64] = []
            ids.reserveCapacity(reservations.count)
            for reservation in reservations {
                state.nextID += 1
                state.attempts[state.nextID] = Attempt(reservation: reservation, nextBeat: nextBeat)
                ids.append(state.nextID)
            }
            return (ids, wasIdle)
        }
        if wasIdle { work.signal() }
        return ids
    }

    /// Records the task running attempt `id`, so a takeover can cancel it. A task attached
    /// after its attempt was taken over is cancelled at once; one that already ended its
    /// attempt (and may be settling it) is left alone.
    func attach(_ id: UInt64, task: Task<Void, Never>) {
        let takenOver = state.withLock { state in
            if state.attempts[id] != nil {
                state.attempts[id]!.task = task
                return false
            }
            return state.takenBeforeAttach.remove(id) != nil
        }
        if takenOver { task.cancel() }
    }

    /// Starts attempt `id`'s timeout; `onTimeout` settles the message if it runs past it.
    /// Returns false when the attempt was already taken over.
    func startClock(_ id: UInt64, timeout: Duration, onTimeout: @escaping TimeoutHandler) -> Bool {
        let deadline = clock.now.advanced(by: timeout)
        return state.withLock { state in
            guard state.attempts[id] != nil else { return false }
            state.attempts[id]!.deadline = deadline
            state.attempts[id]!.onTimeout = onTimeout
            return true
        }
    }

    /// Stops watching attempt `id` and hands its settlement to the caller: returns its latest
    /// reservation (heartbeats may have renewed it), or nil when the supervisor took it over.
    ///
    /// When a heartbeat is on its way, this waits for it: a broker that hands out a new receipt
    /// on every extension (IronMQ) refuses the old one once the extension lands, and settling
    /// with it would run the message again.
    func end(_ id: UInt64) async -> Reservation<Backend.Receipt>? {
        let ended = state.withLock { state -> Reservation<Backend.Receipt>?? in
            guard let attempt = state.attempts[id] else { return .some(nil) }
            guard !attempt.isBeating else { return .none }
            state.attempts.removeValue(forKey: id)
            return attempt.reservation
        }
        if let ended { return ended }
        return await withCheckedContinuation { continuation in
            let ended = state.withLock { state -> Reservation<Backend.Receipt>?? in
                guard let attempt = state.attempts.removeValue(forKey: id) else { return .some(nil) }
                guard attempt.isBeating else { return attempt.reservation }
                state.awaitingRenewal[id] = continuation
                return .none
            }
            if let ended { continuation.resume(returning: ended) }
        }
    }

    /// Attempts ended while a heartbeat was on its way, waiting for it (for tests).
    var endsAwaitingRenewal: Int { state.withLock { $0.awaitingRenewal.count } }

    /// Takes over every attempt (shutdown past its grace period) and cancels their tasks;
    /// returns their reservations for the caller to release. Later admissions are refused.
    func interruptAll() -> [Reservation<Backend.Receipt>] {
        let taken = state.withLock { state in
            state.isInterrupting = true
            defer { state.attempts.removeAll() }
            for (id, attempt) in state.attempts where attempt.task == nil {
                state.takenBeforeAttach.insert(id)
            }
            return Array(state.attempts.values)
        }
        for attempt in taken { attempt.task?.cancel() }
        return taken.map(\.reservation)
    }

    /// Heartbeats and timeouts until the calling task is cancelled.
    func supervise() async {
        while !Task.isCancelled {
            if state.withLock({ $0.attempts.isEmpty }) {
                await work.wait()
                continue
            }
            try? await Task.sleep(for: tick, clock: clock)
            let now = clock.now
            let (overdue, due) = state.withLock { state in
                var overdue: [Attempt] = []
                var due: [Beat] = []
                for (id, attempt) in state.attempts {
                    if let deadline = attempt.deadline, deadline <= now {
                        overdue.append(state.attempts.removeValue(forKey: id)!)
                        if attempt.task == nil { state.takenBeforeAttach.insert(id) }
                    } else if attempt.nextBeat <= now {
                        state.attempts[id]!.nextBeat = now.advanced(by: beatInterval)
                        due.append((id, attempt.reservation))
                    }
                }
                return (overdue, due)
            }
            for attempt in overdue {
                attempt.task?.cancel()
                attempt.onTimeout?(attempt.reservation)
            }
            for (id, _) in due {
                // Marked only now, so that an attempt that ends waits for its own extension,
                // not for the others before it.
                let current = state.withLock { state -> Reservation<Backend.Receipt>? in
                    guard state.attempts[id] != nil else { return nil }
                    state.attempts[id]!.isBeating = true
                    return state.attempts[id]!.reservation
                }
                guard let reservation = current else { continue }
                var latest = reservation
                do {
                    latest = try await backend.extend(reservation, visibility: visibility)
                } catch {
                    logger.warning(
                        "heartbeat failed", ["message.id": reservation.messageID, "error": "\(error)"])
                }
                let waiting = state.withLock { state in
                    guard state.attempts[id] == nil else {
                        state.attempts[id]!.reservation = latest
                        state.attempts[id]!.isBeating = false
                        return CheckedContinuation<Reservation<Backend.Receipt>?, Never>?.none
                    }
                    return state.awaitingRenewal.removeValue(forKey: id)
                }
                waiting?.resume(returning: latest)
            }
        }
    }
}
