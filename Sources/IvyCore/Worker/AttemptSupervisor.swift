// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Watches a worker's running attempts: extends their reservations (heartbeat) and cancels
/// those past their timeout.
///
/// One supervisor serves every attempt of a worker instead of a timer per message. It parks
/// while nothing runs and otherwise wakes every ``tick``, so heartbeats and timeouts fire at
/// most a tick late.
final class AttemptSupervisor<Backend: QueueBackend>: Sendable {
    private struct Attempt {
        var reservation: Reservation<Backend.Receipt>
        var deadline: ContinuousClock.Instant
        var nextBeat: ContinuousClock.Instant
        var cancel: @Sendable () -> Void
        var timedOut = false
    }
    private typealias Beat = (id: UInt64, reservation: Reservation<Backend.Receipt>)

    private struct State {
        var attempts: [UInt64: Attempt] = [:]
        var nextID: UInt64 = 0
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

    /// Starts watching an attempt; `cancel` is called if it runs past `timeout`.
    func begin(
        _ reservation: Reservation<Backend.Receipt>, timeout: Duration, cancel: @escaping @Sendable () -> Void
    ) -> UInt64 {
        let now = clock.now
        let attempt = Attempt(
            reservation: reservation, deadline: now.advanced(by: timeout), nextBeat: now.advanced(by: beatInterval),
            cancel: cancel)
        let (id, wasIdle) = state.withLock { state in
            state.nextID += 1
            defer { state.attempts[state.nextID] = attempt }
            return (state.nextID, state.attempts.isEmpty)
        }
        if wasIdle { work.signal() }
        return id
    }

    /// Stops watching an attempt; returns its latest reservation (heartbeats may renew it).
    func end(_ id: UInt64) -> Reservation<Backend.Receipt>? {
        state.withLock { $0.attempts.removeValue(forKey: id)?.reservation }
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
                var overdue: [@Sendable () -> Void] = []
                var due: [Beat] = []
                for (id, attempt) in state.attempts {
                    if attempt.deadline <= now {
                        if !attempt.timedOut {
                            state.attempts[id]?.timedOut = true
                            overdue.append(attempt.cancel)
                        }
                    } else if attempt.nextBeat <= now {
                        state.attempts[id]?.nextBeat = now.advanced(by: beatInterval)
                        due.append((id, attempt.reservation))
                    }
                }
                return (overdue, due)
            }
            for cancel in overdue { cancel() }
            for (id, reservation) in due {
                do {
                    let renewed = try await backend.extend(reservation, visibility: visibility)
                    state.withLock { $0.attempts[id]?.reservation = renewed }
                } catch {
                    logger.warning("heartbeat failed", ["message.id": reservation.messageID, "error": "\(error)"])
                }
            }
        }
    }
}
