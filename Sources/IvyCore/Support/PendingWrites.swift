// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Counts writes sent without waiting for them (a producer's status records), so that closing
/// can wait for them rather than cut them off.
final class PendingWrites: Sendable {
    private struct State {
        var count = 0
        var waiters: [CheckedContinuation<Void, Never>] = []
        /// Set when a drain gave up waiting: a waiter that comes after must not wait.
        var gaveUp = false
    }

    private let state = Mutex(State())

    func begin() {
        state.withLock { $0.count += 1 }
    }

    func end() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.count -= 1
            guard state.count == 0 else { return [] }
            defer { state.waiters.removeAll() }
            return state.waiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Returns once no write is pending, or after `limit`: a store that does not answer must not
    /// hold up a close.
    func drain(within limit: Duration) async {
        await withTaskGroup(of: Void.self) { race in
            race.addTask {
                await withCheckedContinuation { continuation in
                    let done = self.state.withLock { state in
                        if state.count == 0 || state.gaveUp { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if done { continuation.resume() }
                }
            }
            race.addTask { try? await Task.sleep(for: limit) }
            await race.next()
            race.cancelAll()
            // The drained task cannot be cancelled: wake it, so the group can end.
            let waiters = self.state.withLock { state in
                state.gaveUp = true
                defer { state.waiters.removeAll() }
                return state.waiters
            }
            for waiter in waiters { waiter.resume() }
        }
    }
}
