// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a registered task is queued, retried, bounded and answered.
public struct TaskOptions: Sendable, Hashable {
    /// The queue its messages go to.
    public var queue: String
    /// Attempts and backoff after a retryable failure.
    public var retry: RetryPolicy
    /// How long one attempt may run before the worker cancels it.
    public var timeout: Duration
    /// Whether the worker publishes the outcome. When false, a call can only be enqueued.
    public var resultWanted: Bool

    public init(
        queue: String, retry: RetryPolicy = .none, timeout: Duration = .seconds(60), resultWanted: Bool = true
    ) {
        precondition(timeout > .zero, "timeout must be positive")
        self.queue = queue
        self.retry = retry
        self.timeout = timeout
        self.resultWanted = resultWanted
    }
}
