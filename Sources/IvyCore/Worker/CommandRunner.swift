// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import Synchronization

/// Runs shell commands as task bodies, so that a program in any language can serve a task.
///
/// A task's arguments go to the command's standard input as one JSON array; the one JSON value
/// the command writes to standard output is the task's result. Register a task with
/// ``TaskRegistry/registerUntyped(_:queue:retry:timeout:resultWanted:_:)`` whose body calls
/// ``run(_:arguments:)``, and close the runner after the worker:
///
/// ```swift
/// let runner = CommandRunner()
/// try registry.registerUntyped("images.resize", queue: "images", retry: .fixed(maxAttempts: 3),
///                              timeout: .seconds(120)) { arguments in
///     try await runner.run("python3 resize.py", arguments: arguments)
/// }
/// let worker = try IvyWorker(registry: registry, connection: connection)
/// try await worker.run()
/// await runner.close()   // ends and reaps the commands of runs the worker abandoned
/// ```
///
/// Each run is `/bin/sh -c COMMAND`, so the command may be a pipeline, use redirections,
/// quoting and `$VARIABLES`, or be several commands separated by `;`. It runs:
/// - in a process group of its own, which is what cancellation stops, descendants included;
/// - with this process's environment plus `IVY_TASK_ID`, `IVY_TASK_NAME` and `IVY_ATTEMPT`
///   (from 1) of ``TaskContext/current``, absent outside a task run, and without
///   `MESSAGES_ENCRYPTION_KEY`, the worker's secret;
/// - with the arguments array and a newline on standard input, then end of file; a command
///   that does not read its input is fine;
/// - with no file descriptor of this process other than its three standard streams.
///
/// How a run ends:
/// - Exit status 0: standard output, one JSON value with any surrounding whitespace, is the
///   result; empty (or blank) output is `null`. Anything else fails with
///   `InvalidCommandOutput`, not retryable: running it again would print the same.
/// - Another exit status: `CommandFailed`, retryable, whose message is the last non-empty
///   line of standard error, else "exited with status N".
/// - A signal: `CommandFailed`, retryable, saying which ("killed by SIGSEGV"), with the last
///   line of standard error.
/// - More than ``Options/outputLimit`` bytes of standard output: the command is stopped and the
///   run fails with `CommandOutputTooLarge`, not retryable.
/// - `/bin/sh` cannot be started (no processes or descriptors left): `CommandNotStarted`,
///   retryable. A command the shell cannot find is a `CommandFailed` with the shell's message.
/// - Cancellation of the calling task (the task's timeout, or a worker's shutdown past its
///   grace period): SIGTERM to the command's whole process group, SIGKILL after
///   ``Options/terminationGrace``; the call returns once the command is reaped, throwing
///   `CancellationError`.
///
/// The failures are ``TaskFailure``s, so a worker reports them by name to the caller and
/// retries the retryable ones as the task's ``RetryPolicy`` allows. Nothing a command does can
/// crash the calling process: broken pipes fail the write instead of raising SIGPIPE, and
/// output is bounded.
public final class CommandRunner: Sendable {
    /// Bounds on what a run keeps, and how long a stopped command gets before SIGKILL.
    public struct Options: Sendable, Hashable {
        /// Bytes of standard output a command may write; more fails the run. The default,
        /// 16 MiB, is the in-memory queue's message limit; results travel in messages too.
        public var outputLimit: Int
        /// Bytes kept from the end of standard error, for the failure's message.
        public var stderrTailLimit: Int
        /// How long a command has between SIGTERM and SIGKILL when it is stopped.
        public var terminationGrace: Duration

        public init(
            outputLimit: Int = 16 << 20, stderrTailLimit: Int = 4096, terminationGrace: Duration = .seconds(2)
        ) {
            precondition(outputLimit >= 0, "outputLimit cannot be negative")
            precondition(stderrTailLimit >= 1, "stderrTailLimit must be at least 1")
            precondition(terminationGrace >= .zero, "terminationGrace cannot be negative")
            self.outputLimit = outputLimit
            self.stderrTailLimit = stderrTailLimit
            self.terminationGrace = terminationGrace
        }
    }

    private struct Runs {
        var isClosed = false
        var nextID: UInt64 = 0
        var live: [UInt64: CommandRun] = [:]
    }

    /// The shell every command runs in.
    static let shell = "/bin/sh"

    public let options: Options
    private let runs = Mutex(Runs())

    public init(options: Options = .init()) {
        self.options = options
    }

    /// Runs `command` once with a task's `arguments` and returns its result.
    ///
    /// - Parameters:
    ///   - command: A `/bin/sh` command line.
    ///   - arguments: The task's arguments, written to standard input as one JSON array.
    /// - Returns: The JSON value the command wrote to standard output, or `null` when it wrote
    ///   nothing.
    /// - Throws: A ``TaskFailure`` named `CommandFailed`, `InvalidCommandOutput`,
    ///   `CommandOutputTooLarge` or `CommandNotStarted`; `CancellationError` when the calling
    ///   task was cancelled; ``IvyError/Code/closed`` once ``close()`` was called.
    public func run(_ command: String, arguments: [RawJSON]) async throws -> RawJSON {
        let run = CommandRun(
            outputLimit: options.outputLimit, stderrTailLimit: options.stderrTailLimit,
            grace: options.terminationGrace)
        guard let id = admit(run) else { throw IvyError(.closed, detail: "the command runner is closed") }
        defer { runs.withLock { _ = $0.live.removeValue(forKey: id) } }
        let configuration = ChildProcess.Configuration(
            executable: Self.shell, arguments: ["-c", command], environment: Self.environment(),
            input: Self.input(arguments), newProcessGroup: true, threadName: "ivy-exec")
        let ending = try await withTaskCancellationHandler {
            try await start(run, configuration)
        } onCancel: {
            run.stop(.cancelled)
        }
        return try outcome(of: ending)
    }

