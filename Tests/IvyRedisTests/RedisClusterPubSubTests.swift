// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

import Foundation
import IvyCore
import IvyRedisNotify
import IvyTestSupport
import Testing

@testable import IvyRedis

/// The notifier on the Redis Cluster of `scripts/services.sh up`: sharded pub/sub on the master
/// of each channel's slot, following the slot when it moves.
@Suite("Redis Cluster pub/sub")
struct RedisClusterPubSubTests {
    /// A master of the cluster: its node id and address.
    private struct Master {
        var id: String
        var address: RedisConfiguration.Address
        var slots: [ClosedRange<Int>]
    }

    @Test func resultsGoBySharedPubSubOnTheirChannelsMasterAndFollowItsSlot() async throws {
        let cluster: RedisConnection
        do {
            cluster = try await RedisConnection.connect(try RedisConfiguration(url: Services.redisClusterURL))
        } catch {
            try Services.unavailable("Redis Cluster at \(Services.redisClusterURL)", error)
        }
        let notifier = try await RedisNotifier.connect(url: Services.redisClusterURL, logger: SilentLogger())
        let publisher = try await RedisNotifier.connect(url: Services.redisClusterURL, logger: SilentLogger())
        let name = "ivy-test-\(UUID().uuidString.prefix(8))"
        let channel = try ChannelName(name)
        let slot = RedisClusterSlot.of(key: name)
        let received = Locked<[String]>([])
        let subscription = try await notifier.subscribe(to: channel) { payload in
            received.withLock { $0.append(String(decoding: payload, as: UTF8.self)) }
        }

        let masters = try await self.masters(cluster)
        let owner = try #require(masters.first { master in master.slots.contains { $0.contains(slot) } })
        let other = try #require(masters.first { $0.id != owner.id })
        #expect(try await shardSubscribers(of: name, at: owner.address, cluster) == 1)
        #expect(try await classicSubscribers(of: name, at: owner.address, cluster) == 0)
        try await publisher.publish(Array("one".utf8), to: channel)
        try await waitUntil("the first result") { received.value.contains("one") }

        // The slot moves, with the stream that keeps the channel's results: the owner ends the
        // subscription, and the subscriber follows the slot to its new master.
        try await move(slot, from: owner, to: other, masters, cluster)
        do {
            try await publisher.publish(Array("two".utf8), to: channel)
            try await waitUntil("the result after the move") { received.value.contains("two") }
            try await withDeadline(.seconds(30), "the subscription on the slot's new master") {
                while try await shardSubscribers(of: name, at: other.address, cluster) != 1 {
                    try await Task.sleep(for: .milliseconds(10))
                }
            }
        } catch {
            // The cluster is shared: the slot goes back to where the others expect it.
            try? await move(slot, from: other, to: owner, masters, cluster)
            throw error
        }
        try await move(slot, from: other, to: owner, masters, cluster)
        try await publisher.publish(Array("three".utf8), to: channel)
        try await waitUntil("the result after the move back") { received.value.contains("three") }
        // Each arrived live or from the kept stream after a move; in that order either way.
        let firsts = ["one", "two", "three"].compactMap { received.value.firstIndex(of: $0) }
        #expect(firsts == firsts.sorted())

        subscription.cancel()
        await notifier.close()
        await publisher.close()
        await cluster.close()
    }

    private func masters(_ cluster: RedisConnection) async throws -> [Master] {
        let text = try await cluster.command(RedisCommand("CLUSTER", "NODES")).text ?? ""
        return text.split(separator: "\n").compactMap { line -> Master? in
            let fields = line.split(separator: " ")
            guard fields.count >= 8, fields[2].contains("master"), !fields[2].contains("fail") else {
                return nil
            }
            let hostPort = fields[1].split(separator: "@")[0]
            guard let colon = hostPort.lastIndex(of: ":"),
                let port = Int(hostPort[hostPort.index(after: colon)...])
            else { return nil }
            let slots = fields.dropFirst(8).compactMap { range -> ClosedRange<Int>? in
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                guard let low = bounds.first else { return nil }
                return low...(bounds.last ?? low)
            }
            return Master(
                id: String(fields[0]), address: .tcp(host: String(hostPort[..<colon]), port: port),
                slots: slots)
        }
    }

    /// A plain connection to one node of the cluster.
    private func node(_ address: RedisConfiguration.Address, _ cluster: RedisConnection) async throws
        -> RedisConnection
    {
        try await RedisConnection.connect(cluster.configuration.node(address))
    }

    private func shardSubscribers(
        of channel: String, at address: RedisConfiguration.Address, _ cluster: RedisConnection
    )
        async throws -> Int?
    {
        let connection = try await node(address, cluster)
        defer { Task { await connection.close() } }
        return try await connection.command(RedisCommand("PUBSUB", "SHARDNUMSUB", channel)).array?.last?
            .integer
    }

    private func classicSubscribers(
        of channel: String, at address: RedisConfiguration.Address, _ cluster: RedisConnection
    )
        async throws -> Int?
    {
        let connection = try await node(address, cluster)
        defer { Task { await connection.close() } }
        return try await connection.command(RedisCommand("PUBSUB", "NUMSUB", channel)).array?.last?.integer
    }

    /// Moves `slot` and its keys as `redis-cli --cluster reshard` does: importing, migrating,
    /// MIGRATE, then the new owner told to every master.
    private func move(
        _ slot: Int, from source: Master, to target: Master, _ masters: [Master], _ cluster: RedisConnection
    ) async throws {
        let from = try await node(source.address, cluster)
        let to = try await node(target.address, cluster)
        _ = try await to.command(RedisCommand("CLUSTER", "SETSLOT", slot, "IMPORTING", source.id))
            .checked(endpoint: to.endpoint, command: "SETSLOT IMPORTING")
        _ = try await from.command(RedisCommand("CLUSTER", "SETSLOT", slot, "MIGRATING", target.id))
            .checked(endpoint: from.endpoint, command: "SETSLOT MIGRATING")
        let keys = try await from.command(RedisCommand("CLUSTER", "GETKEYSINSLOT", slot, 100)).array ?? []
        if !keys.isEmpty, case .tcp(let host, let port) = target.address {
            let arguments = ["MIGRATE", host, "\(port)", "", "0", "5000", "KEYS"].map { Array($0.utf8) }
            _ = try await from.command(RedisCommand(arguments: arguments + keys.compactMap(\.bytes)))
                .checked(endpoint: from.endpoint, command: "MIGRATE")
        }
        for master in [target, source] + masters.filter({ $0.id != source.id && $0.id != target.id }) {
            let connection =
                master.id == target.id
                ? to : master.id == source.id ? from : try await node(master.address, cluster)
            _ = try await connection.command(RedisCommand("CLUSTER", "SETSLOT", slot, "NODE", target.id))
                .checked(endpoint: connection.endpoint, command: "SETSLOT NODE")
            if connection !== to && connection !== from { await connection.close() }
        }
        await from.close()
        await to.close()
    }
}
