// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore

/// A notifier that publishes through a Redis server.
///
/// A ``RedisStreamBackend`` on the same server publishes a task's result from the script that
/// acknowledges its message, one round trip sooner than acknowledging and then publishing.
public protocol RedisPubSubNotifier: Notifier {
    /// The server subscribers listen on (pub/sub spans its databases).
    var server: RedisConfiguration.Address { get }
    /// How long results are kept for producers that reconnect; nil for plain pub/sub. A backend
    /// on the same server that publishes a result keeps it too, in ``retainedResultsKey(_:)``.
    var resultRetention: Duration? { get }
}

/// The stream that keeps `channel`'s results for producers that reconnect (durable results):
/// field `p` per result, trimmed to the retention, expiring with it (PROTOCOL.md §8).
package func retainedResultsKey(_ channel: String) -> String { "ivy:{\(channel)}:results" }
