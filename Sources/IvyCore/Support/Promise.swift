// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// A value that arrives once, awaited by any number of tasks.
///
/// The first ``resolve(_:)`` wins; later ones are ignored. An awaiter whose task is cancelled
/// stops waiting with `CancellationError`; the others keep waiting.
final class Promise<Value: Sendable>: Sendable {
    private enum State {
        case waiting([UInt64: CheckedContinuation<Value, any Error>])
        case resolved(Value)
    }

    private struct Storage {
        var state: State = .waiting([:])
        var nextWaiter: UInt64 = 0
    }

    private let storage = Mutex(Storage())

    /// Settles the promise; returns whether this call settled it.
    @discardableResult
    func resolve(_ value: Value) -> Bool {
        let waiters: [CheckedContinuation<Value, any Error>]? = storage.withLock { storage in
            guard case .waiting(let waiters) = storage.state else { return nil }
            storage.state = .resolved(value)
            return Array(waiters.values)
        }
        guard let waiters else { return false }
        for waiter in waiters { waiter.resume(returning: value) }
        return true
    }

    /// The value, once resolved.
    func wait() async throws -> Value {
        let id = storage.withLock { storage in
            storage.nextWaiter += 1
            return storage.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<Value, any Error>? = storage.withLock { storage in
                    switch storage.state {
                    case .resolved(let value): return .success(value)
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
            let waiter = storage.withLock { storage -> CheckedContinuation<Value, any Error>? in
                guard case .waiting(var waiters) = storage.state else { return nil }
                let waiter = waiters.removeValue(forKey: id)
                storage.state = .waiting(waiters)
                return waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
    }
}
