// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend whose broker also carries some notifiers' messages, so that it can acknowledge a
/// run and publish its result in one request (a capability).
///
/// The worker asks ``canPublish(through:)`` once, when it starts; where the answer is no, or
/// the backend lacks this capability, it acknowledges with ``QueueBackend/ack(_:)`` and then
/// publishes through the notifier: one round trip more for the caller, same outcome.
public protocol ResultPublishingQueueBackend<Receipt>: QueueBackend {
    /// Whether ``ack(_:publishing:to:through:recording:completion:)`` reaches `notifier`'s subscribers
    /// (and keeps the result as `notifier` would, where it keeps results).
    func canPublish(through notifier: any Notifier) -> Bool

    /// Acknowledges a successful run and publishes its result on `channel`, in that order: a
    /// caller never hears of a result while its message is still queued. With a `status`, the
    /// notifier's status store (``TaskStatusStore``) records it before the result is published.
    ///
    /// The result is published even when the acknowledgement fails, since the task did run.
    /// `completion` gets the outcome once, on whatever thread the backend finishes on, and must
    /// not block. Called only with a notifier for which ``canPublish(through:)`` said yes.
    func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: ChannelName,
        through notifier: any Notifier, recording status: TaskStatus?,
        completion: @escaping @Sendable (AckAndPublishOutcome) -> Void)
}
