// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
import IvyCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The built `ivy` executable (or another program) run as a child process, with its output
/// captured.
///
/// Launched by IvyCore's `ChildProcess` (`posix_spawn`, not Foundation's `Process`, which
/// crashed now and then on Linux): the child gets fresh pipes for its output, `/dev/null` or a
/// pipe for its input, default signal handling, and none of the parent's other file
/// descriptors. Its output ends when it exits.
public final class IvyProcess: Sendable {
    public struct Finished: Sendable {
        /// The exit status, or the number of the signal that ended it.
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// What the child wrote, and how it ended, shared with the threads that watch it.
    private final class Output: Sendable {
        /// `status` is set once the child is reaped and its output read to the end.
        let buffers = Mutex((stdout: Data(), stderr: Data(), status: Int32?.none))
        func withLock<T>(_ body: (inout (stdout: Data, stderr: Data, status: Int32?)) -> T) -> T {
            buffers.withLock { body(&$0) }
        }
    }

    /// A launch failed.
    public struct LaunchFailed: Error, CustomStringConvertible {
        public var executable: String
        public var errorNumber: Int32
        public var description: String {
            "cannot run \(executable): \(String(cString: strerror(errorNumber)))"
        }
    }

    public let processIdentifier: Int32
    private let output: Output
    private let changes: AsyncStream<Void>

    /// The executable next to the test bundle, or `IVY_BINARY`.
    public static var executable: URL {
        if let path = ProcessInfo.processInfo.environment["IVY_BINARY"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
            .appendingPathComponent("ivy")
    }

    public convenience init(_ arguments: [String], environment: [String: String] = [:], input: String? = nil)
        throws
    {
        try self.init(executable: Self.executable, arguments, environment: environment, input: input)
    }

    /// Runs another program, such as a private `redis-server`.
    public init(
        executable: URL, _ arguments: [String], environment: [String: String] = [:], input: String? = nil
    ) throws {
        let (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let output = Output()
        var env = ProcessInfo.processInfo.environment
        env["IVY_QUEUE_URL"] = nil
        env["IVY_NOTIFY_URL"] = nil
        env["MESSAGES_ENCRYPTION_KEY"] = nil
        env.merge(environment) { $1 }

        // The shared spawning code of IvyCore: pipes read on threads of their own, the input
        // written without SIGPIPE, the exit awaited on another thread.
        let child: ChildProcess
        do {
            child = try ChildProcess(
                .init(
                    executable: executable.path, arguments: arguments, environment: env,
                    input: input.map { Array($0.utf8) })
            ) { stream, bytes in
                output.withLock { buffers in
                    switch stream {
                    case .stdout: buffers.stdout.append(contentsOf: bytes)
                    case .stderr: buffers.stderr.append(contentsOf: bytes)
                    }
                }
                changed.yield()
            } onEnd: { termination in
                let status: Int32
                switch termination {
                case .exited(let code): status = code
                case .signalled(let signal): status = signal
                case .unknown: status = -1  // never "exited 0" by default
                }
                output.withLock { $0.status = status }
                changed.yield()
            }
        } catch {
            throw LaunchFailed(executable: error.executable, errorNumber: error.errorNumber)
        }
        processIdentifier = child.processIdentifier
        self.output = output
        self.changes = changes
    }

    public var stdoutText: String { output.withLock { String(decoding: $0.stdout, as: UTF8.self) } }

    public var stderrText: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Waits until standard output contains `text`.
    public func waitForStdout(containing text: String) async {
        await waitUntil { self.stdoutText.contains(text) }
    }

    /// Waits until standard error contains `text`.
    public func waitForStderr(containing text: String) async {
        await waitUntil { self.stderrText.contains(text) }
    }

    /// Waits until standard error, as written so far, satisfies `condition`.
    public func waitForStderr(where condition: @escaping @Sendable (String) -> Bool) async {
        await waitUntil { condition(self.stderrText) }
    }

    /// Waits for the process to exit and its output to end, and returns what it wrote.
    public func finish() async -> Finished {
        await waitUntil { self.output.withLock { $0.status != nil } }
        return output.withLock {
            Finished(
                status: $0.status ?? -1, stdout: String(decoding: $0.stdout, as: UTF8.self),
                stderr: String(decoding: $0.stderr, as: UTF8.self))
        }
    }

    private func waitUntil(_ condition: @Sendable () -> Bool) async {
        if condition() { return }
        for await _ in changes where condition() { return }
    }

    /// Runs `ivy` with `arguments` to the end.
    public static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil)
        async throws
        -> Finished
    {
        try await IvyProcess(arguments, environment: environment, input: input).finish()
    }
}
