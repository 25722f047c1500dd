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

    /// Every message not dead-lettered, in whatever state.
    public var live: Int { ready + delayed + reserved }

    /// The size as a backend that reports one count gives it: everything live as `ready`.
    public var folded: QueueSize { QueueSize(ready: live, delayed: 0, reserved: 0, dead: dead) }

    public var description: String {
        "ready \(ready), delayed \(delayed), reserved \(reserved), dead \(dead)"
    }
}
