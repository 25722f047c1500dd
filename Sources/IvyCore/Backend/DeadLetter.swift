// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation

/// A message that could not be run, kept with the reason.
public struct DeadLetter: Sendable, Hashable {
    public var queue: String
    public var messageID: String
    public var body: [UInt8]
    /// Why it was dead-lettered: the last error, or why the body could not be run at all.
    public var reason: String
    public var deliveryCount: Int
    public var deadLetteredAt: Date

    public init(
        queue: String, messageID: String, body: [UInt8], reason: String, deliveryCount: Int, deadLetteredAt: Date
    ) {
        self.queue = queue
        self.messageID = messageID
        self.body = body
        self.reason = reason
        self.deliveryCount = deliveryCount
        self.deadLetteredAt = deadLetteredAt
    }
}

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

/// A queue's messages counted by state.
public struct QueueSize: Sendable, Hashable, CustomStringConvertible {
    /// Visible now.
    public var ready: Int
    /// Released with a delay, not yet visible.
    public var delayed: Int
    /// Reserved by a consumer.
    public var reserved: Int
    /// In the dead letter.
    public var dead: Int

    public init(ready: Int, delayed: Int, reserved: Int, dead: Int) {
        self.ready = ready
        self.delayed = delayed
        self.reserved = reserved
        self.dead = dead
    }

    public var description: String { "ready \(ready), delayed \(delayed), reserved \(reserved), dead \(dead)" }
}
