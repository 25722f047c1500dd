// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// What became of a call, as the notifier's status store keeps it (PROTOCOL.md §10).
///
/// The producer records a call as ``State-swift.enum/waiting`` or
/// ``State-swift.enum/scheduled`` when it sends it; the worker records each attempt as it
/// starts, each retry and the outcome. Statuses expire a retention after their last change
/// (a day by default), after which the call is ``State-swift.enum/unknown``.
public struct TaskStatus: Sendable, Hashable {
    /// Where a call is.
    public enum State: String, Sendable, Hashable, CaseIterable {
        /// Sent to run later; ``TaskStatus/runAt`` says when.
        case scheduled
        /// In its queue, waiting for a worker.
        case waiting
        /// A worker runs it: ``TaskStatus/attempt`` and ``TaskStatus/worker`` say which.
        case running
        /// An attempt failed; the next is due at ``TaskStatus/runAt``, and ``TaskStatus/reason``
        /// holds the failure.
        case retrying
        /// It returned; ``TaskStatus/result`` holds what (for tasks that have a result).
        case succeeded
        /// It failed for good; ``TaskStatus/reason`` holds the error. Its message is in the
        /// dead letter.
        case failed
        /// Its message could not be run (its caller's deadline had passed, say) and is in the
        /// dead letter; ``TaskStatus/reason`` says why.
        case deadLettered = "dead-lettered"
        /// Cancelled before it started, or while it ran on a worker that allows that.
        case cancelled
        /// Never recorded, or forgotten after the retention.
        case unknown

        /// Whether nothing more will happen to the call.
        public var isFinal: Bool {
            switch self {
            case .succeeded, .failed, .deadLettered, .cancelled: true
            case .scheduled, .waiting, .running, .retrying, .unknown: false
            }
        }
    }

    /// The call's id (a node-ivy message, which has none, goes by its broker's message id).
    public var id: String
    public var state: State
    /// The task's name; nil when ``state`` is ``State-swift.enum/unknown``.
    public var taskName: String?
    /// The queue it was sent to.
    public var queue: String?
    /// The attempt running, retried or last made; 1 before the first starts.
    public var attempt: Int
    /// The worker that runs or ran the attempt (its ``WorkerOptions/name``).
    public var worker: String?
    /// When the status last changed, by the clock of whoever changed it.
    public var updatedAt: Date?
    /// When a scheduled call is due, or a retrying call's next attempt.
    public var runAt: Date?
    /// Why a call failed, was dead-lettered or cancelled; the last failure of a retrying call.
    public var reason: String?
    /// The result of a call that succeeded and has a result: the notification's `result` array.
    /// ``IvyClient/status(of:)`` fills it from ``notification``.
    public var result: RawJSON?
    /// The result notification as the worker published it, sealed when the call was.
    public var notification: [UInt8]?
    /// The channel its caller listens on, if it has one: a cancel tells the caller there.
    public var channel: String?
    /// A cancel was asked for while it ran: its worker cancels it if it allows that, and it is
    /// not retried.
    public var cancelRequested: Bool

    public init(
        id: String, state: State, taskName: String? = nil, queue: String? = nil, attempt: Int = 1,
        worker: String? = nil, updatedAt: Date? = nil, runAt: Date? = nil, reason: String? = nil,
        result: RawJSON? = nil, notification: [UInt8]? = nil, channel: String? = nil,
        cancelRequested: Bool = false
    ) {
        self.id = id
        self.state = state
        self.taskName = taskName
        self.queue = queue
        self.attempt = attempt
        self.worker = worker
        self.updatedAt = updatedAt
        self.runAt = runAt
        self.reason = reason
        self.result = result
        self.notification = notification
        self.channel = channel
        self.cancelRequested = cancelRequested
    }

    /// A call the store knows nothing of.
    public static func unknown(_ id: String) -> TaskStatus { TaskStatus(id: id, state: .unknown) }

