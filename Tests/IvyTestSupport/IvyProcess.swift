// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
import Synchronization

/// The built `ivy` executable run as a child process, with its output captured.
public final class IvyProcess: Sendable {
    public struct Finished: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
        public var stdoutLines: [String] { stdout.split(separator: "\n").map(String.init) }
    }

    private let process: Process
    /// What the child wrote, shared with the pipes' handlers.
    private final class Output: Sendable {
        let buffers = Mutex((stdout: Data(), stderr: Data()))
        func withLock<T>(_ body: (inout (stdout: Data, stderr: Data)) -> T) -> T { buffers.withLock { body(&$0) } }
    }

    private let output = Output()
    private let changes: AsyncStream<Void>
    private let changed: AsyncStream<Void>.Continuation

    /// The executable next to the test bundle, or `IVY_BINARY`.
    public static var executable: URL {
        if let path = ProcessInfo.processInfo.environment["IVY_BINARY"] { return URL(fileURLWithPath: path) }
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ivy")
    }

    public init(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) throws {
        (changes, changed) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        process = Process()
        process.executableURL = Self.executable
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["IVY_QUEUE_URL"] = nil
        env["IVY_NOTIFY_URL"] = nil
        env["MESSAGES_ENCRYPTION_KEY"] = nil
        env.merge(environment) { $1 }
        process.environment = env
        let stdout = Pipe()
        let stderr = Pipe()
        process.standardOutput = stdout
        process.standardError = stderr
        let stdin = Pipe()
        process.standardInput = input == nil ? FileHandle.nullDevice : stdin
        stdout.fileHandleForReading.readabilityHandler = { [output, changed] handle in
            let data = handle.availableData
            output.withLock { $0.stdout.append(data) }
            changed.yield()
        }
        stderr.fileHandleForReading.readabilityHandler = { [output, changed] handle in
            let data = handle.availableData
            output.withLock { $0.stderr.append(data) }
            changed.yield()
        }
        try process.run()
        if let input {
            stdin.fileHandleForWriting.write(Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
    }

    public var processIdentifier: Int32 { process.processIdentifier }

    public var stderrText: String { output.withLock { String(decoding: $0.stderr, as: UTF8.self) } }

    /// Waits until standard error contains `text`.
    public func waitForStderr(containing text: String) async {
        if stderrText.contains(text) { return }
        for await _ in changes where stderrText.contains(text) { return }
    }

    /// Waits for the process to exit and returns what it wrote.
    public func finish() async -> Finished {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            DispatchQueue.global().async { [process] in
                process.waitUntilExit()
                continuation.resume()
            }
        }
        // Drain what the pipes still hold once the writer is gone.
        for pipe in [process.standardOutput, process.standardError] {
            guard let pipe = pipe as? Pipe else { continue }
            pipe.fileHandleForReading.readabilityHandler = nil
            let rest = pipe.fileHandleForReading.readDataToEndOfFile()
            output.withLock { pipe === process.standardOutput as? Pipe ? $0.stdout.append(rest) : $0.stderr.append(rest) }
        }
        changed.finish()
        return output.withLock {
            Finished(
                status: process.terminationStatus, stdout: String(decoding: $0.stdout, as: UTF8.self),
                stderr: String(decoding: $0.stderr, as: UTF8.self))
        }
    }

    /// Runs `ivy` with `arguments` to the end.
    public static func run(_ arguments: [String], environment: [String: String] = [:], input: String? = nil) async throws
        -> Finished
    {
        try await IvyProcess(arguments, environment: environment, input: input).finish()
    }
}
