// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Lets one background loop sleep while it has nothing to do and be woken when it has.
///
/// A ``signal()`` with nobody waiting is kept (one permit), so a loop that checked "nothing to
/// do" just before new work arrived does not miss it: its ``wait()`` returns at once.
final class Wakeup: Sendable {
    private struct State {
        var permit = false
        var waiter: CheckedContinuation<Void, Never>?
    }

    private let state = Mutex(State())

    /// Returns after a ``signal()`` (possibly an earlier one), or when the task is cancelled.
    func wait() async {
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let resumeNow = state.withLock { state in
                    if state.permit || Task.isCancelled {
                        state.permit = false
                        return true
                    }
                    state.waiter = continuation
                    return false
                }
                if resumeNow { continuation.resume() }
            }
        } onCancel: {
            state.withLock { state in
                defer { state.waiter = nil }
                return state.waiter
            }?.resume()
        }
    }

    /// Wakes the waiting loop, or lets its next ``wait()`` return at once.
    func signal() {
        let waiter = state.withLock { state in
            guard let waiter = state.waiter else {
                state.permit = true
                return nil as CheckedContinuation<Void, Never>?
            }
            state.waiter = nil
            return waiter
        }
        waiter?.resume()
    }
}
