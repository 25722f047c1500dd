// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import Ivy
import IvyTestSupport
import Testing

/// IPv6 addresses in Redis URLs: `redis://[::1]:6379`.
@Suite("Redis over IPv6")
struct RedisIPv6Tests {
    @Test(arguments: [
        ("redis://[::1]:6379", "::1", 6379, "redis://[::1]:6379/0"),
        ("redis://[::1]", "::1", 6379, "redis://[::1]:6379/0"),
        ("redis://app:s3cret@[::1]:6390/2", "::1", 6390, "redis://***@[::1]:6390/2"),
        (
            "redis://[2001:db8::10]:7000?retain_results=5", "2001:db8::10", 7000,
            "redis://[2001:db8::10]:7000/0"
        ),
        ("redis://[::ffff:127.0.0.1]:1", "::ffff:127.0.0.1", 1, "redis://[::ffff:127.0.0.1]:1/0"),
    ])
    func anAddressInBracketsReachesTheResolverWithoutThem(
        _ url: String, _ host: String, _ port: Int, _ endpoint: String
    ) throws {
        let configuration = try RedisConfiguration(url: url)
        #expect(configuration.address == .tcp(host: host, port: port))
        #expect(configuration.endpoint == endpoint)
    }

    @Test func hostNamesAndIPv4AreUnchanged() throws {
        #expect(try RedisConfiguration(url: "redis://127.0.0.1:6390").endpoint == "redis://127.0.0.1:6390/0")
        #expect(
            try RedisConfiguration(url: "redis://cache.local").address
                == .tcp(host: "cache.local", port: 6379))
    }

    @Test func aServerOnTheIPv6LoopbackIsReached() async throws {
        do { _ = try LoopbackSocket(ipv6: true) } catch {
            try Test.cancel("the IPv6 loopback ::1 cannot be bound on this machine (\(error))")
        }
        // Bound to ::1 alone: a client that fell back to 127.0.0.1 would not get through.
        try await RedisServerProcess.with(host: "::1") { redis in
            let url = redis.url()
            #expect(url == "redis://[::1]:\(redis.port)")
            let connection = try await RedisConnection.connect(try RedisConfiguration(url: url))
            #expect(connection.endpoint == "redis://[::1]:\(redis.port)/0")
            #expect(try await connection.command(RedisCommand("PING")) == .status("PONG"))
            await connection.close()

            let notifier = try await RedisNotifier.connect(url: url, logger: SilentLogger())
            let messages = try await notifier.subscribe(to: "ivy-test-ipv6")
            try await notifier.publish(Array("over ::1".utf8), to: "ivy-test-ipv6")
            let received = try await withDeadline(.seconds(20), "the message over ::1") {
                await messages.first { _ in true }
            }
            #expect(received == Array("over ::1".utf8))
            await notifier.close()
        }
    }
}
