// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a registered task is queued, retried, bounded and answered.
public struct TaskOptions: Sendable, Hashable {
    /// The queue its messages go to.
    public var queue: QueueName
    /// Attempts and backoff after a retryable failure.
    public var retry: RetryPolicy
    /// How long one attempt may run before the worker cancels it.
    public var timeout: Duration
    /// Whether the worker publishes the outcome. When false, a call can only be enqueued.
    public var resultWanted: Bool

    public init(
        queue: QueueName, retry: RetryPolicy = .none, timeout: Duration = .seconds(60),
        resultWanted: Bool = true
    ) {
        self.queue = queue
        self.retry = retry
        self.timeout = timeout
        self.resultWanted = resultWanted
    }

    /// Checks every value; ``TaskRegistry`` does when a task is registered.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check("TaskOptions.timeout", timeout, in: .milliseconds(1)...RetryPolicy.longestDelay)
        try retry.validate()
    }
}
