// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A backend that can start a send without suspending its caller (a capability).
///
/// For callers with something else to await: a producer making a call waits for the result, so
/// a send that fails reaches it through the result slot, and one that succeeds costs it no task
/// switch. Backends that finish sends on a thread of their own (Redis) conform; the client falls
/// back to ``QueueBackend/send(_:to:)`` for the others (memory, an actor, gains nothing here).
public protocol PipelinedQueueBackend<Receipt>: QueueBackend {
    /// Enqueues one message like ``QueueBackend/send(_:to:)``: `completion` gets the message id
    /// or the failure, once, on whatever thread the backend finishes on, and must not block.
    func send(
        _ body: [UInt8], to queue: QueueName,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    )
}
