// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// The calls a worker that allows cancelling running calls (``WorkerOptions/allowCancelRunning``)
/// is about to run or running, by id, so that a cancel heard on the cancel channel reaches them.
///
/// A call is expected (``expect(_:)``) before the worker records its `running` status, so a
/// cancel asked right after that record, before the body starts, is not missed. Where the
/// reserve recorded it, a cancel may come before the call is expected: the latest cancels of
/// calls not here are kept (``rememberedCancels``), and a call expected after its cancel does
/// not start (``Ticket/wasCancelled``). Each attempt's body runs in a task of its own here:
/// cancelling it is Swift task cancellation, which the body sees as `Task.isCancelled` or a
/// `CancellationError`.
final class RunningCalls: Sendable {
    /// One attempt of a call (the same call may be delivered twice at once).
    struct Ticket: Sendable {
        fileprivate let id: String
        fileprivate let number: UInt64
        /// A cancel of the call was heard before it was expected: it must not start.
        let wasCancelled: Bool
    }

    private struct Entry {
        var task: Task<[UInt8], any Error>?
        var cancelled = false
    }

    private struct State {
        var calls: [String: [UInt64: Entry]] = [:]
        var next: UInt64 = 0
        /// Cancels heard for calls not here, oldest first: most are of calls on other workers.
        var heard = FIFOBuffer<String>()
        var heardSet: Set<String> = []
    }

    /// How many cancels of calls not here are kept: far more than a reserve hands out before
    /// its calls are expected.
    static let rememberedCancels = 1024

    private let state = Mutex(State())

    /// Starts listening for cancels of call `id`; end with ``run(_:_:)`` or ``forget(_:)``.
    func expect(_ id: String) -> Ticket {
        state.withLock { state in
            state.next += 1
            // Left in the queue, where it ages out: the set says which are still pending.
            let heard = state.heardSet.remove(id) != nil
            state.calls[id, default: [:]][state.next] = Entry(cancelled: heard)
            return Ticket(id: id, number: state.next, wasCancelled: heard)
        }
    }

    /// Stops listening for the call's cancels without running it.
    func forget(_ ticket: Ticket) {
        state.withLock { Self.remove(ticket, from: &$0) }
    }

    /// Runs `body` as the ticket's attempt and returns what it returns; a cancellation of the
    /// calling task (a timeout, shutdown) reaches `body` too. Reports whether a cancel reached
    /// it; a cancel that came before it started keeps it from starting.
    func run(_ ticket: Ticket, _ body: @escaping @Sendable () async throws -> [UInt8]) async
        -> (result: Result<[UInt8], any Error>, cancelled: Bool)
    {
        let task = Task { try await body() }
        let cancelledAlready = state.withLock { state -> Bool in
            state.calls[ticket.id]?[ticket.number]?.task = task
            return state.calls[ticket.id]?[ticket.number]?.cancelled ?? false
        }
        if cancelledAlready { task.cancel() }
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            task.cancel()
        }
        let cancelled = state.withLock { state in
            defer { Self.remove(ticket, from: &state) }
            return state.calls[ticket.id]?[ticket.number]?.cancelled ?? false
        }
        return (result, cancelled)
    }

    /// Cancels every attempt of call `id` expected or running here; true if there was one.
    /// Otherwise the cancel is kept for an attempt expected soon.
    @discardableResult
    func cancel(_ id: String) -> Bool {
        let tasks = state.withLock { state -> [Task<[UInt8], any Error>?]? in
            guard var entries = state.calls[id] else {
                if state.heardSet.insert(id).inserted {
                    state.heard.append(id)
                    if state.heard.count > Self.rememberedCancels, let oldest = state.heard.popFirst() {
                        state.heardSet.remove(oldest)
                    }
                }
                return nil
            }
            for number in entries.keys { entries[number]?.cancelled = true }
            state.calls[id] = entries
            return entries.values.map(\.task)
        }
        for task in tasks ?? [] { task?.cancel() }
        return tasks != nil
    }

    private static func remove(_ ticket: Ticket, from state: inout State) {
        state.calls[ticket.id]?[ticket.number] = nil
        if state.calls[ticket.id]?.isEmpty == true { state.calls[ticket.id] = nil }
    }
}
