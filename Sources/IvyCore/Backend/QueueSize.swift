// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

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

    public var description: String {
        "ready \(ready), delayed \(delayed), reserved \(reserved), dead \(dead)"
    }
}
