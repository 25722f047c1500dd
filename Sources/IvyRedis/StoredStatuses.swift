// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

package import IvyCore

/// Call statuses on Redis (PROTOCOL.md §10): one hash per call, `ivy:status:{<id>}`, expiring a
/// retention after its last change, whose fields are
/// - `<rank>` (``TaskStatus/rank``, in decimal) for each state before the end, the status
///   ``TaskStatus/packed``: waiting (or scheduled), then per attempt running and retrying;
/// - `f`, the final status, set once (`HSETNX`): the first final status stands;
/// - `p`, the result notification of a call that succeeded;
/// - `k`, `1` once a cancel was asked while the call ran.
///
/// A status is what `f` says, or else the field of the highest rank, with what earlier ones
/// said and it leaves out (the producer's channel, the last failure). Writes commute, so
/// plain pipelined commands record them, with no script (in Lua the same writes cost Redis
/// three to four times as much). A worker reads what it must check right after its write: a
/// running attempt `f` (a cancel), a retry `k` as well. A cancel, which reads the whole hash
/// to choose, is the one script.
package enum StoredStatuses {
    /// The hash that holds call `id`'s status.
    package static func key(_ id: String) -> String { keyPrefix + id + "}" }

    /// What a status key starts with; the id and `}` follow.
    package static let keyPrefix = "ivy:status:{"

    /// The fields a running status has besides its state, attempt and time, as the reserve
    /// script writes them between the attempt and the time: `,"q":<queue>,"w":<worker>`.
    package static func runningFields(queue: String, worker: String) -> [UInt8] {
        var writer = JSONWriter(capacity: 32 + queue.utf8.count + worker.utf8.count)
        writer.raw(",\"q\":")
        writer.string(queue)
        writer.raw(",\"w\":")
        writer.string(worker)
        return writer.bytes
    }

    /// The commands that record `status`, kept `retention`, then, for a running attempt or a
    /// retry, an `HMGET` of what the worker must check, `f` and `k` (see
    /// ``heldState(after:_:)``). Nothing reads the outcome of the other writes.
    ///
    /// No `MULTI` is needed: the writes come before the read, and the one other writer that
    /// reads (a cancel) is a script, so it runs before the writes (and the read sees its
    /// verdict), between them and the read (and sees the new state), or after the read.
    package static func commands(recording status: TaskStatus, retention: Duration) -> [RedisCommand] {
        let key = key(status.id)
        let expire = RedisCommand("PEXPIRE", key, retention.wholeMilliseconds)
        switch status.state {
        case .scheduled, .waiting:
            return [RedisCommand("HSET", key, String(status.rank), status.packed), expire]
        case .running, .retrying:
            return [
                RedisCommand("HSET", key, String(status.rank), status.packed), expire,
                RedisCommand("HMGET", key, "f", "k"),
            ]
        case .succeeded, .failed, .deadLettered, .cancelled, .unknown:
            var commands = [RedisCommand("HSETNX", key, "f", status.packed)]
            if let notification = status.notification {
                commands.append(RedisCommand("HSETNX", key, "p", notification))
            }
            commands.append(expire)
            return commands
        }
    }

    /// The state the store holds after ``commands(recording:retention:)`` for a running attempt
    /// or a retry ran and returned `replies`: a final status if there is one, else cancelled for
    /// a call whose cancel was asked while an attempt ran (a retry, or a redelivery after that
    /// attempt's worker died), else `status`'s own. Other writes are reported as written.
    package static func heldState(after status: TaskStatus, _ replies: [RedisReply]) -> TaskStatus.State {
        guard status.state == .running || status.state == .retrying, let read = replies.last?.array else {
            return status.state
        }
        return heldState(
            of: status.id, final: read.first?.bytes ?? [],
            cancelFlag: read.count > 1 ? read[1].bytes ?? [] : [],
            otherwise: status.state)
    }

    /// The state a call's hash holds, from its `f` and `k` fields (empty when absent), after a
    /// write of `written`: the final status if there is one, else cancelled when a cancel was
    /// asked while an attempt ran, else `written`.
    package static func heldState(
        of id: String, final: [UInt8], cancelFlag: [UInt8], otherwise written: TaskStatus.State
    ) -> TaskStatus.State {
        if !final.isEmpty, let held = TaskStatus(id: id, packed: final) { return held.state }
        return cancelFlag == Array("1".utf8) ? .cancelled : written
    }

    /// KEYS status; ARGV the cancelled status (packed), retention ms. Cancels a call that has
    /// not started (its highest rank is waiting or retrying), marks a running one, leaves a
    /// final one; returns the hash afterwards (empty for an unknown call).
    package static let cancel = RedisScript(
        name: "cancel",
        source: """
            local all = redis.call('HGETALL', KEYS[1])
            local top = -1
            for i = 1, #all, 2 do
              if all[i] == 'f' then return all end
              local rank = tonumber(all[i])
              if rank and rank > top then top = rank end
            end
            if top < 0 then return all end
            if top % 4 == 1 then
              redis.call('HSET', KEYS[1], 'k', '1')
            else
              redis.call('HSET', KEYS[1], 'f', ARGV[1])
            end
            redis.call('PEXPIRE', KEYS[1], ARGV[2])
            return redis.call('HGETALL', KEYS[1])
            """)

    /// A status read back from the hash's fields (`HGETALL`'s reply).
    package static func status(_ id: String, from reply: RedisReply) -> TaskStatus {
        let items = reply.array ?? []
        var steps: [(rank: Int64, status: TaskStatus)] = []
        var final: TaskStatus?
        var notification: [UInt8]?
        var cancelRequested = false
        var index = 0
        while index + 1 < items.count {
            defer { index += 2 }
            guard let name = items[index].text, let value = items[index + 1].bytes else { continue }
            switch name {
            case "f": final = TaskStatus(id: id, packed: value)
            case "p": notification = value
            case "k": cancelRequested = value == Array("1".utf8)
            default:
                if let rank = Int64(name), let status = TaskStatus(id: id, packed: value) {
                    steps.append((rank, status))
                }
            }
        }
        steps.sort { $0.rank < $1.rank }
        var merged = steps.dropFirst().reduce(steps.first?.status) { earlier, step in
            earlier.map { step.status.keeping($0) } ?? step.status
        }
        if let final { merged = merged.map { final.keeping($0) } ?? final }
        guard var status = merged else { return .unknown(id) }
        status.notification = notification
        status.cancelRequested = cancelRequested
        return status
    }
}
