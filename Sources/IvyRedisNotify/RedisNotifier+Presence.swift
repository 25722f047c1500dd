// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import IvyCore
internal import IvyRedis

/// Workers' announcements on Redis (PROTOCOL.md §12): the hash `ivy:{workers}` holds each
/// worker's JSON by id, and the sorted set `ivy:{workers}:alive` when each lapses (ms, by the
/// server's clock, so workers' clocks do not matter). Both share a hash tag, so a cluster keeps
/// them on one node. Scripts sweep lapsed entries as they go; with no worker left, both keys
/// expire.
extension RedisNotifier: WorkerPresenceStore {
    static let presenceKeys = ["ivy:{workers}", "ivy:{workers}:alive"]

    /// Workers listed at most; past this a dashboard shows the first.
    static let presenceListLimit = 1000

    public func announce(_ presence: WorkerPresence, for lifetime: Duration) async throws {
        _ = try await publisher.evaluate(
            Self.announcePresence, keys: Self.presenceKeys,
            arguments: [presence.id, try presence.encoded(), max(1, lifetime.wholeMilliseconds)]
        ).checked(endpoint: endpoint, command: "announce")
    }

    public func withdraw(_ id: String) async throws {
        _ = try await publisher.evaluate(Self.withdrawPresence, keys: Self.presenceKeys, arguments: [id])
            .checked(endpoint: endpoint, command: "withdraw")
    }

    public func presentWorkers() async throws -> [WorkerPresence] {
        let reply = try await publisher.evaluate(
            Self.listPresence, keys: Self.presenceKeys, arguments: [Self.presenceListLimit]
        ).checked(endpoint: endpoint, command: "workers")
        return (reply.array ?? []).compactMap { entry in
            entry.bytes.flatMap { try? WorkerPresence(decoding: $0) }
        }
    }

    /// KEYS hash, alive; ARGV id, JSON, lifetime ms. Sweeps lapsed workers, records this one,
    /// and keeps both keys at least as long as it lives.
    static let announcePresence = RedisScript(
        name: "announce-presence",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1000)
            if #gone > 0 then
              redis.call('HDEL', KEYS[1], unpack(gone))
              redis.call('ZREM', KEYS[2], unpack(gone))
            end
            local lifetime = tonumber(ARGV[3])
            redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
            redis.call('ZADD', KEYS[2], now + lifetime, ARGV[1])
            for _, key in ipairs(KEYS) do
              if redis.call('PTTL', key) < lifetime then redis.call('PEXPIRE', key, lifetime) end
            end
            return 1
            """)

    /// KEYS hash, alive; ARGV id.
    static let withdrawPresence = RedisScript(
        name: "withdraw-presence",
        source: """
            redis.call('HDEL', KEYS[1], ARGV[1])
            return redis.call('ZREM', KEYS[2], ARGV[1])
            """)

    /// KEYS hash, alive; ARGV limit. The JSON of up to `limit` workers that have not lapsed.
    static let listPresence = RedisScript(
        name: "list-presence",
        source: """
            local t = redis.call('TIME')
            local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
            local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '(' .. now, '+inf', 'LIMIT', 0, tonumber(ARGV[1]))
            if #ids == 0 then return {} end
            return redis.call('HMGET', KEYS[1], unpack(ids))
            """)
}
