// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import IvyCore
internal import Synchronization

/// Where callers leave commands for a connection's thread, and how they wake it.
///
/// Callers on any thread append under a lock; the thread takes everything at once, so many
/// publishes handed over together go out back to back and are confirmed in one round. The
/// wake pipe is written only when the thread has said it is about to wait, so a busy
/// connection costs one lock per command and no system call.
final class AMQPInbox: Sendable {
    /// What the thread takes in one go.
    struct Work {
        var commands: [AMQPCommand] = []
        var isClosed = false
    }

    private struct State {
        var work = Work()
        var threadIsWaiting = false
        /// Why the thread stopped taking commands; set once.
        var ended: IvyError?
    }

    let wake = WakePipe()
    /// Fires when the thread has finished.
    private let finished = OneShot()
    private let state = Mutex(State())
    private let endpoint: String

    init(endpoint: String) { self.endpoint = endpoint }

    /// Hands `command` to the thread, or fails it at once when the connection is closed or dead.
    func submit(_ command: AMQPCommand) {
        enum Outcome {
            case queued(wake: Bool)
            case refused(IvyError)
        }
        let outcome = state.withLock { state -> Outcome in
            if let ended = state.ended { return .refused(ended) }
            if state.work.isClosed {
                return .refused(IvyError(.closed, endpoint: endpoint, detail: "the connection was closed"))
            }
            state.work.commands.append(command)
            defer { state.threadIsWaiting = false }
            return .queued(wake: state.threadIsWaiting)
        }
        switch outcome {
        case .queued(let wake): if wake { self.wake.signal() }
        case .refused(let error): command.fail(error)
        }
    }

    /// Asks the thread to close the connection; later commands fail with ``IvyError/Code/closed``.
    func close() {
        state.withLock { $0.work.isClosed = true }
        wake.signal()
    }

    /// Neither closed nor ended.
    var isAlive: Bool { state.withLock { $0.ended == nil && !$0.work.isClosed } }

    /// Returns once the thread has finished (after ``finish()``).
    func waitUntilFinished() async { await finished.wait() }

    // MARK: The thread's side

    /// Everything submitted since the last call. The thread waits on ``wake`` afterwards, so a
    /// later submission signals it.
    func take() -> Work {
        state.withLock { state in
            state.threadIsWaiting = true
            var work = Work(isClosed: state.work.isClosed)
            swap(&work.commands, &state.work.commands)
            return work
        }
    }

    /// Stops taking commands: later submissions fail with `error`. Returns the commands
    /// submitted since the last ``take()``, for the thread to fail.
    func end(with error: IvyError) -> [AMQPCommand] {
        state.withLock { state in
            if state.ended == nil { state.ended = error }
            defer { state.work.commands = [] }
            return state.work.commands
        }
    }

    /// Marks the thread finished and releases ``waitUntilFinished()``.
    func finish() { finished.fire() }
}
