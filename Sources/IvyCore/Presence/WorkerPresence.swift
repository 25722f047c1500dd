// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// What a running worker says of itself in each heartbeat (``WorkerPresenceStore``): who and
/// where it is, what it serves, and what it has done since it started. Dashboards read these;
/// an announcement the worker stops renewing lapses, and with it the worker.
///
/// It travels as JSON (PROTOCOL.md §12), so it can be read by tools in other languages.
public struct WorkerPresence: Sendable, Hashable, Codable {
    /// What one task did on one queue since the worker started (``WorkerMetrics/Counts``).
    public struct Tally: Sendable, Hashable, Codable {
        public var task: String
        public var queue: String
        /// Periodic calls the worker sent as their leader.
        public var scheduled: Int
        public var started: Int
        public var succeeded: Int
        public var retried: Int
        public var failed: Int
        public var deadLettered: Int
        /// How long the attempts that returned ran (``WorkerMetrics/Counts/runTime``); nil from
        /// a writer that does not say.
        public var runTime: MetricsHistogram?
        /// ``WorkerMetrics/Counts/resultLatency``; nil from a writer that does not say.
        public var resultLatency: MetricsHistogram?

        public init(
            task: String, queue: String, scheduled: Int = 0, started: Int, succeeded: Int, retried: Int,
            failed: Int, deadLettered: Int, runTime: MetricsHistogram? = nil,
            resultLatency: MetricsHistogram? = nil
        ) {
            self.scheduled = scheduled
            self.runTime = runTime
            self.resultLatency = resultLatency
            self.task = task
            self.queue = queue
            self.started = started
            self.succeeded = succeeded
            self.retried = retried
            self.failed = failed
            self.deadLettered = deadLettered
        }

        /// Reads a tally; `scheduled` and the histograms may be absent (a writer that does not
        /// keep them), and count as 0 and nil.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            task = try container.decode(String.self, forKey: .task)
            queue = try container.decode(String.self, forKey: .queue)
            scheduled = try container.decodeIfPresent(Int.self, forKey: .scheduled) ?? 0
            started = try container.decode(Int.self, forKey: .started)
            succeeded = try container.decode(Int.self, forKey: .succeeded)
            retried = try container.decode(Int.self, forKey: .retried)
            failed = try container.decode(Int.self, forKey: .failed)
            deadLettered = try container.decode(Int.self, forKey: .deadLettered)
            runTime = try container.decodeIfPresent(MetricsHistogram.self, forKey: .runTime)
            resultLatency = try container.decodeIfPresent(MetricsHistogram.self, forKey: .resultLatency)
        }

        /// Attempts and messages that ended, whatever the outcome.
        public var ended: Int { succeeded + retried + failed + deadLettered }
    }

    /// One of the worker's latest failures (``FailureLog``).
    public struct Failure: Sendable, Hashable, Codable {
        /// `retried`, `failed` or `deadLettered` (``IvyEvent/Kind``).
        public var kind: String
        public var at: Date
        /// Empty for a message dead-lettered without being read.
        public var task: String
        public var taskID: String
        public var queue: String
        public var attempt: Int
        public var error: String

        public init(
            kind: String, at: Date, task: String, taskID: String, queue: String, attempt: Int, error: String
        ) {
            self.kind = kind
            self.at = at
            self.task = task
            self.taskID = taskID
            self.queue = queue
            self.attempt = attempt
            self.error = error
        }
    }

    /// This run of the worker, unique among all: its name and a random suffix, since two
    /// workers of one process share a name.
    public var id: String
    /// ``WorkerOptions/name``.
    public var name: String
    public var host: String
    public var pid: Int
    public var queues: [String]
    /// The queue backend's URL, credentials redacted (``QueueBackend/endpoint``).
    public var backend: String
    /// ``WorkerOptions/concurrency``.
    public var concurrency: Int
    /// Messages in hand now: decoding, running or settling.
    public var running: Int
    public var startedAt: Date
    /// When this announcement was made, by the worker's clock.
    public var announcedAt: Date
    /// The Ivy version the worker runs.
    public var version: String
    public var tallies: [Tally]
    /// The latest first.
    public var recentFailures: [Failure]

    public init(
        id: String, name: String, host: String, pid: Int, queues: [String], backend: String, concurrency: Int,
        running: Int,
        startedAt: Date, announcedAt: Date, version: String, tallies: [Tally], recentFailures: [Failure]
    ) {
        self.id = id
        self.name = name
        self.host = host
        self.pid = pid
        self.queues = queues
        self.backend = backend
        self.concurrency = concurrency
        self.running = running
        self.startedAt = startedAt
        self.announcedAt = announcedAt
        self.version = version
        self.tallies = tallies
        self.recentFailures = recentFailures
    }

    /// The announcement as JSON, dates in milliseconds since 1970.
    public func encoded() throws(IvyError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .millisecondsSince1970
        encoder.outputFormatting = .sortedKeys
        do { return Array(try encoder.encode(self)) } catch {
            throw IvyError(.malformedMessage, detail: "cannot encode a worker's announcement: \(error)")
        }
    }

    /// Reads an announcement ``encoded()`` wrote.
    ///
    /// Anything that can write to the notifier's store can write an announcement, so numbers
    /// are checked: counts from 0 to 2^40, so that sums over many workers cannot overflow; at
    /// most 1,000 tallies and 100 failures.
    ///
    /// - Throws: ``IvyError/Code/malformedMessage`` for anything else.
    public init(decoding bytes: [UInt8]) throws(IvyError) {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .millisecondsSince1970
        let presence: Self
        do { presence = try decoder.decode(Self.self, from: Data(bytes)) } catch {
            throw IvyError(.malformedMessage, detail: "not a worker's announcement")
        }
        let limit = MetricsHistogram.decodedCountLimit
        let counts =
            [presence.pid, presence.concurrency, presence.running]
            + presence.tallies.flatMap {
                [$0.scheduled, $0.started, $0.succeeded, $0.retried, $0.failed, $0.deadLettered]
            }
        guard counts.allSatisfy({ (0...limit).contains($0) }), presence.tallies.count <= 1000,
            presence.recentFailures.count <= 100
        else {
            throw IvyError(.malformedMessage, detail: "a worker's announcement with numbers out of range")
        }
        self = presence
    }
}
