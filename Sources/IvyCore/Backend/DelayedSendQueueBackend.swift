// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend that can hold a new message back until a delay has passed (a capability): calls
/// that run later.
///
/// ``IvyClient`` sends a call made with `after:` or `at:` through ``send(_:to:after:)``, and the
/// message also carries its `eta` (PROTOCOL.md §1). A delay longer than ``longestSendDelay`` is
/// sent with that delay: a worker that receives the message before its `eta` sends it again
/// with the rest of the delay and acknowledges the delivery, without counting an attempt
/// (PROTOCOL.md §4). A client over a backend without this capability refuses `after:` and
/// `at:` rather than sending the call early.
///
/// The waiting message is as durable as any other: it survives a worker restart, and a broker
/// restart where the broker keeps its messages (Redis with AOF, RabbitMQ's durable queues).
public protocol DelayedSendQueueBackend<Receipt>: QueueBackend {
    /// The longest delay one send can hold a message back for.
    var longestSendDelay: Duration { get }

    /// Enqueues one message that becomes visible to consumers once `delay` has passed (a
    /// backend may round the delay up to its granularity, and caps it at
    /// ``longestSendDelay``); returns the broker's message id once it is durably accepted.
    ///
    /// A zero or negative delay is an ordinary ``QueueBackend/send(_:to:)``.
    ///
    /// - Throws: As ``QueueBackend/send(_:to:)``.
    func send(_ body: [UInt8], to queue: QueueName, after delay: Duration) async throws -> String
}
