// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension IvyWorker {
    /// Makes a worker with a connection of its own, from backend URLs; ``IvyWorker/close()``
    /// closes it.
    ///
    /// ```swift
    /// let worker = try await IvyWorker(registry: registry, queue: "redis://127.0.0.1:6379",
    ///                                  notifier: "redis://127.0.0.1:6379")
    /// try await worker.run(untilSignal: [.terminate, .interrupt])
    /// await worker.close()
    /// ```
    ///
    /// - Parameters:
    ///   - registry: The tasks it runs; it serves their queues unless ``WorkerOptions/queues``
    ///     names others.
    ///   - queue: The queue backend: a URL, or ``BackendLocation/memory``.
    ///   - notifier: Where results go out: a URL, or ``BackendLocation/memory``; by default the
    ///     queue's own location (a Redis server carries both).
    ///   - encryptionKey: Opens messages and seals results (authenticated format); it replaces
    ///     ``WorkerOptions/encryption``.
    ///   - options: How it consumes its queues.
    ///   - middleware: Runs around every attempt, the first outermost (``TaskMiddleware``).
    /// - Throws: ``IvyError/Code/invalidConfiguration`` before connecting, or the errors of
    ///   ``IvyConnection/connect(queue:notifier:logger:)``.
    public convenience init(
        registry: TaskRegistry, queue: BackendLocation, notifier: BackendLocation? = nil,
        encryptionKey: Secret? = nil, options: WorkerOptions = .init(), middleware: [any TaskMiddleware] = []
    ) async throws {
        var options = options
        if let encryptionKey { options.encryption = MessageEncryption(key: encryptionKey) }
        _ = try Self.check(registry: registry, options: options)
        let connection = try await IvyConnection.connect(
            queue: queue, notifier: notifier ?? queue, logger: options.logger)
        do {
            try self.init(
                registry: registry, connection: connection, owning: true, options: options,
                middleware: middleware)
        } catch {
            // Unreachable (checked above), but a connection is never leaked.
            await connection.close()
            throw error
        }
    }
}
