// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Code that runs around every attempt a worker makes: logging, metrics, tracing, auth.
///
/// A worker's middleware wrap each other in the order given, the first outermost, and the
/// innermost wraps the task body. Each sees the run's ``TaskContext`` and decides what happens:
///
/// ```swift
/// struct Timing: TaskMiddleware {
///     func intercept(_ context: TaskContext, next: () async throws -> Void) async throws {
///         let start = ContinuousClock.now
///         defer { print(context.taskName, ContinuousClock.now - start) }
///         try await next()              // the task (and the middleware inside this one)
///     }
/// }
/// let worker = try IvyWorker(registry: registry, connection: connection, middleware: [Timing()])
/// ```
///
/// Before `next`: refuse a run by throwing (a ``TaskFailure`` with `retryable: false` fails the
/// call for good, any other error counts as a retryable failure). After it: the task returned;
/// its result is published once every middleware has returned. If `next` throws, the task
/// failed: rethrow to keep that outcome, or throw another error to replace it; returning anyway
/// keeps the task's failure (there is no result to publish). Returning without calling `next`
/// or throwing fails the call for good (`SkippedByMiddleware`): a call either runs or says why
/// not. `next` runs the task once; a second call throws. A middleware runs inside the task's
/// timeout and is cancelled with it.
public protocol TaskMiddleware: Sendable {
    /// Runs `next` (the rest of the chain and the task) for one attempt, or throws instead.
    func intercept(_ context: TaskContext, next: () async throws -> Void) async throws
}

extension [any TaskMiddleware] {
    /// Runs `body` inside every middleware of the slice, the first outermost.
    func intercept(_ context: TaskContext, around body: () async throws -> Void) async throws {
        try await self[...].intercept(context, around: body)
    }
}

extension ArraySlice<any TaskMiddleware> {
    fileprivate func intercept(_ context: TaskContext, around body: () async throws -> Void) async throws {
        guard let outermost = first else { return try await body() }
        try await outermost.intercept(context) { try await dropFirst().intercept(context, around: body) }
    }
}
