// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// A ready message seen through ``InspectableQueueBackend/peek(_:count:)``.
public struct QueuedMessage: Sendable, Hashable {
    public var messageID: String
    public var body: [UInt8]
    public var deliveryCount: Int

    public init(messageID: String, body: [UInt8], deliveryCount: Int) {
        self.messageID = messageID
        self.body = body
        self.deliveryCount = deliveryCount
    }
}
