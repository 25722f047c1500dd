// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// One ``RequestCoalescer`` per key (a queue, a channel), made the first time the key is used.
package final class CoalescerTable<Request: Sendable, Response: Sendable>: Sendable {
    private let coalescers = Mutex<[String: RequestCoalescer<Request, Response>]>([:])
    private let maximumBatch: Int

    package init(maximumBatch: Int) {
        self.maximumBatch = maximumBatch
    }

    /// Carries out `request` in `key`'s batches; `execute` makes the coalescer the first time.
    ///
    /// Tables are usually stored in the object whose work `execute` does: capture it weakly.
    package func submit(
        _ request: Request, key: String, execute: @escaping RequestCoalescer<Request, Response>.Execute
    ) async throws -> Response {
        let coalescer = coalescers.withLock { table in
            if let existing = table[key] { return existing }
            let made = RequestCoalescer(maximumBatch: maximumBatch, execute: execute)
            table[key] = made
            return made
        }
        return try await coalescer.submit(request)
    }
}
