// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyDashboard
import IvyHTTP

/// `ivy dashboard`: the web dashboard of one or more queue backends, until SIGTERM or SIGINT.
enum DashboardCommand {
    static let help = """
        usage: ivy dashboard [--queue URL]… [--notify URL] [--listen ADDRESS] [--token-file PATH]
                             [--queues NAME,…] [--key-file PATH]

        Serves a web dashboard: each queue with its ready, delayed, reserved and dead counts and
        throughput; the workers alive (they announce themselves through the notifier); their
        latest failures; a queue's dead letters, each with Requeue and Delete; a call's status by
        id; and /metrics for Prometheus. The page polls every second and needs nothing from the
        internet. Runs until SIGTERM or SIGINT.

        options:
          --queue URL        a queue backend to show, a page each (repeatable; default:
                             $IVY_QUEUE_URL, else memory://, which is this process's own)
          --notify URL       where workers announce themselves and statuses are kept (default:
                             $IVY_NOTIFY_URL, else the first queue's server)
          --listen ADDRESS   HOST:PORT or [IPV6]:PORT (default 127.0.0.1:8080; port 0 picks one,
                             printed at start); anything but loopback needs --token-file
          --token-file PATH  require the token on the file's first line (16 characters or more)
                             of every request: a login form sets a session cookie, and scripts
                             send Authorization: Bearer TOKEN
          --queues NAME,…    queues to show besides those live workers serve
          -v, --verbose      log at debug level on stderr
        \(KeyOptions.help)

        \(ExitStatus.help)
        """

    static func run(_ arguments: inout CommandLineArguments) async throws -> Int32 {
        let environment = ProcessInfo.processInfo.environment
        var queueURLs = try arguments.values("--queue")
        if queueURLs.isEmpty { queueURLs = [environment["IVY_QUEUE_URL"].nonEmpty ?? "memory://"] }
        let notifyURL = try arguments.option("--notify") ?? environment["IVY_NOTIFY_URL"].nonEmpty
        let listenText = try arguments.option("--listen") ?? "127.0.0.1:8080"
        let tokenFile = try arguments.option("--token-file")
        let queueNames = try arguments.option("--queues")
        let verbose = arguments.flag("--verbose", "-v")
        let keys = try KeyOptions(&arguments)
        try arguments.finish()
        guard arguments.positionals().isEmpty else {
            throw CommandLineArguments.UsageError(description: "ivy dashboard takes no positional argument")
        }
        let listen: ListenAddress
        do { listen = try ListenAddress(listenText) } catch {
            throw CommandLineArguments.UsageError(
                description:
                    "--listen takes HOST:PORT or [IPV6]:PORT with a numeric address, got \(listenText)")
        }
        let queues = try (queueNames ?? "").split(separator: ",").map { name in
            do { return try QueueName(String(name)) } catch {
                throw CommandLineArguments.UsageError(description: "--queues: \(error)")
            }
        }
        let token = try tokenFile.map(readToken)
        let logger = StderrLogger(minimumLevel: verbose ? .debug : .warning)

        // The first backend's connection carries the notifier; the others are backends alone. A
        // queue that cannot be a notifier (IronMQ, AMQP) without --notify leaves the dashboard
        // without one: no workers, no statuses, which the page says.
        let scheme = queueURLs[0].prefix { $0 != ":" }.lowercased()
        let hasNotifier = notifyURL != nil || !(scheme.hasPrefix("ironmq") || scheme.hasPrefix("amqp"))
        var connections: [IvyConnection] = []
        func closeAll() async { for connection in connections { await connection.close() } }
        var backends: [any InspectableQueueBackend] = []
        do {
            for (index, url) in queueURLs.enumerated() {
                let connection = try await IvyConnection.connect(
                    queue: .url(url),
                    notifier: index == 0 && hasNotifier ? notifyURL.map { .url($0) } : .url("memory://"),
                    logger: logger)
                connections.append(connection)
                guard let backend = connection.backend as? any InspectableQueueBackend else {
                    throw IvyError(
                        .unsupportedBackend, endpoint: connection.backend.endpoint,
                        detail: "this backend cannot be inspected")
                }
                backends.append(backend)
            }
        } catch {
            await closeAll()
            throw error
        }
        let dashboard: Dashboard
        do {
            dashboard = try Dashboard(
                backends: backends, notifier: hasNotifier ? connections[0].notifier : nil,
                options: Dashboard.Options(
                    listen: listen, token: token, queues: queues, encryption: keys.encryption))
        } catch {
            await closeAll()
            throw error
        }
        Console.error(
            "ivy dashboard: http://\(dashboard.address)/ showing \(backends.map(\.endpoint).joined(separator: ", ")) (notifier \(hasNotifier ? connections[0].notifier.endpoint : "none: give --notify"))"
        )
        if token != nil {
            Console.error("ivy dashboard: every request needs the token of \(tokenFile ?? "")")
        }
        let signal = try await TerminationSignal.next(of: [.terminate, .interrupt])
        Console.error("ivy dashboard: \(signal) received; stopping")
        await dashboard.close()
        await closeAll()
        return ExitStatus.success.rawValue
    }

    /// The token on the file's first line.
    private static func readToken(_ path: String) throws -> Secret {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw CommandLineArguments.UsageError(description: "cannot read the token file \(path)")
        }
        let token =
            text.split(whereSeparator: \.isNewline).first.map { $0.trimmingCharacters(in: .whitespaces) }
            ?? ""
        guard token.count >= 16 else {
            throw CommandLineArguments.UsageError(
                description:
                    "the token file \(path) must hold a token of 16 characters or more on its first line (make one with: openssl rand -hex 24 > \(path))"
            )
        }
        return Secret(token)
    }
}
