// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// The calls a worker that allows cancelling running calls (``WorkerOptions/allowCancelRunning``)
/// is running, by id, so that a cancel heard on the cancel channel reaches the right one.
///
/// Each attempt's body runs in a task of its own here: cancelling it is Swift task
/// cancellation, which the body sees as `Task.isCancelled` or a `CancellationError`.
final class RunningCalls: Sendable {
    private struct Entry {
        var task: Task<[UInt8], any Error>
        var cancelled = false
    }

    private let entries = Mutex<[String: Entry]>([:])

    /// Runs `body` as call `id` and returns what it returns; a cancellation of the calling task
    /// (a timeout, shutdown) reaches `body` too. Reports whether a cancel reached it.
    func run(_ id: String, _ body: @escaping @Sendable () async throws -> [UInt8]) async
        -> (result: Result<[UInt8], any Error>, cancelled: Bool)
    {
        let task = Task { try await body() }
        entries.withLock { $0[id] = Entry(task: task) }
        let result = await withTaskCancellationHandler {
            await task.result
        } onCancel: {
            task.cancel()
        }
        let cancelled = entries.withLock { $0.removeValue(forKey: id)?.cancelled ?? false }
        return (result, cancelled)
    }

    /// Cancels call `id` if it runs here; true if it did.
    @discardableResult
    func cancel(_ id: String) -> Bool {
        let task = entries.withLock { entries -> Task<[UInt8], any Error>? in
            guard entries[id] != nil else { return nil }
            entries[id]?.cancelled = true
            return entries[id]?.task
        }
        task?.cancel()
        return task != nil
    }
}
