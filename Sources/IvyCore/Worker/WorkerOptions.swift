// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

#if canImport(Glibc)
    internal import Glibc
#elseif canImport(Darwin)
    internal import Darwin
#endif

/// How an ``IvyWorker`` consumes its queues.
///
/// Values are checked by ``validate()`` when a worker starts, so options built from
/// configuration fail with a typed error rather than a trap.
public struct WorkerOptions: Sendable {
    /// The queues to serve; nil for every queue of the registry's tasks.
    public var queues: [QueueName]?
    /// Tasks run at once at most.
    public var concurrency: Int
    /// How long a reservation lasts before the message returns to the queue; running tasks
    /// extend it with a heartbeat every third of this.
    public var visibilityTimeout: Duration
    /// The longest a single reserve call waits for a message (long poll).
    public var pollWait: Duration
    /// How often, at most, the worker asks the broker whether a queue is paused, on a backend
    /// that can pause queues (``PausableQueueBackend``); while one is paused, how often it asks
    /// again. A pause takes effect within ``pollWait`` plus this, a resume within this.
    public var pauseCheckInterval: Duration
    /// On shutdown, how long in-flight tasks may run before they are cancelled and their
    /// messages released.
    public var gracePeriod: Duration
    /// The wait before reserving again after a broker error.
    public var errorBackoff: Duration
    /// Deliveries allowed beyond a task's attempts, for redeliveries after a worker crashed or a
    /// reservation expired. Past them the message is dead-lettered as a poison message
    /// (`AttemptsExhausted`) instead of coming back forever.
    public var extraDeliveries: Int
    /// Where results of messages that name no channel (node ivy's) are published. Nil for
    /// ``ChannelName/base()``: `IVY_NOTIFICATION_CHANNEL_NAME`, else `ivy-notifier`.
    public var notificationChannel: ChannelName?
    /// Where the worker writes what it has to say; tasks get it as ``TaskContext/logger``.
    public var logger: any IvyLogger
    /// Decryption of messages and encryption of results; nil for plaintext only.
    public var encryption: MessageEncryption?
    /// How the worker names itself in call statuses (``TaskStatus/worker``): by default
    /// `<host name>:<process id>`.
    public var name: String
    /// Whether a cancel (``IvyClient/cancel(_:)``, `ivy cancel`) reaches calls this worker is
    /// running, as Swift task cancellation; off by default, since a task that stops halfway must
    /// be written to be safe to stop. Calls that have not started are cancelled either way.
    public var allowCancelRunning: Bool
    /// How the registry's periodic tasks are led (``TaskRegistry/schedule(_:cron:timeZone:_:)``).
    public var schedule: ScheduleOptions
    /// How often the worker announces itself (``WorkerPresence``) on a notifier that keeps
    /// which workers are alive (``WorkerPresenceStore``); each announcement lasts five of these,
    /// so a killed worker drops out of `ivy dashboard` within that. Nil announces nothing.
    public var presenceInterval: Duration?

    public init(
        queues: [QueueName]? = nil, concurrency: Int = 16, visibilityTimeout: Duration = .seconds(30),
        pollWait: Duration = .seconds(5), pauseCheckInterval: Duration = .seconds(1),
        gracePeriod: Duration = .seconds(30),
        errorBackoff: Duration = .milliseconds(500), extraDeliveries: Int = 3,
        notificationChannel: ChannelName? = nil, logger: any IvyLogger = StderrLogger(),
        encryption: MessageEncryption? = .fromEnvironment(), name: String = WorkerOptions.defaultName,
        allowCancelRunning: Bool = false, schedule: ScheduleOptions = .init(),
        presenceInterval: Duration? = .seconds(2)
    ) {
        self.presenceInterval = presenceInterval
        self.name = name
        self.schedule = schedule
        self.allowCancelRunning = allowCancelRunning
        self.queues = queues
        self.notificationChannel = notificationChannel
        self.logger = logger
        self.encryption = encryption
        self.extraDeliveries = extraDeliveries
        self.concurrency = concurrency
        self.visibilityTimeout = visibilityTimeout
        self.pollWait = pollWait
        self.pauseCheckInterval = pauseCheckInterval
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
        try IvyError.check(
            "WorkerOptions.pauseCheckInterval", pauseCheckInterval, in: .milliseconds(10)...(.seconds(3_600)))
        try IvyError.check("WorkerOptions.gracePeriod", gracePeriod, in: .zero...(.seconds(86_400)))
        try IvyError.check("WorkerOptions.errorBackoff", errorBackoff, in: .zero...(.seconds(3_600)))
        try IvyError.check("WorkerOptions.extraDeliveries", extraDeliveries, in: 0...1_000_000)
        if let queues, queues.isEmpty {
            throw IvyError.invalidConfiguration(
                "WorkerOptions.queues", mustBe: "nil or at least one queue", got: "[]")
        }
        if notificationChannel == nil { _ = try ChannelName.base() }
        try schedule.validate()
        if let presenceInterval {
            try IvyError.check(
                "WorkerOptions.presenceInterval", presenceInterval, in: .milliseconds(10)...(.seconds(3_600)))
        }
        guard (1...256).contains(name.utf8.count) else {
            throw IvyError.invalidConfiguration(
                "WorkerOptions.name", mustBe: "1 to 256 bytes", got: name.utf8.count)
        }
        try encryption?.validate()
    }
}

extension WorkerOptions {
    /// `<host name>:<process id>`.
    public static var defaultName: String { "\(hostName):\(getpid())" }

    /// This machine's host name; `localhost` when it has none.
    static var hostName: String {
        var buffer = [CChar](repeating: 0, count: 256)
        let host =
            gethostname(&buffer, buffer.count - 1) == 0
            ? String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self) : ""
        return host.isEmpty ? "localhost" : host
    }
}
