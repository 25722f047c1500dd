// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// Carries result notifications from workers back to waiting producers (pub/sub).
///
/// Delivery is at-most-once, as with Redis pub/sub: a producer that is not subscribed when a
/// notification is published misses it, and its call ends in a timeout error, never a hang.
public protocol Notifier: Sendable {
    /// The notifier's URL with credentials redacted, for logs and errors.
    var endpoint: String { get }

    /// Publishes one notification on `channel`.
    func publish(_ payload: [UInt8], to channel: String) async throws

    /// Subscribes to `channel`; returns once the subscription is active, so nothing published
    /// after this returns is missed.
    ///
    /// The stream ends when the notifier is closed; stop iterating it to unsubscribe.
    func subscribe(to channel: String) async throws -> AsyncStream<[UInt8]>

    /// Ends every subscription and releases connections.
    func close() async
}
