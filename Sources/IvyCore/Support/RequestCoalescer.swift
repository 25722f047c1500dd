// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Carries out requests in batches: those that arrive while a batch is under way go together in
/// the next one (group commit).
///
/// A request that finds nothing under way is carried out at once, by its own task, so an idle
/// system pays no extra hop. Under load one batch at a time is under way, holding everything
/// that queued behind the previous one: a broker then runs one script per batch instead of one
/// per message, and the batch grows with the load by itself.
///
/// ```swift
/// let acks = RequestCoalescer<String, Bool>(maximumBatch: 500) { ids in
///     await broker.acknowledge(ids)    // one result per id, in order
/// }
/// let removed = try await acks.submit(id)
/// ```
package final class RequestCoalescer<Request: Sendable, Response: Sendable>: Sendable {
    /// Carries out a batch; returns one result per request, in order.
    package typealias Execute = @Sendable ([Request]) async -> [Result<Response, any Error>]

    /// Requests and their callers side by side, so a batch is handed to `execute` as it is:
    /// this code runs unspecialised, where every copy of a composite element costs a look-up of
    /// its type's metadata.
    private struct Batch {
        var requests: [Request] = []
        var callers: [CheckedContinuation<Response, any Error>] = []
    }

    private struct State {
        var queued = Batch()
        var isBusy = false
    }

    private let maximumBatch: Int
    private let execute: Execute
    private let state = Mutex(State())

    package init(maximumBatch: Int, execute: @escaping Execute) {
        precondition(maximumBatch > 0, "maximumBatch must be at least 1")
        self.maximumBatch = maximumBatch
        self.execute = execute
    }

    /// Carries out `request`, alone when nothing is under way, otherwise in the next batch.
    package func submit(_ request: Request) async throws -> Response {
        if state.withLock({ Self.claim(&$0) }) { return try await run(request) }
        return try await withCheckedThrowingContinuation { continuation in
            let leads = state.withLock { state in
                if Self.claim(&state) { return true }
                state.queued.requests.append(request)
                state.queued.callers.append(continuation)
                return false
            }
            // The batch under way finished in between: this request starts the next one.
            if leads { Task { await self.drain(startingWith: Batch(requests: [request], callers: [continuation])) } }
        }
    }

    /// Requests waiting for the next batch.
    package var queuedCount: Int { state.withLock { $0.queued.requests.count } }

    /// Marks a batch as under way; false when one already is.
    private static func claim(_ state: inout State) -> Bool {
        guard !state.isBusy else { return false }
        state.isBusy = true
        return true
    }

    private func run(_ request: Request) async throws -> Response {
        let results = await execute([request])
        precondition(results.count == 1, "a batch must give one result per request")
        let next = takeNext()
        if !next.requests.isEmpty { Task { await self.drain(startingWith: next) } }
        return try results[0].get()
    }

    /// Runs batches until nothing is queued.
    private func drain(startingWith first: Batch) async {
        var batch = first
        while !batch.requests.isEmpty {
            let results = await execute(batch.requests)
            precondition(results.count == batch.callers.count, "a batch must give one result per request")
            for index in results.indices { batch.callers[index].resume(with: results[index]) }
            batch = takeNext()
        }
    }

    /// The next batch, or none, leaving the coalescer idle.
    private func takeNext() -> Batch {
        state.withLock { state in
            guard !state.queued.requests.isEmpty else {
                state.isBusy = false
                return Batch()
            }
            guard state.queued.requests.count > maximumBatch else {
                // The usual case: everything queued goes, and nothing is copied.
                defer { state.queued = Batch() }
                return state.queued
            }
            defer {
                state.queued.requests.removeFirst(maximumBatch)
                state.queued.callers.removeFirst(maximumBatch)
            }
            return Batch(
                requests: Array(state.queued.requests.prefix(maximumBatch)),
                callers: Array(state.queued.callers.prefix(maximumBatch)))
        }
    }
}
