// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a worker consumes its queues.
public struct WorkerOptions: Sendable {
    /// Tasks run at once at most.
    public var concurrency: Int
    /// How long a reservation lasts before the message returns to the queue; running tasks
    /// extend it with a heartbeat every third of this.
    public var visibilityTimeout: Duration
    /// The longest a single reserve call waits for a message (long poll).
    public var pollWait: Duration
    /// On shutdown, how long in-flight tasks may run before they are cancelled and their
    /// messages released.
    public var gracePeriod: Duration
    /// The wait before reserving again after a broker error.
    public var errorBackoff: Duration
    /// Deliveries allowed beyond a task's attempts, for redeliveries after a worker crashed or a
    /// reservation expired. Past them the message is dead-lettered as a poison message
    /// (`AttemptsExhausted`) instead of coming back forever.
    public var extraDeliveries: Int

    public init(
        concurrency: Int = 16, visibilityTimeout: Duration = .seconds(30), pollWait: Duration = .seconds(5),
        gracePeriod: Duration = .seconds(30), errorBackoff: Duration = .milliseconds(500), extraDeliveries: Int = 3
    ) {
        precondition(extraDeliveries >= 0, "extraDeliveries cannot be negative")
        self.extraDeliveries = extraDeliveries
        precondition(concurrency > 0, "concurrency must be at least 1")
        precondition(visibilityTimeout >= .milliseconds(30), "visibilityTimeout must be at least 30 ms")
        precondition(pollWait >= .zero && gracePeriod >= .zero && errorBackoff >= .zero)
        self.concurrency = concurrency
        self.visibilityTimeout = visibilityTimeout
        self.pollWait = pollWait
        self.gracePeriod = gracePeriod
        self.errorBackoff = errorBackoff
    }
}
