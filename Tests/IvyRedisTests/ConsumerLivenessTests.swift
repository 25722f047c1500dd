// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyTestSupport
import Testing

@testable import IvyRedis

/// The `beat` script's rule, on a real Redis with a state set up by hand: a consumer is dead
/// only if its liveness ran out before the caller's previous beat, never just before now.
@Suite("Consumer liveness")
struct ConsumerLivenessTests {
    /// A queue where consumer "dead" holds one message whose liveness ran out 2 s ago, and
    /// consumer "live" beats; returns the admin connection, keys, lease member and server time.
    private func setUp() async throws -> (
        RedisConnection, RedisStreamBackend.Keys, lease: String, now: Double
    ) {
        let admin: RedisConnection
        do { admin = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisURL)) } catch
        {
            try Services.unavailable("Redis at \(Services.redisURL)", error)
        }
        let keys = RedisStreamBackend.Keys(try QueueName("cl-\(UUID().uuidString.prefix(8))"))
        _ = try await admin.command(
            RedisCommand("XGROUP", "CREATE", keys.stream, RedisStreamBackend.group, "0", "MKSTREAM"))
        let id = try #require(try await admin.command(RedisCommand("XADD", keys.stream, "*", "b", "m")).text)
        _ = try await admin.command(
            RedisCommand(
                "XREADGROUP", "GROUP", RedisStreamBackend.group, "dead", "COUNT", 1, "STREAMS", keys.stream,
                ">"))
        let time = try await admin.command(RedisCommand("TIME")).array ?? []
        let now = Double(time[0].text ?? "0")! * 1e6 + Double(time[1].text ?? "0")!
        let lease = "\(id)|\(Int64(now + 60e6))"
        _ = try await admin.send([
            RedisCommand("ZADD", keys.leases, Int(now + 60e6), lease),
            RedisCommand("ZADD", keys.consumers, Int(now - 2e6), "dead", Int(now + 4e6), "live"),
        ])
        return (admin, keys, lease, now)
    }

    private func beat(_ admin: RedisConnection, _ keys: RedisStreamBackend.Keys, previous: String)
        async throws -> Int
    {
        let reply = try await admin.evaluate(
            RedisStreamBackend.beat, keys: [keys.stream, keys.leases, keys.consumers, keys.signal],
            arguments: [RedisStreamBackend.group, "live", 4000, previous, 0]
        ).checked(endpoint: admin.endpoint, command: "beat")
        return reply.array?.first?.integer ?? -1
    }

    @Test func aConsumerThatRanOutAfterTheCallersPreviousBeatIsNotTakenForDead() async throws {
        let (admin, keys, lease, now) = try await setUp()
        // The caller's previous beat ran 5 s ago, before "dead" ran out: as after a stall of the
        // server, when every beat that waited runs at once, nothing is known to be dead yet.
        #expect(try await beat(admin, keys, previous: String(Int64(now - 5e6))) == 0)
        #expect(try await admin.command(RedisCommand("ZSCORE", keys.leases, lease)).text != "0")
        // Its first beat, with no previous one, frees nothing either.
        #expect(try await beat(admin, keys, previous: "") == 0)
        #expect(
            try await admin.command(RedisCommand("ZSCORE", keys.consumers, "dead")).text.flatMap(Double.init)
                ?? 0 > 0)
        _ = try await admin.command(
            RedisCommand("DEL", keys.stream, keys.leases, keys.consumers, keys.signal))
        await admin.close()
    }

    @Test func aConsumerThatRanOutBeforeTheCallersPreviousBeatLosesItsLeasesAndLeavesOnceIdle() async throws {
        let (admin, keys, lease, now) = try await setUp()
        #expect(try await beat(admin, keys, previous: String(Int64(now - 1e6))) == 1)
        #expect(
            try await admin.command(RedisCommand("ZSCORE", keys.leases, lease)).text == "0",
            "the lease expires now")
        let mark =
            try await admin.command(RedisCommand("ZSCORE", keys.consumers, "dead")).text.flatMap(Double.init)
            ?? 0
        #expect(mark < 0, "marked")
        #expect(
            try await admin.command(RedisCommand("LLEN", keys.signal)).integer == 1,
            "blocked reserves are woken")
        // Still holding its entry: it stays in the group until another consumer claims it.
        #expect(try await beat(admin, keys, previous: String(Int64(now))) == 0)
        let group = try await admin.command(
            RedisCommand("XINFO", "CONSUMERS", keys.stream, RedisStreamBackend.group))
        #expect(group.array?.count == 1)
        _ = try await admin.command(
            RedisCommand(
                "XCLAIM", keys.stream, RedisStreamBackend.group, "live", 0,
                try #require(lease.split(separator: "|").first.map(String.init))))
        _ = try await beat(admin, keys, previous: String(Int64(now)))
        let after = try await admin.command(
            RedisCommand("XINFO", "CONSUMERS", keys.stream, RedisStreamBackend.group))
        #expect(after.array?.count == 1, "only the claimer is left")
        #expect(try await admin.command(RedisCommand("ZSCORE", keys.consumers, "dead")) == .null)
        _ = try await admin.command(
            RedisCommand("DEL", keys.stream, keys.leases, keys.consumers, keys.signal))
        await admin.close()
    }
}
