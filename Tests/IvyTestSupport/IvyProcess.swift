// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The built `ivy` executable (or another program) run as a child process, with its output
/// captured.
///
/// Launched with `posix_spawn`, not Foundation's `Process`: on Linux `Process.run` crashed now
/// and then (a `memcpy` past a buffer) while other threads of the test process opened and
/// closed connections. The child gets fresh pipes for its output, `/dev/null` or a pipe for its
/// input, default signal handling, and none of the parent's other file descriptors.
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
        let buffers = Mutex((stdout: Data(), stderr: Data(), closedPipes: 0, status: Int32?.none))
        func withLock<T>(_ body: (inout (stdout: Data, stderr: Data, closedPipes: Int, status: Int32?)) -> T)
            -> T
        {
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
    private let output = Output()
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

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
        (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        var env = ProcessInfo.processInfo.environment
        env["IVY_QUEUE_URL"] = nil
        env["IVY_NOTIFY_URL"] = nil
        env["MESSAGES_ENCRYPTION_KEY"] = nil
        env.merge(environment) { $1 }

        let stdout = try Self.makePipe()
        let stderr = try Self.makePipe()
        let stdin = input == nil ? nil : try Self.makePipe()
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if let stdin {
            posix_spawn_file_actions_adddup2(&actions, stdin.read, 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, stdout.write, 1)
        posix_spawn_file_actions_adddup2(&actions, stderr.write, 2)
        Self.closeTheRest(&actions)
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var noSignals = sigset_t()
        sigemptyset(&noSignals)
        var allSignals = sigset_t()
        sigfillset(&allSignals)
        posix_spawnattr_setsigmask(&attributes, &noSignals)
        posix_spawnattr_setsigdefault(&attributes, &allSignals)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        let argv = ([executable.path] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer { for pointer in argv + envp { free(pointer) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable.path, &actions, &attributes, argv, envp)
        // The child's ends are the child's now.
        for descriptor in [stdout.write, stderr.write, stdin?.read].compactMap({ $0 }) { close(descriptor) }
        guard status == 0 else {
            for descriptor in [stdout.read, stderr.read, stdin?.write].compactMap({ $0 }) {
                close(descriptor)
            }
            throw LaunchFailed(executable: executable.path, errorNumber: status)
        }
        processIdentifier = pid
        let child = pid

        // One plain thread per pipe, reading until end of file, and one waiting for the exit.
        for (descriptor, isStdout) in [(stdout.read, true), (stderr.read, false)] {
            Thread.detachNewThread { [output, changed] in
                var buffer = [UInt8](repeating: 0, count: 65536)
                while true {
                    let count = read(descriptor, &buffer, buffer.count)
                    if count < 0 && errno == EINTR { continue }
                    let data = count > 0 ? Data(buffer[0..<count]) : Data()
                    output.withLock { buffers in
                        if count <= 0 {
                            buffers.closedPipes += 1
                        } else if isStdout {
                            buffers.stdout.append(data)
                        } else {
                            buffers.stderr.append(data)
                        }
                    }
                    changed.yield()
                    if count <= 0 {
                        close(descriptor)
                        return
                    }
                }
            }
        }
        Thread.detachNewThread { [output, changed] in
            var status: Int32 = 0
            var reaped = waitpid(child, &status, 0)
            while reaped < 0 && errno == EINTR { reaped = waitpid(child, &status, 0) }
            // WIFEXITED / WEXITSTATUS / WTERMSIG, which Swift does not import; -1 when it could
            // not be reaped (never "exited 0" by default).
            let signal = status & 0x7f
            let code = reaped < 0 ? -1 : signal == 0 ? (status >> 8) & 0xff : signal
            output.withLock { $0.status = code }
            changed.yield()
        }
        if let stdin, let input {
            // A child that exits without reading its input must not kill the tests with SIGPIPE:
            // the write then fails with EPIPE.
            Self.ignoreBrokenPipes
            var bytes = Array(input.utf8)[...]
            while !bytes.isEmpty {
                let written = bytes.withUnsafeBytes { write(stdin.write, $0.baseAddress, $0.count) }
                if written < 0 && errno == EINTR { continue }
                if written <= 0 { break }
                bytes = bytes.dropFirst(written)
            }
            close(stdin.write)
        }
    }

    /// Ignores SIGPIPE in the test process, once.
    private static let ignoreBrokenPipes: Void = { _ = signal(SIGPIPE, SIG_IGN) }()

    /// A pipe whose ends close on exec (the child gets copies on 0, 1 and 2 only).
    private static func makePipe() throws -> (read: Int32, write: Int32) {
        var descriptors: [Int32] = [0, 0]
        guard pipe(&descriptors) == 0 else { throw LaunchFailed(executable: "pipe", errorNumber: errno) }
        for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
        return (descriptors[0], descriptors[1])
    }

    /// Closes every descriptor from 3 up in the child (`posix_spawn_file_actions_addclosefrom_np`,
    /// glibc 2.34, which Swift's Glibc module does not import): connections the test process holds
    /// must not outlive it in a child.
    private static func closeTheRest(_ actions: inout posix_spawn_file_actions_t) {
        typealias CloseFrom =
            @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        guard let symbol = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np") else { return }
        _ = unsafeBitCast(symbol, to: CloseFrom.self)(&actions, 3)
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
        await waitUntil { self.output.withLock { $0.status != nil && $0.closedPipes == 2 } }
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
