// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// One ``RequestCoalescer`` per key (a queue, a channel), made the first time the key is used.
package final class CoalescerTable<Request: Sendable, Response: Sendable>: Sendable {
    package typealias Coalescer = RequestCoalescer<Request, Response>

    private let coalescers = Mutex<[String: Coalescer]>([:])
    private let maximumBatch: Int

    package init(maximumBatch: Int) {
        self.maximumBatch = maximumBatch
    }

    /// Carries out `request` in `key`'s batches and hands its outcome to `completion`;
    /// `execute` makes the coalescer the first time.
    ///
    /// Tables are usually stored in the object whose work `execute` does: capture it weakly.
    package func submit(
        _ request: Request, key: String, execute: @escaping Coalescer.Execute,
        completion: @escaping Coalescer.Completion
    ) {
        coalescer(for: key, execute: execute).submit(request, completion: completion)
    }

    /// Carries out `request` in `key`'s batches and returns its response.
    package func submit(_ request: Request, key: String, execute: @escaping Coalescer.Execute) async throws
        -> Response
    {
        try await coalescer(for: key, execute: execute).submit(request)
    }

    private func coalescer(for key: String, execute: @escaping Coalescer.Execute) -> Coalescer {
        coalescers.withLock { table in
            if let existing = table[key] { return existing }
            let made = Coalescer(maximumBatch: maximumBatch, execute: execute)
            table[key] = made
            return made
        }
    }
}
