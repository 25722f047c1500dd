// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Which call an ``IvyEvent`` is about.
public struct TaskEventContext: Sendable, Hashable {
    public var taskName: String
    public var taskID: String
    /// The queue it travels on; nil where the client could not tell (a result from a worker
    /// that did not say).
    public var queue: QueueName?
    public var attempt: Int

    public init(taskName: String, taskID: String, queue: QueueName?, attempt: Int) {
        self.taskName = taskName
        self.taskID = taskID
        self.queue = queue
        self.attempt = attempt
    }
}
