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

    private struct Waiting {
        var slot: ResultSlot
        var taskName: String
        var timeout: Duration
        var deadline: ContinuousClock.Instant
    }

    private struct State {
        var waiting: [String: Waiting] = [:]
        var parkedSweeper: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())
    private let clock = ContinuousClock()

    /// Registers a call before its message is sent, so a fast result cannot arrive unseen.
    func expect(_ taskID: String, taskName: String, timeout: Duration) -> ResultSlot {
        let slot = ResultSlot()
        let waiting = Waiting(slot: slot, taskName: taskName, timeout: timeout, deadline: clock.now.advanced(by: timeout))
        let sweeper = state.withLock { state in
            state.waiting[taskID] = waiting
            defer { state.parkedSweeper = nil }
            return state.parkedSweeper
        }
        sweeper?.resume()
        return slot
    }

    /// Hands a notification to its call; returns false when no call waits for it.
    @discardableResult
    func deliver(_ notification: ResultNotification) -> Bool {
        finish(notification.id, with: .success(notification))
    }

    /// Ends one call with an outcome; returns false when no call waits for that id.
    @discardableResult
    func finish(_ taskID: String, with outcome: Result<ResultNotification, any Error>) -> Bool {
        guard let waiting = state.withLock({ $0.waiting.removeValue(forKey: taskID) }) else { return false }
        waiting.slot.resolve(outcome)
        return true
    }

    /// Ends every waiting call with `error`.
    func finishAll(with error: any Error) {
        let pending = state.withLock { state in
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        for waiting in pending { waiting.slot.resolve(.failure(error)) }
    }

    var waitingCount: Int { state.withLock { $0.waiting.count } }

    /// Times out calls past their deadline until the calling task is cancelled.
    func sweep() async {
        while !Task.isCancelled {
            if state.withLock({ $0.waiting.isEmpty }) {
                await parkWhileIdle()
                continue
            }
            try? await Task.sleep(for: Self.resolution, clock: clock)
            let now = clock.now
            let expired = state.withLock { state in
                let ids = state.waiting.compactMap { $0.value.deadline <= now ? $0.key : nil }
                return ids.map { (id: $0, waiting: state.waiting.removeValue(forKey: $0)!) }
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

    private func parkWhileIdle() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    guard state.waiting.isEmpty, !Task.isCancelled else { return true }
                    state.parkedSweeper = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.parkedSweeper = nil }
                return state.parkedSweeper
            }?.resume()
        }
    }
}
