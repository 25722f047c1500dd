// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import IvyCore

/// A notifier that publishes through a Redis server.
///
/// A ``RedisStreamBackend`` on the same server publishes a task's result from the script that
/// acknowledges its message, one round trip sooner than acknowledging and then publishing.
package protocol RedisPubSubNotifier: Notifier {
    /// The server subscribers listen on (pub/sub spans its databases).
    var server: RedisConfiguration.Address { get }
    /// The database its results are kept in (durable results); pub/sub itself spans databases.
    var database: Int { get }
    /// How long results are kept for producers that reconnect; nil for plain pub/sub. A backend
    /// on the same server and database that publishes a result keeps it too.
    var resultRetention: Duration? { get }
    /// How long call statuses are kept; nil when none are. A backend on the same server and
    /// database that publishes a result records the call's status too.
    var statusRetention: Duration? { get }
}