    /// Stops every command still running (SIGTERM to its group, SIGKILL after the grace
    /// period) and returns once all are reaped; later runs fail with ``IvyError/Code/closed``.
    ///
    /// Call it after the worker that runs the commands has stopped: a worker abandons a task
    /// that passes its timeout or outlives the shutdown grace period, and this is where the
    /// process waits for such commands to be gone.
    public func close() async {
        let live = runs.withLock { runs in
            runs.isClosed = true
            return Array(runs.live.values)
        }
        for run in live { run.stop(.closed) }
        for run in live { await run.ended.wait() }
    }

    private func admit(_ run: CommandRun) -> UInt64? {
        runs.withLock { runs in
            guard !runs.isClosed else { return nil }
            runs.nextID += 1
            runs.live[runs.nextID] = run
            return runs.nextID
        }
    }

    /// Spawns the command and waits for its end; nothing is spawned for a run already stopped.
    private func start(_ run: CommandRun, _ configuration: ChildProcess.Configuration) async throws
        -> CommandRun.Ending
    {
        if let reason = run.stopReason {
            run.ended.fire()
            throw Self.error(stoppedBy: reason) ?? CancellationError()
        }
        return try await withCheckedThrowingContinuation { continuation in
            // posix_spawn blocks its caller until the child has exec'd: a thread of its own,
            // not the cooperative pool's.
            DedicatedThread.start(name: "ivy-exec-spawn") {
                do {
                    let child = try ChildProcess(configuration) { stream, bytes in
                        run.received(bytes, on: stream)
                    } onEnd: { termination in
                        let ending = run.ending(termination)
                        run.ended.fire()
                        continuation.resume(returning: ending)
                    }
                    run.attach(child)
                } catch {
                    run.ended.fire()
                    continuation.resume(
                        throwing: TaskFailure("CommandNotStarted", "\(error)", retryable: true))
                }
            }
        }
    }

    /// The result or the failure a run's end means.
    private func outcome(of ending: CommandRun.Ending) throws -> RawJSON {
        if let reason = ending.stopReason, let error = Self.error(stoppedBy: reason) { throw error }
        if ending.stdoutOverflowed {
            throw TaskFailure(
                "CommandOutputTooLarge",
                "the command wrote more than \(options.outputLimit) bytes to standard output",
                retryable: false)
        }
        let lastLine = Self.lastLine(of: ending.stderrTail)
        switch ending.termination {
        case .exited(0):
            break
        case .exited:
            throw TaskFailure("CommandFailed", lastLine ?? "\(ending.termination)", retryable: true)
        case .signalled, .unknown:
            throw TaskFailure(
                "CommandFailed", "\(ending.termination)" + (lastLine.map { ": \($0)" } ?? ""), retryable: true
            )
        }
        guard ending.stdout.contains(where: { !Self.isJSONWhitespace($0) }) else { return .null }
        do { return try RawJSON(validating: ending.stdout) } catch {
            throw TaskFailure(
                "InvalidCommandOutput",
                "the command exited with status 0, but its standard output is not one JSON value ("
                    + (error.detail ?? "\(error.code)") + ")",
                retryable: false)
        }
    }

    /// The error a run stopped for `reason` ends with; nil when its outcome says more.
    private static func error(stoppedBy reason: CommandRun.StopReason) -> (any Error)? {
        switch reason {
        case .cancelled: CancellationError()
        case .closed: IvyError(.closed, detail: "the command runner was closed while the command ran")
        case .outputTooLarge: nil
        }
    }

    /// The arguments array, as the task's message carried its elements, and a newline (for
    /// line readers such as the shell's `read`).
    private static func input(_ arguments: [RawJSON]) -> [UInt8] {
        ArgumentEncoder.encode(json: arguments) + [UInt8(ascii: "\n")]
    }

    /// This process's environment and the calling task run's ids (removed outside a run, so
    /// that a worker started by a command does not pass its parent's ids on).
    private static func environment() -> [String: String] {
        var environment = ProcessInfo.processInfo.environment
        // The message key is the worker's secret, not the handler's: a handler that prints its
        // environment must not be able to show it.
        environment["MESSAGES_ENCRYPTION_KEY"] = nil
        let context = TaskContext.current
        environment["IVY_TASK_ID"] = context?.taskID
        environment["IVY_TASK_NAME"] = context?.taskName
        environment["IVY_ATTEMPT"] = context.map { String($0.attempt) }
        return environment
    }

    /// The last line of `bytes` with anything but whitespace, trimmed.
    static func lastLine(of bytes: [UInt8]) -> String? {
        String(decoding: bytes, as: UTF8.self).split(whereSeparator: \.isNewline)
            .lazy.map { $0.trimmingCharacters(in: .whitespaces) }.last { !$0.isEmpty }
    }

    private static func isJSONWhitespace(_ byte: UInt8) -> Bool {
        byte == 0x20 || byte == 0x0A || byte == 0x0D || byte == 0x09
    }
}