    // MARK: Order

    /// Statuses of one call only move forward: a store keeps a new status only when its rank is
    /// at least the one it holds, and never replaces a final one. Attempts go up one by one,
    /// and within an attempt: waiting (or scheduled), running, retrying.
    public var rank: Int64 {
        if state.isFinal { return Self.finalRank }
        let step: Int64 =
            switch state {
            case .running: 1
            case .retrying: 2
            default: 0
            }
        return Int64(min(max(attempt, 1), 1 << 40)) * 4 + step
    }

    /// The rank of every final status: above any attempt's, and exact in a Lua number.
    public static let finalRank: Int64 = 1 << 52

    /// Whether a store that holds `held` keeps `self` in its place.
    public func supersedes(_ held: TaskStatus) -> Bool {
        let (new, old) = (rank, held.rank)
        return new > old || (new == old && old < Self.finalRank)
    }

    // MARK: Stored form

    /// The status as one JSON object of short keys, the form a store may keep it in: `s`
    /// state, `a` attempt, `n` task, `q` queue, `w` worker, `t` updated and `e` run at
    /// (milliseconds since 1970), `x` reason, `c` channel; absent values are left out. The id,
    /// the rank, the notification and ``cancelRequested`` are kept beside it.
    public var packed: [UInt8] {
        var writer = JSONWriter(capacity: 160)
        writer.raw("{\"s\":")
        writer.string(state.rawValue)
        writer.raw(",\"a\":")
        writer.integer(attempt)
        func add(_ key: StaticString, _ value: String?) {
            guard let value else { return }
            writer.key(key)
            writer.string(value)
        }
        func add(_ key: StaticString, _ date: Date?) {
            guard let date else { return }
            writer.key(key)
            writer.integer(Int(Self.milliseconds(date)))
        }
        add("n", taskName)
        add("q", queue)
        add("w", worker)
        add("t", updatedAt)
        add("e", runAt)
        add("x", reason)
        add("c", channel)
        writer.raw("}")
        return writer.bytes
    }

    /// A status read back from ``packed``; nil when it is not one (or names a state this
    /// version does not know).
    public init?(id: String, packed: [UInt8]) {
        guard let object = try? JSONObjectReader(packed),
            let state = (try? object.string("s")).flatMap({ $0 }).flatMap(State.init(rawValue:))
        else { return nil }
        func text(_ key: String) -> String? { (try? object.string(key)) ?? nil }
        func date(_ key: String) -> Date? {
            ((try? object.integer(key)) ?? nil).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        }
        self.init(
            id: id, state: state, taskName: text("n"), queue: text("q"),
            attempt: ((try? object.integer("a")) ?? nil) ?? 1, worker: text("w"), updatedAt: date("t"),
            runAt: date("e"), reason: text("x"), channel: text("c"))
    }

    package static func milliseconds(_ date: Date) -> Int64 {
        let value = (date.timeIntervalSince1970 * 1000).rounded()
        return value.isFinite && abs(value) < 9e15 ? Int64(value) : 0
    }
}

extension TaskStatus {
    /// `self`, with what `held` said and `self` leaves out: the call's task, queue, worker and
    /// channel; a running attempt's last failure (a retry's); a final status's result. A due
    /// time belongs to the state that set it, and a success has no failure.
    package func keeping(_ held: TaskStatus) -> TaskStatus {
        var merged = self
        merged.taskName = taskName ?? held.taskName
        merged.queue = queue ?? held.queue
        merged.worker = worker ?? held.worker
        merged.updatedAt = updatedAt ?? held.updatedAt
        merged.runAt = state == .scheduled || state == .retrying ? runAt ?? held.runAt : runAt
        merged.reason = state == .succeeded ? reason : reason ?? held.reason
        merged.notification = notification ?? held.notification
        merged.channel = channel ?? held.channel
        merged.cancelRequested = cancelRequested || held.cancelRequested
        return merged
    }
}
