// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension IvyClient {
    /// Makes a client with a connection of its own, from backend URLs; ``IvyClient/close()``
    /// closes it.
    ///
    /// ```swift
    /// let client = try await IvyClient(registry: registry, queue: "redis://127.0.0.1:6379",
    ///                                  notifier: "redis://127.0.0.1:6379")
    /// ```
    ///
    /// With ``BackendLocation/memory`` the queue is private to this client: to run the tasks in
    /// the same process, make one ``IvyConnection`` and give it to the client and the worker.
    ///
    /// - Parameters:
    ///   - registry: The tasks it can call.
    ///   - queue: The queue backend: a URL, or ``BackendLocation/memory``.
    ///   - notifier: Where results come back: a URL, or ``BackendLocation/memory``; by default the
    ///     queue's own location (a Redis server carries both).
    ///   - encryptionKey: Encrypts messages and results (authenticated format); it replaces
    ///     ``ClientOptions/encryption``. Use ``MessageEncryption`` through `options` for rotation,
    ///     the node-ivy format or `requireEncryption`.
    ///   - options: The client's settings.
    /// - Throws: ``IvyError/Code/invalidConfiguration`` before connecting, the errors of
    ///   ``IvyConnection/connect(queue:notifier:logger:)``, or the notifier's when subscribing fails.
    public convenience init(
        registry: TaskRegistry, queue: BackendLocation, notifier: BackendLocation? = nil,
        encryptionKey: Secret? = nil, options: ClientOptions = .init()
    ) async throws {
        var options = options
        if let encryptionKey { options.encryption = MessageEncryption(key: encryptionKey) }
        try options.validate()
        let connection = try await IvyConnection.connect(
            queue: queue, notifier: notifier ?? queue, logger: options.logger)
        try await self.init(registry: registry, connection: connection, owning: true, options: options)
    }
}
