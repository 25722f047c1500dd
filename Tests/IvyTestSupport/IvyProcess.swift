// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The built `ivy` executable run as a child process, with its output captured.
public final class IvyProcess: Sendable {
    private static let launching = Mutex(())
    public struct Finished: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    /// What the child wrote, shared with the pipes' handlers.
    private final class Output: Sendable {
        let buffers = Mutex((stdout: Data(), stderr: Data(), closedPipes: 0, exited: false))
        func withLock<T>(_ body: (inout (stdout: Data, stderr: Data, closedPipes: Int, exited: Bool)) -> T)
            -> T
        {
            buffers.withLock { body(&$0) }
        }
    }

    private let process: Process
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
        process = Process()
        process.executableURL = executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["IVY_QUEUE_URL"] = nil
        env["IVY_NOTIFY_URL"] = nil
        env["MESSAGES_ENCRYPTION_KEY"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        let stdout = Pipe()
        let stderr = Pipe()
        let stdin = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        // One plain thread per pipe, reading until end of file: Foundation's readability
        // handlers hang or crash on Linux when cleared around end of file.
        for (pipe, isStdout) in [(stdout, true), (stderr, false)] {
            let descriptor = pipe.fileHandleForReading.fileDescriptor
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
                    if count <= 0 { return }
                }
            }
        }
        process.terminationHandler = { [output, changed] _ in
            output.withLock { $0.exited = true }
            changed.yield()
        }
        // One launch at a time: Foundation's Process.run on Linux crashed copying its arguments
        // (memcpy, bad pointer) when tests launched several processes at once.
        try Self.launching.withLock { _ in try process.run() }
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
    }

    public var processIdentifier: Int32 { process.processIdentifier }

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

    /// Waits for the process to exit and its output to end, and returns what it wrote.
    public func finish() async -> Finished {
        await waitUntil { self.output.withLock { $0.exited && $0.closedPipes == 2 } }
        return output.withLock {
            Finished(
                status: process.terminationStatus, stdout: String(decoding: $0.stdout, as: UTF8.self),
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
