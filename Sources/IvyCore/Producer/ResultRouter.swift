// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Matches notifications arriving on the producer's one subscription with waiting calls, by
/// task id, and ends calls whose deadline passes.
///
/// Deadlines are enforced by one sweeper (``sweep()``) rather than a timer per call: it parks
/// while nothing waits and otherwise checks every ``resolution``, so a call times out at most
/// that much after its deadline.
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

    private let waiting = Mutex<[String: Waiting]>([:])
    private let work = Wakeup()
    private let clock = ContinuousClock()

    /// Registers a call before its message is sent, so a fast result cannot arrive unseen.
    func expect(_ taskID: String, taskName: String, timeout: Duration) -> Promise<Outcome> {
        let slot = Promise<Outcome>()
        let waiting = Waiting(slot: slot, taskName: taskName, timeout: timeout, deadline: clock.now.advanced(by: timeout))
        let wasIdle = self.waiting.withLock { calls in
            defer { calls[taskID] = waiting }
            return calls.isEmpty
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
        guard let waiting = waiting.withLock({ $0.removeValue(forKey: taskID) }) else { return false }
        waiting.slot.resolve(outcome)
        return true
    }

    /// Ends every waiting call with `error`.
    func finishAll(with error: any Error) {
        let pending = waiting.withLock { calls in
            defer { calls.removeAll() }
            return Array(calls.values)
        }
        for waiting in pending { waiting.slot.resolve(.failure(error)) }
    }

    /// Times out calls past their deadline until the calling task is cancelled.
    func sweep() async {
        while !Task.isCancelled {
            if waiting.withLock({ $0.isEmpty }) {
                await work.wait()
                continue
            }
            try? await Task.sleep(for: Self.resolution, clock: clock)
            let now = clock.now
            let expired = waiting.withLock { calls in
                let ids = calls.compactMap { $0.value.deadline <= now ? $0.key : nil }
                return ids.map { (id: $0, waiting: calls.removeValue(forKey: $0)!) }
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
