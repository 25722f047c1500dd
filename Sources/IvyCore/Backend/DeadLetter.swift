// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// A message that could not be run, kept with the reason.
public struct DeadLetter: Sendable, Hashable {
    public var queue: QueueName
    public var messageID: String
    public var body: [UInt8]
    /// Why it was dead-lettered: the last error, or why the body could not be run at all.
    public var reason: String
    public var deliveryCount: Int
    public var deadLetteredAt: Date

    public init(
        queue: QueueName, messageID: String, body: [UInt8], reason: String, deliveryCount: Int,
        deadLetteredAt: Date
    ) {
        self.queue = queue
        self.messageID = messageID
        self.body = body
        self.reason = reason
        self.deliveryCount = deliveryCount
        self.deadLetteredAt = deadLetteredAt
    }
}
