// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// The one outcome of a call, shared by everyone who awaits it.
final class ResultSlot: Sendable {
    private enum State {
        case waiting([UInt64: CheckedContinuation<ResultNotification, any Error>])
        case resolved(Result<ResultNotification, any Error>)
    }

    private struct Storage {
        var state: State = .waiting([:])
        var nextWaiter: UInt64 = 0
    }

    private let storage = Mutex(Storage())

    /// Settles the slot; later calls are ignored. Returns whether this call settled it.
    @discardableResult
    func resolve(_ outcome: Result<ResultNotification, any Error>) -> Bool {
        let waiters: [CheckedContinuation<ResultNotification, any Error>]? = storage.withLock { storage in
            guard case .waiting(let waiters) = storage.state else { return nil }
            storage.state = .resolved(outcome)
            return Array(waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(with: outcome) }
        return true
    }

    /// Waits for the outcome; a cancelled awaiter stops waiting with `CancellationError`.
    func wait() async throws -> ResultNotification {
        let id = storage.withLock { storage in
            storage.nextWaiter += 1
            return storage.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<ResultNotification, any Error>? = storage.withLock { storage in
                    switch storage.state {
                    case .resolved(let outcome): return outcome
                    case .waiting(var waiters):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        waiters[id] = continuation
                        storage.state = .waiting(waiters)
                        return nil
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = storage.withLock { storage -> CheckedContinuation<ResultNotification, any Error>? in
                guard case .waiting(var waiters) = storage.state else { return nil }
                let waiter = waiters.removeValue(forKey: id)
                storage.state = .waiting(waiters)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
