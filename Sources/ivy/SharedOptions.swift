// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples

/// The options every subcommand that talks to a broker shares.
struct SharedOptions {
    var queueURL: String
    /// Nil: the queue's own server, as `IvyConnection.connect(queue:notifier:)` chooses.
    var notifyURL: String?
    var verbose: Bool
    var keys: KeyOptions

    static let help = """
          --queue URL        queue backend (default: $IVY_QUEUE_URL, else memory://)
          --notify URL       notifier (default: $IVY_NOTIFY_URL, else the queue's server;
                             IronMQ and AMQP carry no results: give redis://… with them)
          -v, --verbose      log at debug level on stderr
        \(KeyOptions.help)
        """

    init(_ arguments: inout CommandLineArguments) throws {
        let environment = ProcessInfo.processInfo.environment
        queueURL = try arguments.option("--queue") ?? environment["IVY_QUEUE_URL"].nonEmpty ?? "memory://"
        notifyURL = try arguments.option("--notify") ?? environment["IVY_NOTIFY_URL"].nonEmpty
        verbose = arguments.flag("--verbose", "-v")
        keys = try KeyOptions(&arguments)
    }

    var isInProcess: Bool { queueURL.lowercased().hasPrefix("memory:") }

    /// Whether results stay inside this process: they reach only callers that share its
    /// connection.
    var notifiesInProcess: Bool { (notifyURL ?? queueURL).lowercased().hasPrefix("memory:") }

    var logger: any IvyLogger { StderrLogger(minimumLevel: verbose ? .debug : .warning) }

    /// The example plugin's tasks, registered.
    func registry() throws -> (TaskRegistry, TestPackage) {
        let registry = TaskRegistry()
        return (registry, try TestPackage.register(in: registry))
    }

    /// A queue backend and a notifier on the configured URLs.
    func connect() async throws -> IvyConnection {
        try await IvyConnection.connect(
            queue: .url(queueURL), notifier: notifyURL.map { .url($0) }, logger: logger)
    }

    /// A client on `connection`, which the caller closes.
    func makeClient(_ registry: TaskRegistry, on connection: IvyConnection, resultTimeout: Duration)
        async throws -> IvyClient
    {
        try await IvyClient(
            registry: registry, connection: connection,
            options: ClientOptions(resultTimeout: resultTimeout, logger: logger, encryption: keys.encryption))
    }

    /// A worker on `connection`, which the caller closes.
    func makeWorker(_ registry: TaskRegistry, on connection: IvyConnection, options: WorkerOptions) throws
        -> IvyWorker
    {
        var options = options
        options.logger = logger
        options.encryption = keys.encryption
        return try IvyWorker(registry: registry, connection: connection, options: options)
    }

    var redactedQueue: String { Redaction.redact(url: queueURL) }
    var redactedNotify: String { Redaction.redact(url: notifyURL ?? queueURL) }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? { self.flatMap { $0.isEmpty ? nil : $0 } }
}
