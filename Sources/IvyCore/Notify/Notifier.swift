// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Carries result notifications from workers back to waiting producers (pub/sub).
///
/// Delivery is at-most-once, as with Redis pub/sub: a producer that is not subscribed when a
/// notification is published misses it, and its call ends in a timeout error, never a hang.
public protocol Notifier: Sendable {
    /// The notifier's URL with credentials redacted, for logs and errors.
    var endpoint: String { get }

    /// Publishes one notification on `channel`.
    func publish(_ payload: [UInt8], to channel: ChannelName) async throws

    /// Subscribes to `channel`; returns once the subscription is active, so nothing published
    /// after this returns is missed.
    ///
    /// The stream ends when the notifier is closed; stop iterating it to unsubscribe.
    func subscribe(to channel: ChannelName) async throws -> AsyncStream<[UInt8]>

    /// Subscribes `receive` to `channel`; returns once the subscription is active.
    ///
    /// `receive` gets each payload as it arrives, on the notifier's own thread, with no task in
    /// between: it must return quickly and never block. It must also be thread-safe: a notifier
    /// that replays payloads missed during a reconnect (Redis durable results) may call it from
    /// another thread at the same time, and replayed payloads can come after newer ones.
    /// Producers use this to hand results to their callers with one hand-off less. The default
    /// runs it from a task iterating ``subscribe(to:)``.
    func subscribe(to channel: ChannelName, receive: @escaping @Sendable ([UInt8]) -> Void) async throws
        -> NotifierSubscription

    /// Ends every subscription and releases connections.
    func close() async
}

extension Notifier {
    public func subscribe(to channel: ChannelName, receive: @escaping @Sendable ([UInt8]) -> Void)
        async throws
        -> NotifierSubscription
    {
        let payloads = try await subscribe(to: channel)
        let task = Task {
            for await payload in payloads {
                // The stream may still hold payloads when the subscription is cancelled.
                if Task.isCancelled { break }
                receive(payload)
            }
        }
        return NotifierSubscription { task.cancel() }
    }
}
