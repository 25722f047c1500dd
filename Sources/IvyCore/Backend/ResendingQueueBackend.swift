// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend that retries a message by sending it again, rather than by releasing it (a
/// capability): where the broker's delivery count cannot carry attempts.
///
/// IronMQ raises a message's `reserved_count` on every touch, the heartbeat of a long task, so
/// its count cannot tell a retry from a heartbeat. (A broker that delays messages only by moving
/// them starts a new count for the moved copy; the AMQP backend carries the count over in a
/// header instead.) A worker on such a backend retries with
/// ``resend(_:as:delay:)``: a new message that carries its attempt, raised. Where the count also
/// counts extensions (``deliveryCountIncludesExtensions``), the worker reads the attempt from
/// the message alone and dead-letters a message delivered again and again only past an
/// allowance for the heartbeats each delivery may have made: a redelivery after a crash keeps
/// its attempt number, and a crash loop takes more deliveries to stop (PROTOCOL.md §4, §5).
public protocol ResendingQueueBackend<Receipt>: QueueBackend {
    /// Whether the delivery count also grows on every ``QueueBackend/extend(_:visibility:)``.
    /// False by default.
    var deliveryCountIncludesExtensions: Bool { get }

    /// Sends `body` to the reservation's queue, visible after `delay`, then deletes the
    /// reservation; in that order, so a failure between the two repeats the run rather than
    /// loses it.
    ///
    /// - Throws: The send's error, with the reservation left as it was; an ack's error
    ///   (``IvyError/Code/reservationLost``) when the new message is queued but the old one
    ///   could not be deleted and will come back.
    func resend(_ reservation: Reservation<Receipt>, as body: [UInt8], delay: Duration) async throws
}

extension ResendingQueueBackend {
    public var deliveryCountIncludesExtensions: Bool { false }
}
