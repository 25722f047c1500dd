// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore

/// Pausing queues: a queue `q` is paused while its control queue `q.paused` holds a message
/// (PROTOCOL.md §9).
///
/// The answer comes from `queue.declare`, which reports a queue's ready messages and creates the
/// control queue the first time, with the same arguments every time: a check refused by the
/// broker would cost its channel (a passive declare of a missing queue, 404), and workers check
/// about once a second. Nobody consumes the control queue, so its marker stays ready.
extension AMQPBackend: PausableQueueBackend {
    /// Publishes a marker to `<queue>.paused` when it holds none. Two pauses at once may leave
    /// two markers; ``resume(_:)`` takes them all.
    public func pause(_ queue: QueueName) async throws {
        guard try await markers(of: queue) == 0 else { return }
        let marker = Array(#"{"paused_at":"\#(RFC3339.format(Date()))"}"#.utf8)
        try await publish(
            marker, to: AMQPTopology.paused(queue), declaring: queue, messageID: "paused-\(UUID().uuidString)"
        )
    }

    /// Purges `<queue>.paused`.
    public func resume(_ queue: QueueName) async throws {
        let connection = try await connection()
        // Declared first, so that resuming a queue never paused is no 404.
        try await connection.declareQueue(AMQPTopology.paused(queue), arguments: topology.queueArguments)
        try await connection.purge(AMQPTopology.paused(queue))
    }

    /// Whether `<queue>.paused` holds a message.
    ///
    /// When it does, and this backend consumes `queue` with no reserve waiting (a worker that
    /// finds its queue paused reserves nothing until it is resumed), the consumer is cancelled
    /// and what it received is given back first: messages sent while the queue is paused stay
    /// ready there for every connection rather than waiting in this one's prefetch.
    public func isPaused(_ queue: QueueName) async throws -> Bool {
        guard try await markers(of: queue) > 0 else { return false }
        await stopConsuming(queue)
        return true
    }

    /// The messages ready in `<queue>.paused`, declared if need be.
    private func markers(of queue: QueueName) async throws(IvyError) -> Int {
        try await connection().declareQueue(AMQPTopology.paused(queue), arguments: topology.queueArguments)
            .messages
    }

    /// The connection, waiting for one no longer than a connect timeout and not past a
    /// cancellation: a worker checks before it reserves, and must not hang there while the
    /// broker is away nor when it is told to stop.
    private func connection() async throws(IvyError) -> AMQPConnection {
        try await link.connection(until: .now + configuration.connectTimeout, cancellable: true)
    }
}
