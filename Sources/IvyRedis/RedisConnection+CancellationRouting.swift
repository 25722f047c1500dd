// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

extension RedisConnection.CancellationAction {
    /// The action for a command sent to the node at `address`: `CLIENT UNBLOCK` goes to that same
    /// node, since a client's id means something only there.
    func routed(to address: RedisConfiguration.Address) -> Self {
        guard case .unblock(let other, let grace) = self, let router = other.router else { return self }
        return .unblock(through: router.connection(to: address), grace: grace)
    }
}
