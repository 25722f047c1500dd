// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Synchronization

/// Thrown by ``withDeadline(_:_:_:)`` when the awaited event does not happen in time.
public struct DeadlineExceeded: Error, CustomStringConvertible {
    public var limit: Duration
    public var what: String
    public var description: String { "\(what) did not happen within \(limit)" }

    public init(limit: Duration, what: String) {
        self.limit = limit
        self.what = what
    }
}

/// Awaits `body`, racing it against a timer (STYLE.md rule 13): tests wait for events, and the
/// timer only turns a hang into a named failure.
///
/// The body runs in its own task, so a body that ignores cancellation (an actor call that is never
/// scheduled, say) still lets the test fail instead of hanging.
@discardableResult
public func withDeadline<T: Sendable>(
    _ limit: Duration = .seconds(30), _ what: String = "the awaited event",
    _ body: @escaping @Sendable () async throws -> T
) async throws -> T {
    let outcome = OneShot<T>()
    return try await withCheckedThrowingContinuation { continuation in
        outcome.arm(continuation)
        let work = Task {
            do { outcome.resume(with: .success(try await body())) } catch {
                outcome.resume(with: .failure(error))
            }
        }
        let timer = Task {
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            work.cancel()
            outcome.resume(with: .failure(DeadlineExceeded(limit: limit, what: what)))
        }
        outcome.onResume { timer.cancel() }
    }
}

/// A continuation resumed at most once, by whichever side finishes first.
private final class OneShot<T: Sendable>: Sendable {
    private struct State {
        var continuation: CheckedContinuation<T, any Error>?
        var cleanup: (@Sendable () -> Void)?
        var done = false
    }
    private let state = Mutex(State())

    func arm(_ continuation: CheckedContinuation<T, any Error>) {
        state.withLock { $0.continuation = continuation }
    }

    func onResume(_ cleanup: @escaping @Sendable () -> Void) {
        let runNow = state.withLock { state -> Bool in
            if state.done { return true }
            state.cleanup = cleanup
            return false
        }
        if runNow { cleanup() }
    }

    func resume(with result: Result<T, any Error>) {
        let (continuation, cleanup) = state.withLock {
            state -> (CheckedContinuation<T, any Error>?, (@Sendable () -> Void)?) in
            guard !state.done else { return (nil, nil) }
            state.done = true
            defer {
                state.continuation = nil
                state.cleanup = nil
            }
            return (state.continuation, state.cleanup)
        }
        continuation?.resume(with: result)
        cleanup?()
    }
}

/// Checks `condition` until it holds, for states that no event announces (a process of another
/// parent gone, a file another process writes); fails with ``DeadlineExceeded`` after `limit`.
///
/// The pause between checks only paces the polling: nothing depends on its length.
public func waitUntil(
    _ what: String, within limit: Duration = .seconds(30), _ condition: @escaping @Sendable () -> Bool
) async throws {
    try await withDeadline(limit, what) {
        while !condition() { try await Task.sleep(for: .milliseconds(10)) }
    }
}
