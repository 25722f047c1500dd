// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// Carries out requests in batches: those that arrive while a batch is under way go together in
/// the next one (group commit).
///
/// A request that finds nothing under way starts its batch at once, from the caller, so an idle
/// system pays no extra hop. Under load one batch at a time is under way, holding everything
/// that queued behind the previous one: a broker then runs one script per batch instead of one
/// per message, and the batch grows with the load by itself.
///
/// Batches report through a callback rather than by returning: the broker's connection thread
/// settles the callers of one batch and starts the next, with no task switch in between, and
/// callers with something else to await (a producer waiting for its result) need not suspend
/// for the batch at all.
///
/// ```swift
/// let acks = RequestCoalescer<String, Bool>(maximumBatch: 500) { ids, done in
///     broker.acknowledge(ids) { results in done(results) }    // one result per id, in order
/// }
/// let removed = try await acks.submit(id)
/// ```
package final class RequestCoalescer<Request: Sendable, Response: Sendable>: Sendable {
    /// Receives one request's outcome.
    package typealias Completion = @Sendable (Result<Response, any Error>) -> Void
    /// Starts a batch, and later calls `done` once, from any thread, with one result per request
    /// in order. It must not block: it runs on the thread of whoever started the batch.
    package typealias Execute =
        @Sendable (_ batch: [Request], _ done: @escaping @Sendable ([Result<Response, any Error>]) -> Void) ->
        Void

    /// Requests and their callers side by side, so a batch is handed to `execute` as it is:
    /// this code runs unspecialised, where every copy of a composite element costs a look-up of
    /// its type's metadata.
    private struct Batch: Sendable {
        var requests: [Request] = []
        var completions: [Completion] = []
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

    /// Carries out `request`, alone when nothing is under way, otherwise in the next batch, and
    /// hands its outcome to `completion`.
    package func submit(_ request: Request, completion: @escaping Completion) {
        let startsBatch = state.withLock { state in
            guard state.isBusy else {
                state.isBusy = true
                return true
            }
            state.queued.requests.append(request)
            state.queued.completions.append(completion)
            return false
        }
        if startsBatch { run(Batch(requests: [request], completions: [completion])) }
    }

    /// Carries out `request` and returns its response.
    package func submit(_ request: Request) async throws -> Response {
        try await awaiting { submit(request, completion: $0) }
    }

    /// Requests waiting for the next batch.
    package var queuedCount: Int { state.withLock { $0.queued.requests.count } }

    /// Executes `batch`; when it is done, settles its callers and runs the next one, if any.
    ///
    /// A batch can be done before `execute` returns (a closed connection fails it at once): the
    /// next batch then runs in this loop rather than one level deeper, so a long run of such
    /// batches cannot exhaust the stack.
    private func run(_ first: Batch) {
        var batch = first
        while true {
            let turn = Turn()
            execute(batch.requests) { [completions = batch.completions] results in
                precondition(results.count == completions.count, "a batch must give one result per request")
                for index in results.indices { completions[index](results[index]) }
                let next = self.takeNext()
                guard !next.requests.isEmpty else { return }
                if turn.handBack(next) == false { self.run(next) }
            }
            guard let next = turn.executeReturned() else { return }
            batch = next
        }
    }

    /// Tells a batch that finished while `execute` was still running from one that finished later.
    private final class Turn: Sendable {
        private struct State {
            var executeReturned = false
            var handedBack: Batch?
        }

        private let state = Mutex(State())

        /// Leaves `next` for the loop in ``run(_:)`` if `execute` has not returned; false if it has.
        func handBack(_ next: Batch) -> Bool {
            state.withLock { state in
                guard !state.executeReturned else { return false }
                state.handedBack = next
                return true
            }
        }

        /// The batch left by a `done` that came first, if any.
        func executeReturned() -> Batch? {
            state.withLock { state in
                state.executeReturned = true
                return state.handedBack.take()
            }
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
                state.queued.completions.removeFirst(maximumBatch)
            }
            return Batch(
                requests: Array(state.queued.requests.prefix(maximumBatch)),
                completions: Array(state.queued.completions.prefix(maximumBatch)))
        }
    }
}
