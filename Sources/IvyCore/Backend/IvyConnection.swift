// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A queue backend and a notifier: what the clients and workers of a process share.
///
/// ```swift
/// let connection = IvyConnection(backend: MemoryQueueBackend(), notifier: MemoryNotifier())
/// let client = try await IvyClient(registry: registry, connection: connection)
/// let worker = try IvyWorker(registry: registry, connection: connection)
/// // …
/// await client.close()
/// await connection.close()    // whoever made the connection closes it
/// ```
///
/// The `Ivy` module adds ``IvyConnection`` `.connect(queue:notifier:)` for backend URLs.
public struct IvyConnection: Sendable {
    /// Where task messages are queued.
    public let backend: any QueueBackend
    /// Where results travel back to their callers.
    public let notifier: any Notifier

    public init(backend: any QueueBackend, notifier: any Notifier) {
        self.backend = backend
        self.notifier = notifier
    }

    /// Closes the notifier and the backend; clients and workers using them stop working.
    public func close() async {
        await notifier.close()
        await backend.close()
    }
}
