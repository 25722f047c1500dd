// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Synchronization

/// One command a ``CommandRunner`` runs: what it wrote, within bounds, and whether and why it is
/// being stopped.
///
/// The child process reports to it from its I/O thread, while cancellation, the output limit
/// and ``CommandRunner/close()`` may stop it from any thread, even before the child exists.
final class CommandRun: Sendable {
    /// Why a run is being stopped; the first reason wins.
    enum StopReason: Sendable {
        /// The calling task was cancelled: the task's timeout, or a worker's shutdown.
        case cancelled
        /// It wrote more than the limit to standard output.
        case outputTooLarge
        /// The runner was closed.
        case closed
    }

    /// What the run left behind once the child has ended.
    struct Ending: Sendable {
        var termination: ChildProcess.Termination
        var stopReason: StopReason?
        /// Standard output; empty once it passed the limit.
        var stdout: [UInt8]
        /// Whether standard output passed the limit.
        var stdoutOverflowed: Bool
        /// The end of standard error.
        var stderrTail: [UInt8]
    }

    private struct State {
        var child: ChildProcess?
        var stopReason: StopReason?
        var stdout: [UInt8] = []
        var stdoutOverflowed = false
        var stderrTail: [UInt8] = []
    }

    private let outputLimit: Int
    private let stderrTailLimit: Int
    private let grace: Duration
    private let state = Mutex(State())
    /// Fires when the child has ended (or could not start).
    let ended = OneShot()

    init(outputLimit: Int, stderrTailLimit: Int, grace: Duration) {
        self.outputLimit = outputLimit
        self.stderrTailLimit = stderrTailLimit
        self.grace = grace
    }

    /// Hands over the started child; a stop asked for before this reaches it now.
    func attach(_ child: ChildProcess) {
        let stopNow = state.withLock { state in
            state.child = child
            return state.stopReason != nil
        }
        if stopNow { child.terminate(grace: grace) }
    }

    /// Stops the command: SIGTERM to its group now, SIGKILL after the grace period.
    func stop(_ reason: StopReason) {
        let child = state.withLock { state -> ChildProcess? in
            guard state.stopReason == nil else { return nil }
            state.stopReason = reason
            return state.child
        }
        child?.terminate(grace: grace)
    }

    /// Why the run was asked to stop, if it was.
    var stopReason: StopReason? { state.withLock { $0.stopReason } }

    /// Keeps a chunk of output: standard output up to the limit, the tail of standard error.
    func received(_ bytes: [UInt8], on stream: ChildProcess.Output) {
        let overflowed = state.withLock { state -> Bool in
            switch stream {
            case .stdout:
                guard !state.stdoutOverflowed else { return false }
                guard state.stdout.count + bytes.count <= outputLimit else {
                    state.stdoutOverflowed = true
                    state.stdout = []
                    return true
                }
                state.stdout += bytes
            case .stderr:
                state.stderrTail += bytes
                // Trimmed in batches, so that a chatty command costs no quadratic copying.
                if state.stderrTail.count > 2 * stderrTailLimit {
                    state.stderrTail.removeFirst(state.stderrTail.count - stderrTailLimit)
                }
            }
            return false
        }
        if overflowed { stop(.outputTooLarge) }
    }

    /// What the run left behind, once the child has ended.
    func ending(_ termination: ChildProcess.Termination) -> Ending {
        state.withLock { state in
            defer { state.child = nil }
            return Ending(
                termination: termination, stopReason: state.stopReason, stdout: state.stdout,
                stdoutOverflowed: state.stdoutOverflowed,
                stderrTail: Array(state.stderrTail.suffix(stderrTailLimit)))
        }
    }
}
