// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A message handed to one consumer for a while.
public struct Reservation<Receipt: Sendable>: Sendable {
    public var queue: QueueName
    /// The broker's id for the message, stable across redeliveries.
    public var messageID: String
    public var body: [UInt8]
    /// How many times the message has been reserved, this time included.
    public var deliveryCount: Int
    /// What the broker needs to ack, extend, release or dead-letter this reservation.
    public var receipt: Receipt
    /// The call's `running` status, where the backend recorded it with the reserve
    /// (``StatusRecordingQueueBackend``).
    public var recordedStart: RecordedStart?

    public init(
        queue: QueueName, messageID: String, body: [UInt8], deliveryCount: Int, receipt: Receipt,
        recordedStart: RecordedStart? = nil
    ) {
        self.queue = queue
        self.messageID = messageID
        self.body = body
        self.deliveryCount = deliveryCount
        self.receipt = receipt
        self.recordedStart = recordedStart
    }
}
