// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import IvyCore

/// Call statuses on Redis (PROTOCOL.md §9): one hash per call, `ivy:status:{<id>}`, with the
/// fields of ``TaskStatus/storedFields`` and `p`, the result notification of a call that
/// succeeded. Written by the notifier's scripts and by the backend's ack script, which share
/// what is here.
package enum StoredStatuses {
    /// The hash that holds call `id`'s status.
    package static func key(_ id: String) -> String { "ivy:status:{\(id)}" }

    /// Lua: `record(key, json, retention ms, payload or nil)` applies a status written as
    /// ``TaskStatus/storedJSON`` unless the hash holds a later one, with the same rules as
    /// every store (``TaskStatus/supersedes(_:)``; a retry of a call whose cancel was asked
    /// becomes its cancellation), and returns the state the hash holds afterwards.
    package static let recordFunction = """

        local function record(key, json, retention, payload)
          local status = cjson.decode(json)
          local held = redis.call('HMGET', key, 'r', 's', 'k')
          local heldRank, rank = tonumber(held[1]), tonumber(status.r)
          if heldRank and (heldRank > rank or (heldRank == rank and heldRank >= \(TaskStatus.finalRank))) then
            return held[2]
          end
          if status.s == 'retrying' and held[3] == '1' then
            status.s, status.r, status.x = 'cancelled', '\(TaskStatus.finalRank)', [[\(TaskStatus.cancelledWhileRunning)]]
          end
          local fields = {}
          for name, value in pairs(status) do
            fields[#fields + 1] = name
            fields[#fields + 1] = value
          end
          if payload then
            fields[#fields + 1] = 'p'
            fields[#fields + 1] = payload
          end
          redis.call('HSET', key, unpack(fields))
          redis.call('PEXPIRE', key, retention)
          return status.s
        end
        """

    /// KEYS status; ARGV reason, now (ms), retention ms. Cancels a call that has not started,
    /// marks a running one, leaves a final one; returns the hash's fields afterwards (none for
    /// an unknown call).
    package static let cancel = RedisScript(
        name: "cancel",
        source: """
            local state = redis.call('HGET', KEYS[1], 's')
            if not state then return {} end
            if state == 'scheduled' or state == 'waiting' or state == 'retrying' then
              redis.call('HSET', KEYS[1], 's', 'cancelled', 'r', '\(TaskStatus.finalRank)', 'x', ARGV[1], 't', ARGV[2])
              redis.call('PEXPIRE', KEYS[1], ARGV[3])
            elseif state == 'running' then
              redis.call('HSET', KEYS[1], 'k', '1')
            end
            return redis.call('HGETALL', KEYS[1])
            """)

    /// A status read back from `HGETALL`'s reply.
    package static func status(_ id: String, from reply: RedisReply) -> TaskStatus {
        let items = reply.array ?? []
        var fields: [String: [UInt8]] = [:]
        var index = 0
        while index + 1 < items.count {
            if let name = items[index].text, let value = items[index + 1].bytes { fields[name] = value }
            index += 2
        }
        return TaskStatus(id: id, storedFields: fields) ?? .unknown(id)
    }
}
