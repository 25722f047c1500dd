// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Matches notifications arriving on the producer's one subscription with waiting calls, by
/// task id, and ends calls whose deadline passes.
final class ResultRouter: Sendable {
    private let slots = Mutex<[String: ResultSlot]>([:])

    /// Registers a call before its message is sent, so a fast result cannot arrive unseen.
    func expect(_ taskID: String, taskName: String, timeout: Duration) -> ResultSlot {
        let slot = ResultSlot()
        slots.withLock { $0[taskID] = slot }
        slot.setTimer(
            Task { [weak self] in
                guard (try? await Task.sleep(for: timeout)) != nil else { return }
                self?.finish(
                    taskID,
                    with: .failure(
                        IvyError(
                            .resultTimedOut, taskName: taskName, taskID: taskID,
                            detail: "no result within \(timeout)")))
            })
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
        guard let slot = slots.withLock({ $0.removeValue(forKey: taskID) }) else { return false }
        slot.resolve(outcome)
        return true
    }

    /// Ends every waiting call with `error`.
    func finishAll(with error: any Error) {
        let pending = slots.withLock { slots in
            defer { slots.removeAll() }
            return Array(slots.values)
        }
        for slot in pending { slot.resolve(.failure(error)) }
    }

    var waitingCount: Int { slots.withLock { $0.count } }
}
