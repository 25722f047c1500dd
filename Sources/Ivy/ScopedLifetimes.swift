// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Runs `body` with a connection made from backend URLs and closes it on every path.
///
/// ```swift
/// try await withIvyConnection(queue: "redis://127.0.0.1:6379") { connection in
///     let worker = try IvyWorker(registry: registry, connection: connection)
///     let client = try await IvyClient(registry: registry, connection: connection)
///     …
/// }
/// ```
public func withIvyConnection<Result: Sendable>(
    queue: BackendLocation = .memory, notifier: BackendLocation? = nil,
    logger: any IvyLogger = StderrLogger(),
    _ body: (IvyConnection) async throws -> Result
) async throws -> Result {
    let connection = try await IvyConnection.connect(queue: queue, notifier: notifier, logger: logger)
    return try await closing(await body(connection)) { await connection.close() }
}

/// Runs `body` with a client on a connection of its own, made from backend URLs, and closes both
/// on every path.
///
/// ```swift
/// let value = try await withIvyClient(registry: registry, queue: "redis://127.0.0.1:6379") { client in
///     try await client.call(factorial, 5)
/// }
/// ```
public func withIvyClient<Result: Sendable>(
    registry: TaskRegistry, queue: BackendLocation, notifier: BackendLocation? = nil,
    encryptionKey: Secret? = nil, options: ClientOptions = .init(), _ body: (IvyClient) async throws -> Result
) async throws -> Result {
    let client = try await IvyClient(
        registry: registry, queue: queue, notifier: notifier, encryptionKey: encryptionKey, options: options)
    return try await closing(await body(client)) { await client.close() }
}

/// Runs `body` with a worker on a connection of its own, made from backend URLs, and closes both
/// on every path.
///
/// ```swift
/// try await withIvyWorker(registry: registry, queue: "redis://127.0.0.1:6379") { worker in
///     try await worker.run(untilSignal: [.terminate, .interrupt])
/// }
/// ```
public func withIvyWorker<Result: Sendable>(
    registry: TaskRegistry, queue: BackendLocation, notifier: BackendLocation? = nil,
    encryptionKey: Secret? = nil, options: WorkerOptions = .init(), middleware: [any TaskMiddleware] = [],
    _ body: (IvyWorker) async throws -> Result
) async throws -> Result {
    let worker = try await IvyWorker(
        registry: registry, queue: queue, notifier: notifier, encryptionKey: encryptionKey, options: options,
        middleware: middleware)
    return try await closing(await body(worker)) { await worker.close() }
}

/// `body`'s result after `close`, which runs whether `body` returned or threw.
private func closing<Result>(
    _ body: @autoclosure () async throws -> Result, _ close: () async -> Void
) async throws -> Result {
    let result: Result
    do { result = try await body() } catch {
        await close()
        throw error
    }
    await close()
    return result
}
