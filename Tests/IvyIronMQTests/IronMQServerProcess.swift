// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A local IronMQ v3 server of the test's own (`Tools/ironmq-emulator`), on a free loopback
/// port, keeping its state in a file so that it can be killed and started again with it.
final class IronMQServerProcess: Sendable {
    static let token = "server-process-token"
    static let project = "ownproject"

    let directory: URL
    private let settings: [String]
    private let state = Locked<(process: IvyProcess?, port: Int)>((nil, 0))

    /// The URL for the backend, with reservations from 1 s.
    var url: String {
        "ironmq+http://\(Self.token)@127.0.0.1:\(state.value.port)/\(Self.project)?min_timeout=1"
    }

    private init(directory: URL, settings: [String]) {
        self.directory = directory
        self.settings = settings
    }

    /// Runs `body` with a server started with `settings` (`["--fail-rate", "0.2"]`), and
    /// removes it on every path.
    static func with<Result>(_ settings: [String] = [], _ body: (IronMQServerProcess) async throws -> Result)
        async throws -> Result
    {
        guard let python = Services.executable("python3") else {
            try Services.unavailable("python3", IvyError(.connectionFailed, detail: "python3 is not on PATH"))
        }
        _ = python
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ivy-ironmq-\(UUID())")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let server = IronMQServerProcess(directory: directory, settings: settings)
        let result: Result
        do {
            try await server.run()
            result = try await body(server)
        } catch {
            await server.stop()
            throw error
        }
        await server.stop()
        return result
    }

    /// Starts the server (on its earlier port, after a crash) and waits until it listens.
    func run() async throws {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tools/ironmq-emulator/ironmq_emulator.py")
        let port = state.value.port
        let server = try IvyProcess(
            executable: URL(fileURLWithPath: Services.executable("python3") ?? "/usr/bin/python3"),
            [
                script.path, "--host", "127.0.0.1", "--port", "\(port)", "--token", Self.token, "--project",
                Self.project, "--min-timeout", "1", "--data",
                directory.appendingPathComponent("state.json").path,
            ] + settings)
        try await withDeadline(.seconds(30), "the IronMQ server to listen") {
            await server.waitForStderr(containing: "listening on")
        }
        let line = server.stderrText.split(separator: "\n").first { $0.contains("listening on") } ?? ""
        let listening = line.split(separator: ":").last.flatMap { Int($0.prefix { $0.isNumber }) }
        state.withLock { $0 = (server, listening ?? port) }
    }

    /// Kills the server at once (SIGKILL), as a crash would; its state file stays.
    func crash() async {
        guard let server = state.value.process else { return }
        kill(server.processIdentifier, SIGKILL)
        _ = await server.finish()
    }

    func stop() async {
        await crash()
        try? FileManager.default.removeItem(at: directory)
    }
}
