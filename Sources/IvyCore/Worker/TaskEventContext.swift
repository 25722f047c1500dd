// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// Which call an ``IvyEvent`` is about.
public struct TaskEventContext: Sendable, Hashable {
    public var taskName: String
    public var taskID: String
    /// The queue it travels on; nil where the client could not tell (a result from a worker
    /// that did not say).
    public var queue: QueueName?
    public var attempt: Int
    /// When the call was sent, or when it was due for one sent to run later, by the producer's
    /// clock: where its result latency starts. Nil where the message does not say (node ivy's).
    public var dueAt: Date?

    /// Seconds from ``dueAt`` to now, never below zero (clocks differ): the result latency of a
    /// call whose outcome is had now.
    package var secondsSinceDue: Double? { dueAt.map { max(0, -$0.timeIntervalSinceNow) } }

    public init(taskName: String, taskID: String, queue: QueueName?, attempt: Int, dueAt: Date? = nil) {
        self.taskName = taskName
        self.taskID = taskID
        self.queue = queue
        self.attempt = attempt
        self.dueAt = dueAt
    }
}
