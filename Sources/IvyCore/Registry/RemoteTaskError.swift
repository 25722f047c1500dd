// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// What a caller receives when the task it called failed on a worker for good.
public struct RemoteTaskError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The task that failed.
    public var taskName: String
    /// The id of the call.
    public var taskID: String
    /// The attempt whose failure was final.
    public var attempt: Int
    /// The remote error's name, such as `OverflowError` or a Swift type name.
    public var name: String
    /// The remote error's message.
    public var message: String
    /// Whether the worker considered the error retryable (it was, until attempts ran out).
    public var retryable: Bool

    public init(
        taskName: String, taskID: String, attempt: Int, name: String, message: String, retryable: Bool
    ) {
        self.taskName = taskName
        self.taskID = taskID
        self.attempt = attempt
        self.name = name
        self.message = message
        self.retryable = retryable
    }

    public var description: String {
        "\(taskName) [\(taskID)] failed on attempt \(attempt): \(name): \(message)"
    }
}
