// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// A value that arrives once, awaited by any number of tasks.
///
/// The first ``resolve(_:)`` wins; later ones are ignored. An awaiter whose task is cancelled
/// stops waiting with `CancellationError`; the others keep waiting.
final class Promise<Value: Sendable>: Sendable {
    private struct Waiter {
        let id: UInt64
        let continuation: CheckedContinuation<Value, any Error>
    }

    /// Plain stored properties rather than an enum of states: copying a generic enum's payload
    /// goes through its runtime metadata, a look-up that cost more than the rest of a resolve.
    private struct Storage {
        var value: Value?
        var isResolved = false
        /// Nearly always the only awaiter (the caller), kept out of `others` so it costs no allocation.
        var first: Waiter?
        var others: [Waiter] = []
        var nextWaiter: UInt64 = 0
    }

    private let storage = Mutex(Storage())

    /// Settles the promise; returns whether this call settled it.
    @discardableResult
    func resolve(_ value: Value) -> Bool {
        var first: Waiter?
        var others: [Waiter] = []
        let settled = storage.withLock { storage in
            guard !storage.isResolved else { return false }
            storage.isResolved = true
            storage.value = value
            swap(&first, &storage.first)
            swap(&others, &storage.others)
            return true
        }
        guard settled else { return false }
        first?.continuation.resume(returning: value)
        for waiter in others { waiter.continuation.resume(returning: value) }
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
                    if storage.isResolved, let value = storage.value { return .success(value) }
                    if Task.isCancelled { return .failure(CancellationError()) }
                    let waiter = Waiter(id: id, continuation: continuation)
                    if storage.first == nil {
                        storage.first = waiter
                    } else {
                        storage.others.append(waiter)
                    }
                    return nil
                }
                if let outcome { continuation.resume(with: outcome) }
            }
        } onCancel: {
            let waiter = storage.withLock { storage -> Waiter? in
                if storage.first?.id == id { return storage.first.take() }
                guard let index = storage.others.firstIndex(where: { $0.id == id }) else { return nil }
                return storage.others.remove(at: index)
            }
            waiter?.continuation.resume(throwing: CancellationError())
        }
    }
}
