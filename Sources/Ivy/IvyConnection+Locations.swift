// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension IvyConnection {
    /// Connects to a queue backend and a notifier by URL; the notifier is on the queue's own
    /// location unless given (a Redis server carries both).
    ///
    /// ```swift
    /// let connection = try await IvyConnection.connect(queue: "redis://127.0.0.1:6379",
    ///                                                  notifier: "redis://127.0.0.1:6379")
    /// ```
    ///
    /// - Throws: ``IvyError/Code/invalidURL`` or ``IvyError/Code/unsupportedBackend`` (the message
    ///   shows the URL with its credentials replaced by `***`), or the broker's connection error.
    public static func connect(
        queue: BackendLocation = .memory, notifier: BackendLocation? = nil,
        logger: any IvyLogger = StderrLogger()
    ) async throws -> IvyConnection {
        // Both parsed first, so that a typo in the second costs no connection to the first.
        let queueURL = try BackendURL(queue)
        let notifierURL = try BackendURL(notifier ?? queue)
        if let url = notifierURL.queueOnly { throw notANotifier(url) }
        let backend = try await connectBackend(queueURL, logger: logger)
        do {
            return IvyConnection(
                backend: backend, notifier: try await connectNotifier(notifierURL, logger: logger))
        } catch {
            await backend.close()
            throw error
        }
    }

    /// The queue backend a location names, connected.
    public static func backend(_ location: BackendLocation, logger: any IvyLogger = StderrLogger())
        async throws -> any QueueBackend
    {
        try await connectBackend(BackendURL(location), logger: logger)
    }

    /// The notifier a location names, connected.
    public static func notifier(_ location: BackendLocation, logger: any IvyLogger = StderrLogger())
        async throws -> any Notifier
    {
        try await connectNotifier(BackendURL(location), logger: logger)
    }

    private static func connectBackend(_ url: BackendURL, logger: any IvyLogger) async throws
        -> any QueueBackend
    {
        switch url {
        case .memory: MemoryQueueBackend()
        case .redis(let url): try await RedisStreamBackend.connect(url: url, logger: logger)
        case .ironMQ(let url): try await IronMQBackend.connect(url: url, logger: logger)
        case .amqp(let url): try await AMQPBackend.connect(url: url, logger: logger)
        }
    }

    private static func connectNotifier(_ url: BackendURL, logger: any IvyLogger) async throws -> any Notifier
    {
        switch url {
        case .memory: MemoryNotifier()
        case .redis(let url): try await RedisNotifier.connect(url: url, logger: logger)
        case .ironMQ(let url), .amqp(let url): throw notANotifier(url)
        }
    }

    private static func notANotifier(_ url: String) -> IvyError {
        IvyError(
            .unsupportedBackend, endpoint: Redaction.redact(url: url),
            detail:
                "\(url.hasPrefix("amqp") ? "AMQP" : "IronMQ") carries queues, not results: give a notifier, redis:// or memory://"
        )
    }
}
