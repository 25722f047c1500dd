// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore
public import IvyRedis

/// The Redis pub/sub notifier (`redis://…` as `--notify`).
///
/// Publishing shares a pipelined ``RedisConnection``; all subscriptions share one pub/sub
/// connection on its own thread, which reconnects and subscribes again by itself. Delivery is
/// at most once, as pub/sub is: a notification published while a producer is disconnected is
/// not seen by it, and its call ends in a timeout error.
public final class RedisNotifier: RedisPubSubNotifier {
    public let endpoint: String
    public var server: RedisConfiguration.Address { publisher.configuration.address }
    private let publisher: RedisConnection
    private let subscriber: RedisSubscriber

    public init(publisher: RedisConnection, logger: any IvyLogger = StderrLogger()) {
        self.publisher = publisher
        endpoint = publisher.endpoint
        subscriber = RedisSubscriber(configuration: publisher.configuration, logger: logger)
    }

    /// Connects to `url` (checking address and credentials) and returns the notifier.
    public static func connect(url: String, logger: any IvyLogger = StderrLogger()) async throws -> RedisNotifier {
        let publisher = try await RedisConnection.connect(try RedisConfiguration(url: url), name: "ivy-redis-pub")
        return RedisNotifier(publisher: publisher, logger: logger)
    }

    public func publish(_ payload: [UInt8], to channel: String) async throws {
        _ = try await publisher.command(RedisCommand("PUBLISH", channel, payload)).checked(endpoint: endpoint, command: "PUBLISH")
    }

    public func subscribe(to channel: String) async throws -> AsyncStream<[UInt8]> {
        try await subscriber.subscribe(to: channel)
    }

    public func close() async {
        subscriber.close()
        await publisher.close()
    }
}
