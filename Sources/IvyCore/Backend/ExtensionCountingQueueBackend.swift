// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend whose delivery count also counts extensions (a capability): IronMQ raises a
/// message's `reserved_count` on every touch, the heartbeat of a long task, so the count cannot
/// tell a retry or a redelivery from a heartbeat.
///
/// A worker on such a backend does not read attempts from the count. It retries by sending the
/// message again with its attempt raised (``resend(_:as:delay:)``), so the attempt a message
/// carries is exact, and it dead-letters a message delivered again and again only past an
/// allowance for the heartbeats each delivery may have made: a redelivery after a crash keeps
/// its attempt number, and a crash loop takes more deliveries to stop (PROTOCOL.md §5).
public protocol ExtensionCountingQueueBackend<Receipt>: QueueBackend {
    /// Sends `body` to the reservation's queue, visible after `delay`, then deletes the
    /// reservation; in that order, so a failure between the two repeats the run rather than
    /// loses it.
    ///
    /// - Throws: The send's error, with the reservation left as it was; an ack's error
    ///   (``IvyError/Code/reservationLost``) when the new message is queued but the old one
    ///   could not be deleted and will come back.
    func resend(_ reservation: Reservation<Receipt>, as body: [UInt8], delay: Duration) async throws
}
