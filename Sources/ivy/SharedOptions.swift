// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyExamples

/// The options every subcommand that talks to a broker shares.
struct SharedOptions {
    var queueURL: String
    var notifyURL: String
    var verbose: Bool
    var keys: KeyOptions

    static let help = """
          --queue URL        queue backend (default: $IVY_QUEUE_URL, else memory://)
          --notify URL       notifier (default: $IVY_NOTIFY_URL, else memory://)
          -v, --verbose      log at debug level on stderr
        \(KeyOptions.help)
        """

    init(_ arguments: inout CommandLineArguments) throws {
        let environment = ProcessInfo.processInfo.environment
        queueURL = try arguments.option("--queue") ?? environment["IVY_QUEUE_URL"].nonEmpty ?? "memory://"
        notifyURL = try arguments.option("--notify") ?? environment["IVY_NOTIFY_URL"].nonEmpty ?? "memory://"
        verbose = arguments.flag("--verbose", "-v")
        keys = try KeyOptions(&arguments)
    }

    var isInProcess: Bool { queueURL.lowercased().hasPrefix("memory:") }

    var logger: any IvyLogger { StderrLogger(minimumLevel: verbose ? .debug : .warning) }

    /// Registers the example plugin and opens an `Ivy` on the configured URLs.
    func makeIvy(resultTimeout: Duration = .seconds(60)) async throws -> (Ivy, TestPackage) {
        let registry = TaskRegistry()
        let tasks = try TestPackage.register(in: registry)
        let ivy = try await Ivy(
            registry: registry, queue: .url(queueURL), notifier: .url(notifyURL),
            options: IvyOptions(resultTimeout: resultTimeout, logger: logger, encryption: keys.encryption))
        return (ivy, tasks)
    }

    var redactedQueue: String { Redaction.redact(url: queueURL) }
    var redactedNotify: String { Redaction.redact(url: notifyURL) }
}

extension Optional where Wrapped == String {
    var nonEmpty: String? { self.flatMap { $0.isEmpty ? nil : $0 } }
}
