// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// A redis-server of the test's own (the shared one serves other tests in parallel), with its
/// append-only file synced on every write, so it can be killed and started again.
final class PrivateRedis: Sendable {
    let port: Int
    let directory: URL
    private let executable: URL
    private let process = Locked<IvyProcess?>(nil)

    var url: String { "redis://127.0.0.1:\(port)" }

    private init(executable: URL, port: Int, directory: URL) {
        self.executable = executable
        self.port = port
        self.directory = directory
    }

    static func start() async throws -> PrivateRedis {
        guard let path = Services.executable("redis-server") else {
            try Services.unavailable("redis-server", IvyError(.connectionFailed, detail: "redis-server is not on PATH"))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ivy-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let redis = PrivateRedis(
            executable: URL(fileURLWithPath: path), port: Int.random(in: 20_000..<60_000), directory: directory)
        try await redis.run()
        return redis
    }

    /// Starts the server on its port and directory and waits until it accepts connections.
    func run() async throws {
        let server = try IvyProcess(
            executable: executable,
            ["--port", "\(port)", "--bind", "127.0.0.1", "--dir", directory.path, "--appendonly", "yes",
             "--appendfsync", "always", "--save", "", "--protected-mode", "yes"])
        process.withLock { $0 = server }
        try await withDeadline(.seconds(30), "redis-server on port \(port) to start") {
            await server.waitForStdout(containing: "Ready to accept connections")
        }
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    func crash() async {
        guard let server = process.withLock({ $0 }) else { return }
        kill(server.processIdentifier, SIGKILL)
        _ = await server.finish()
    }

    /// Removes the server and its files. SIGKILL, because a child spawned from a libdispatch
    /// thread inherits its blocked signals, SIGTERM included.
    func stop() async {
        guard let server = process.withLock({ $0 }) else { return }
        kill(server.processIdentifier, SIGKILL)
        _ = await server.finish()
        try? FileManager.default.removeItem(at: directory)
    }
}

@Suite("Redis restart")
struct RedisRestartTests {
    @Test func nothingAcknowledgedIsLostWhenRedisCrashesMidStream() async throws {
        let redis = try await PrivateRedis.start()
        let queue = "restart"
        let (executions, executed) = AsyncStream<Int>.makeStream()
        let registry = TaskRegistry()
        let record = try registry.register("restart.record", queue: queue) { (value: Int) -> Int in
            executed.yield(value)
            return value
        }
        let options = IvyOptions(resultTimeout: .seconds(5), logger: SilentLogger(), encryption: nil)
        let producer = try await Ivy(registry: registry, queue: .url(redis.url), notifier: .url(redis.url), options: options)
        let worker = try await Ivy(registry: registry, queue: .url(redis.url), notifier: .url(redis.url), options: options)
        let serving = Task {
            try await worker.listen(queues: [queue], options: WorkerOptions(concurrency: 8, visibilityTimeout: .seconds(2)))
        }

        // Before the crash, calls work.
        for value in 0..<20 { #expect(try await producer.call(record, value) == value) }

        // Calls the queue has acknowledged, then a crash.
        var pendings: [(value: Int, result: PendingResult<Int>)] = []
        for value in 20..<80 { pendings.append((value, try await producer.delayedCall(record, value))) }
        await redis.crash()

        // While Redis is down, a call fails at once with a clear error.
        let refused = await #expect(throws: IvyError.self) { _ = try await producer.delayedCall(record, -1) }
        #expect(refused?.code == .connectionFailed)

        try await redis.run()

        // Each acknowledged call completes, or fails with a clear error; none hangs.
        for (value, pending) in pendings {
            do {
                #expect(try await pending.value == value)
            } catch let error as IvyError {
                #expect(error.code == .resultTimedOut, "unexpected \(error)")
            }
        }
        // And every acknowledged message runs, whether or not its caller heard back.
        let acknowledged = Set(0..<80)
        try await withDeadline(.seconds(60), "every acknowledged message to run") {
            var seen = Set<Int>()
            for await value in executions {
                seen.insert(value)
                if acknowledged.isSubset(of: seen) { return }
            }
        }
        // The producer and the worker carry on with the restarted server.
        #expect(try await producer.call(record, 1000) == 1000)

        serving.cancel()
        try await serving.value
        await producer.close()
        await worker.close()
        await redis.stop()
    }
}
