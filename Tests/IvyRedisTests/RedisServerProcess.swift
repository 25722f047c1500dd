// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A redis-server of the test's own, on a free port of a loopback address, with whatever
/// settings the test needs (a password, an append-only file); it can be killed and started
/// again on the same port and directory.
final class RedisServerProcess: Sendable {
    let host: String
    let port: Int
    let directory: URL
    private let executable: URL
    private let settings: [String]
    private let process = Locked<IvyProcess?>(nil)

    /// The server's URL, with `credentials` (`user:password` or a lone password) when given.
    func url(credentials: String? = nil) -> String {
        let shown = host.contains(":") ? "[\(host)]" : host
        return "redis://\(credentials.map { "\($0)@" } ?? "")\(shown):\(port)"
    }

    private init(executable: URL, host: String, port: Int, directory: URL, settings: [String]) {
        self.executable = executable
        self.host = host
        self.port = port
        self.directory = directory
        self.settings = settings
    }

    /// Starts a server with `settings` (such as `["--requirepass", "x"]`) on `host`
    /// (`127.0.0.1` or `::1`); without an append-only file unless the settings ask for one.
    static func start(host: String = "127.0.0.1", _ settings: [String] = []) async throws
        -> RedisServerProcess
    {
        guard let path = Services.executable("redis-server") else {
            try Services.unavailable(
                "redis-server", IvyError(.connectionFailed, detail: "redis-server is not on PATH"))
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "ivy-redis-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let redis = RedisServerProcess(
            executable: URL(fileURLWithPath: path), host: host,
            port: try LoopbackSocket.freePort(ipv6: host.contains(":")), directory: directory,
            settings: settings)
        try await redis.run()
        return redis
    }

    /// Runs `body` with a server made by ``start(host:_:)``, and removes the server on every path.
    static func with<Result>(
        host: String = "127.0.0.1", _ settings: [String] = [],
        _ body: (RedisServerProcess) async throws -> Result
    ) async throws -> Result {
        let redis = try await start(host: host, settings)
        let result: Result
        do { result = try await body(redis) } catch {
            await redis.stop()
            throw error
        }
        await redis.stop()
        return result
    }

    /// Starts the server on its port and directory and waits until it accepts connections.
    func run() async throws {
        let server = try IvyProcess(
            executable: executable,
            [
                "--port", "\(port)", "--bind", host, "--dir", directory.path, "--save", "", "--appendonly",
                "no",
                "--protected-mode", "no",
            ] + settings)
        process.withLock { $0 = server }
        try await withDeadline(.seconds(30), "redis-server on port \(port) to start") {
            await server.waitForStdout(containing: "Ready to accept connections")
        }
    }

    /// Stops the server without ending it (SIGSTOP), as a stalled disk or a paused VM would;
    /// ``resume()`` lets it go on with what waited.
    func pause() {
        guard let server = process.withLock({ $0 }) else { return }
        kill(server.processIdentifier, SIGSTOP)
    }

    func resume() {
        guard let server = process.withLock({ $0 }) else { return }
        kill(server.processIdentifier, SIGCONT)
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
        await crash()
        try? FileManager.default.removeItem(at: directory)
    }
}
