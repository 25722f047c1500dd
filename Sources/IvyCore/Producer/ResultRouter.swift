// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Matches notifications arriving on the producer's one subscription with waiting calls, by
/// task id, and ends calls whose deadline passes.
///
/// Deadlines are enforced by one sweeper (``sweep()``) rather than a timer per call: it parks
/// while nothing waits and otherwise checks every ``resolution``, so a call times out at most
/// that much after its deadline. It scans the waiting calls only once the earliest deadline it
/// knows of has passed: with thousands of calls in flight, a scan per tick cost more than the
/// calls themselves.
final class ResultRouter: Sendable {
    static let resolution: Duration = .milliseconds(50)

    /// A call's outcome: the notification, or why none will come.
    typealias Outcome = Result<ResultNotification, any Error>

    private struct Waiting {
        var slot: Promise<Outcome>
        var taskName: String
        var timeout: Duration
        var deadline: ContinuousClock.Instant
    }

    private struct Calls {
        var waiting: [String: Waiting] = [:]
        /// No waiting call's deadline is earlier; nil when none waits.
        var earliestDeadline: ContinuousClock.Instant?
    }

    private let calls = Mutex(Calls())
    private let work = Wakeup()
    private let clock = ContinuousClock()

    /// Registers a call before its message is sent, so a fast result cannot arrive unseen.
    func expect(_ taskID: String, taskName: String, timeout: Duration) -> Promise<Outcome> {
        let slot = Promise<Outcome>()
        let waiting = Waiting(
            slot: slot, taskName: taskName, timeout: timeout, deadline: clock.now.advanced(by: timeout))
        let wasIdle = calls.withLock { calls in
            defer {
                calls.waiting[taskID] = waiting
                calls.earliestDeadline = min(calls.earliestDeadline ?? waiting.deadline, waiting.deadline)
            }
            return calls.waiting.isEmpty
        }
        if wasIdle { work.signal() }
        return slot
    }

    /// Hands a notification to its call; returns false when no call waits for it.
    @discardableResult
    func deliver(_ notification: ResultNotification) -> Bool {
        finish(notification.id, with: .success(notification))
    }

    /// Ends one call with an outcome; returns false when no call waits for that id.
    @discardableResult
    func finish(_ taskID: String, with outcome: Outcome) -> Bool {
        let waiting = calls.withLock { calls in
            defer { if calls.waiting.isEmpty { calls.earliestDeadline = nil } }
            return calls.waiting.removeValue(forKey: taskID)
        }
        guard let waiting else { return false }
        waiting.slot.resolve(outcome)
        return true
    }

    /// Ends every waiting call with `error`.
    func finishAll(with error: any Error) {
        let pending = calls.withLock { calls in
            defer { calls = Calls() }
            return Array(calls.waiting.values)
        }
        for waiting in pending { waiting.slot.resolve(.failure(error)) }
    }

    /// Times out calls past their deadline until the calling task is cancelled.
    func sweep() async {
        while !Task.isCancelled {
            if calls.withLock({ $0.waiting.isEmpty }) {
                await work.wait()
                continue
            }
            try? await Task.sleep(for: Self.resolution, clock: clock)
            let now = clock.now
            let expired = calls.withLock { calls -> [(id: String, waiting: Waiting)] in
                guard let earliest = calls.earliestDeadline, earliest <= now else { return [] }
                var expired: [(id: String, waiting: Waiting)] = []
                var earliestLeft: ContinuousClock.Instant?
                for (id, waiting) in calls.waiting {
                    if waiting.deadline <= now {
                        expired.append((id, waiting))
                    } else {
                        earliestLeft = min(earliestLeft ?? waiting.deadline, waiting.deadline)
                    }
                }
                for (id, _) in expired { calls.waiting.removeValue(forKey: id) }
                calls.earliestDeadline = earliestLeft
                return expired
            }
            for (id, waiting) in expired {
                waiting.slot.resolve(
                    .failure(
                        IvyError(
                            .resultTimedOut, taskName: waiting.taskName, taskID: id,
                            detail: "no result within \(waiting.timeout)")))
            }
        }
    }
}
