// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How a worker consumes its queues.
///
/// Values are checked by ``validate()`` when a worker starts, so options built from
/// configuration fail with a typed error rather than a trap.
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
        gracePeriod: Duration = .seconds(30), errorBackoff: Duration = .milliseconds(500),
        extraDeliveries: Int = 3
    ) {
        self.extraDeliveries = extraDeliveries
        self.concurrency = concurrency
        self.visibilityTimeout = visibilityTimeout
        self.pollWait = pollWait
        self.gracePeriod = gracePeriod
        self.errorBackoff = errorBackoff
    }

    /// Checks every value; a worker does before it starts.
    ///
    /// - Throws: ``IvyError/Code/invalidConfiguration`` naming the first field out of range.
    public func validate() throws(IvyError) {
        try IvyError.check("WorkerOptions.concurrency", concurrency, in: 1...100_000)
        try IvyError.check(
            "WorkerOptions.visibilityTimeout", visibilityTimeout, in: .milliseconds(30)...(.seconds(86_400)))
        try IvyError.check("WorkerOptions.pollWait", pollWait, in: .zero...(.seconds(3_600)))
        try IvyError.check("WorkerOptions.gracePeriod", gracePeriod, in: .zero...(.seconds(86_400)))
        try IvyError.check("WorkerOptions.errorBackoff", errorBackoff, in: .zero...(.seconds(3_600)))
        try IvyError.check("WorkerOptions.extraDeliveries", extraDeliveries, in: 0...1_000_000)
    }
}
