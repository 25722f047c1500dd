// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// A value that arrives once, awaited by any number of tasks.
///
/// The first ``resolve(_:)`` wins; later ones are ignored. An awaiter whose task is cancelled
/// stops waiting with `CancellationError`; the others keep waiting.
final class Promise<Value: Sendable>: Sendable {
    private typealias Waiter = (id: UInt64, continuation: CheckedContinuation<Value, any Error>)

    private enum State {
        /// Nearly always one awaiter (the caller), kept out of the array so it costs no allocation.
        case waiting(first: Waiter?, others: [Waiter])
        case resolved(Value)
    }

    private struct Storage {
        var state: State = .waiting(first: nil, others: [])
        var nextWaiter: UInt64 = 0
    }

    private let storage = Mutex(Storage())

    /// Settles the promise; returns whether this call settled it.
    @discardableResult
    func resolve(_ value: Value) -> Bool {
        let waiters: (first: Waiter?, others: [Waiter])? = storage.withLock { storage in
            guard case .waiting(let first, let others) = storage.state else { return nil }
            storage.state = .resolved(value)
            return (first, others)
        }
        guard let waiters else { return false }
        waiters.first?.continuation.resume(returning: value)
        for waiter in waiters.others { waiter.continuation.resume(returning: value) }
        return true
    }

    /// The value, once resolved.
    func wait() async throws -> Value {
        let id = storage.withLock { storage in
            if case .resolved = storage.state { return UInt64(0) }
            storage.nextWaiter += 1
            return storage.nextWaiter
        }
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { continuation in
                let outcome: Result<Value, any Error>? = storage.withLock { storage in
                    switch storage.state {
                    case .resolved(let value): return .success(value)
                    case .waiting(let first, var others):
                        if Task.isCancelled { return .failure(CancellationError()) }
                        if first == nil {
                            storage.state = .waiting(first: (id, continuation), others: others)
                        } else {
                            storage.state = .waiting(first: nil, others: [])
                            others.append((id, continuation))
                            storage.state = .waiting(first: first, others: others)
                        }
                        return nil
                    }
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = storage.withLock { storage -> Waiter? in
                guard case .waiting(let first, var others) = storage.state else { return nil }
                if first?.id == id {
                    storage.state = .waiting(first: nil, others: others)
                    return first
                }
                guard let index = others.firstIndex(where: { $0.id == id }) else { return nil }
                storage.state = .waiting(first: first, others: [])
                let waiter = others.remove(at: index)
                storage.state = .waiting(first: first, others: others)
                return waiter
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
