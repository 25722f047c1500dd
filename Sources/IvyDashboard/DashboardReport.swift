// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore

/// What the dashboard's JSON API answers (`GET /api/backends/N`), as its page reads it.
struct DashboardReport: Encodable, Sendable {
    struct Backend: Encodable, Sendable {
        var index: Int
        /// The URL, credentials redacted.
        var endpoint: String
        /// Whether the broker counts ready, delayed and reserved apart (IronMQ does not).
        var distinguishesStates: Bool
    }

    struct Queue: Encodable, Sendable {
        var name: String
        /// Nil when the broker did not tell within the sample's limit (then `error` says so).
        var ready: Int?
        var delayed: Int?
        var reserved: Int?
        var dead: Int?
        var paused: Bool?
        var error: String?
        /// Calls ended per second (each worker's rate between its last two announcements,
        /// summed), one value per sample, the newest last.
        var throughput: [Double]
    }

    struct Worker: Encodable, Sendable {
        var id: String
        var name: String
        var host: String
        var pid: Int
        var queues: [String]
        var backend: String
        var concurrency: Int
        var running: Int
        var startedAt: Date
        var announcedAt: Date
        var version: String
        var succeeded: Int
        var failed: Int
    }

    struct Failure: Encodable, Sendable {
        var worker: String
        var kind: String
        var at: Date
        var task: String
        var taskID: String
        var queue: String
        var attempt: Int
        var error: String
    }

    var backend: Backend
    var backends: [Backend]
    var sampledAt: Date
    var queues: [Queue]
    var workers: [Worker]
    /// Every live worker's latest failures, the newest first.
    var failures: [Failure]
    /// Whether task lookup by id works (the notifier keeps statuses).
    var statuses: Bool
    /// Whether workers' presence can be seen (the notifier keeps it).
    var presence: Bool
    /// Why the workers shown are those of an earlier sample, when they are.
    var workersError: String?
    var needsLogin: Bool
}

extension JSONEncoder {
    /// Dates in milliseconds since 1970, keys sorted: what every dashboard answer uses.
    static var dashboard: JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = .sortedKeys
        return encoder
    }
}
