// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// How the two steps of ``ResultPublishingQueueBackend/ack(_:publishing:to:through:recording:completion:)`` went.
public struct AckAndPublishOutcome: Sendable {
    /// Why the acknowledgement failed (the message will be delivered again), if it did.
    public var ackError: (any Error)?
    /// Why publishing the result failed (its caller will time out), if it did.
    public var publishError: (any Error)?

    public init(ackError: (any Error)? = nil, publishError: (any Error)? = nil) {
        self.ackError = ackError
        self.publishError = publishError
    }
}
