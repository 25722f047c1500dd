// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

/// The Lua scripts that change a queue's state atomically, with the server's clock.
///
/// A queue `q` is these keys, which share the hash tag `{q}` so a cluster keeps them on one slot:
/// - `ivy:{q}:stream`: the messages (field `b`), read through consumer group `ivy`;
/// - `ivy:{q}:leases`: ZSET of reservations, `<entry id>|<token>`, scored by when they expire (µs);
/// - `ivy:{q}:delayed`: ZSET of released entry ids, scored by when they are visible again (µs);
/// - `ivy:{q}:dead`: the dead-letter stream (fields `o` id, `b` body, `r` reason, `c` deliveries, `t` ms);
/// - `ivy:{q}:signal`: a short list that blocked consumers BLPOP; sends, releases and requeues
///   push to it, and a reserve that finds nothing more to read empties it;
/// - `ivy:{q}:consumers`: ZSET of the consumers serving the queue, scored by when their
///   liveness runs out (µs); a negative score marks one that was found dead or closed and waits
///   to be deleted from the group (see ``beat``);
/// - `ivy:{q}:paused`: a string that exists while the queue is paused (plain commands, no script).
///
/// A reservation's token is its first expiry in microseconds of the server's clock, and its
/// lease member is `<entry id>|<token>`: extending moves the score, not the member, so the token
/// holds for the reservation's life. A later reservation of the same message expires later, so
/// its member differs, and the old holder can no longer settle it. Reserved and released
/// messages stay in the group's pending list, so their id and delivery count (XCLAIM adds one
/// per reservation) survive retries.
extension RedisStreamBackend {
    static let group = "ivy"

    /// `now` in microseconds of the server's clock (exact in a Lua number), and `stamp`, which
    /// writes such a time as the integer string Redis stores and returns as a score.
    private static let clock = """
        local clock = redis.call('TIME')
        local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
        local function stamp(micros) return string.format('%.0f', micros) end
        """

    /// Stops the script with 0 unless ARGV[2] is reserved under token ARGV[3] and not expired;
    /// `lease` is its member in KEYS[2] leases.
    private static let held =
        clock + """

            local lease = ARGV[2] .. '|' .. ARGV[3]
            local expiry = redis.call('ZSCORE', KEYS[2], lease)
            if not expiry or tonumber(expiry) <= now then return 0 end
            """

    /// Deletes the held message ARGV[2] and its lease, then returns 1.
    private static let forget = """

        redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
        redis.call('XDEL', KEYS[1], ARGV[2])
        redis.call('ZREM', KEYS[2], lease)
        return 1
        """

    /// KEYS stream, leases, delayed, signal, consumers, scheduled; ARGV group, consumer, count,
    /// visibility ms, liveness ms, running fields ('' to record no statuses), status retention
    /// ms. Due scheduled messages (sends with a delay: members of the scheduled set are 16 hex
    /// digits and the body) are first added to the stream, where the read of new entries below
    /// takes them like any other. Returns `{{id, body, deliveries, token[, call, f, k]}…},
    /// drained, next due in ms or -1`. A consumer not yet in the consumers set is added (its
    /// beats renew it), so none holds a lease unannounced. `drained` is 1 when nothing was left
    /// to read: the signal list is emptied then, and the next due time is when the earliest
    /// delayed message or lease (this batch's included) comes due.
    ///
    /// With running fields, each message that carries its call's id (field `i`, right after
    /// `b`) has its call recorded as running, attempt = deliveries (``StoredStatuses``), and
    /// comes with the id and the status hash's `f` and `k` as they were ('' when absent): the
    /// worker does not start a cancelled or ended call. A status that cannot be written leaves
    /// the message without them. The status hash is a key the script is not given: a server,
    /// not a cluster, runs it.
    static let reserve = RedisScript(
        name: "reserve",
        source: clock + """

            local count = tonumber(ARGV[3])
            local token = stamp(now + tonumber(ARGV[4]) * 1000)
            local out, leased, calls = {}, {}, {}
            for _, member in ipairs(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', now, 'LIMIT', 0, count)) do
              redis.call('ZREM', KEYS[6], member)
              redis.call('XADD', KEYS[1], '*', 'b', string.sub(member, 17))
            end
            local function claim(id)
              local entry = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id)[1]
              if not entry then
                redis.call('ZREM', KEYS[3], id)
                return
              end
              local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)[1]
              table.insert(out, {id, entry[2][2], pending and pending[4] or 1, token})
              calls[#out] = entry[2][3] == 'i' and entry[2][4]
            end
            for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, count)) do
              redis.call('ZREM', KEYS[3], id)
              claim(id)
            end
            if #out < count then
              for _, lease in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, count - #out)) do
                redis.call('ZREM', KEYS[2], lease)
                claim(string.match(lease, '^[^|]*'))
              end
            end
            local drained = false
            if #out < count then
              local want = count - #out
              local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', want, 'STREAMS', KEYS[1], '>')
              local entries = read and read[1][2] or {}
              for _, entry in ipairs(entries) do
                table.insert(out, {entry[1], entry[2][2], 1, token})
                calls[#out] = entry[2][3] == 'i' and entry[2][4]
              end
              if #entries < want then
                drained = true
              else
                -- The group reads in id order: an entry after the last one read is still unread.
                local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
                drained = last[1] == entries[#entries][1]
              end
            end
            if #out > 0 then
              redis.call('ZADD', KEYS[5], 'NX', stamp(now + tonumber(ARGV[5]) * 1000), ARGV[2])
              -- Every lease of the batch in one command: the expiry, then `id|token`.
              for _, message in ipairs(out) do
                table.insert(leased, token)
                table.insert(leased, message[1] .. '|' .. token)
              end
              redis.call('ZADD', KEYS[2], unpack(leased))
            end
            if ARGV[6] ~= '' then
              -- Statuses are advisory: one that cannot be written (an ACL, a key of another
              -- type) leaves its message at four fields, for the worker to record.
              local time = string.format('%.0f', math.floor(now / 1000))
              for n, message in ipairs(out) do
                if calls[n] then
                  local key = '\(StoredStatuses.keyPrefix)' .. calls[n] .. '}'
                  local held = redis.pcall('HMGET', key, 'f', 'k')
                  local written = not held.err and redis.pcall('HSET', key,
                    string.format('%.0f', message[3] * 4 + 1),
                    '{"s":"running","a":' .. string.format('%.0f', message[3]) .. ARGV[6] .. ',"t":' .. time .. '}')
                  if written and type(written) == 'number' then
                    redis.pcall('PEXPIRE', key, ARGV[7])
                    message[5], message[6], message[7] = calls[n], held[1] or '', held[2] or ''
                  end
                end
              end
            end
            if not drained then return {out, 0, -1} end
            redis.call('DEL', KEYS[4])
            local nextDue = -1
            for _, key in ipairs({KEYS[3], KEYS[2], KEYS[6]}) do
              local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
              if first[2] then
                local wait = math.ceil((tonumber(first[2]) - now) / 1000)
                if nextDue < 0 or wait < nextDue then nextDue = wait end
              end
            end
            if nextDue >= 0 and nextDue < 1 then nextDue = 1 end
            return {out, 1, nextDue}
            """)

    /// Acknowledges a batch and publishes results. KEYS stream, leases, then per message the
    /// stream that keeps its channel's results (any key when it keeps none); ARGV group, then
    /// per message: id, token, channel ('' for none), payload, retention ms (0 for none). The
    /// payload is kept (durable results: as the notifier's own script does) and published
    /// whether or not the reservation was still held (the task did run). Returns 1
    /// (acknowledged) or 0 (lost) per message.
    static let ack = RedisScript(
        name: "ack",
        source: clock + RetainedResults.keepFunction + """

            local count = (#ARGV - 1) / 5
            local leases = {}
            for i = 1, count do leases[i] = ARGV[5 * i - 3] .. '|' .. ARGV[5 * i - 2] end
            local expiries = redis.call('ZMSCORE', KEYS[2], unpack(leases))
            local held, heldLeases, out = {}, {}, {}
            for i = 1, count do
              local expiry = tonumber(expiries[i])
              if expiry and expiry > now then
                table.insert(held, ARGV[5 * i - 3])
                table.insert(heldLeases, leases[i])
                out[i] = 1
              else
                out[i] = 0
              end
            end
            if #held > 0 then
              redis.call('XACK', KEYS[1], ARGV[1], unpack(held))
              redis.call('XDEL', KEYS[1], unpack(held))
              redis.call('ZREM', KEYS[2], unpack(heldLeases))
            end
            for i = 1, count do
              local channel, payload, retention = ARGV[5 * i - 1], ARGV[5 * i], tonumber(ARGV[5 * i + 1])
              if channel ~= '' then
                if retention > 0 then keep(KEYS[2 + i], payload, retention, math.floor(now / 1000)) end
                redis.call('PUBLISH', channel, payload)
              end
            end
            return out
            """)

    /// The most messages one script call takes: Lua unpacks at most a few thousand values.
    static let maximumBatch = 500

    /// KEYS stream, leases; ARGV group, id, token, visibility ms. 1, or 0 if lost.
    static let extend = RedisScript(
        name: "extend",
        source: held + """

            redis.call('ZADD', KEYS[2], 'XX', stamp(now + tonumber(ARGV[4]) * 1000), lease)
            return 1
            """)

    /// KEYS stream, leases, delayed, signal; ARGV group, id, token, delay ms. 1, or 0 if lost.
    static let release = RedisScript(
        name: "release",
        source: held + """

            redis.call('ZREM', KEYS[2], lease)
            redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[4]) * 1000), ARGV[2])
            redis.call('LPUSH', KEYS[4], 1)
            redis.call('LTRIM', KEYS[4], 0, 99)
            return 1
            """)

    /// KEYS stream, leases, dead; ARGV group, id, token, reason. 1, or 0 if lost.
    static let deadLetter = RedisScript(
        name: "dead-letter",
        source: held + """

            local entry = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])[1]
            local body = entry and entry[2][2] or ''
            local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[2], ARGV[2], 1)[1]
            local deliveries = pending and pending[4] or 1
            redis.call('XADD', KEYS[3], '*', 'o', ARGV[2], 'b', body, 'r', ARGV[4], 'c', deliveries,
                       't', math.floor(now / 1000))
            """ + forget)

    /// A live consumer's heartbeat. KEYS stream, leases, consumers, signal; ARGV group, consumer,
    /// liveness ms, the server time (µs) this consumer's previous beat reported ('' for none),
    /// sweep flag. Returns `{leases expired, now}`.
    ///
    /// Renews the consumer's liveness. Every consumer whose liveness ran out before the caller's
    /// previous beat ran is dead: the caller was beating then, and a live consumer would have
    /// been too. Deciding by that earlier time, never by now, means beats that waited through a
    /// stall of the server (all run at once when it resumes) free nobody's work, nor does a
    /// consumer's first beat. Each lease a dead consumer holds (the entries `XPENDING … consumer`
    /// lists) expires now, so the next reserve claims its message, and the consumer is marked. A
    /// marked consumer is deleted from the group once its pending list is empty, never before:
    /// `XGROUP DELCONSUMER` drops pending entries, which could then never be claimed again
    /// (redis/redis#9745). With the sweep flag, consumers not in the set (from Ivy before
    /// liveness, other implementations) are deleted when idle for an hour with nothing pending.
    static let beat = RedisScript(
        name: "beat",
        source: clock + markedConsumers + """

            redis.call('ZADD', KEYS[3], stamp(now + tonumber(ARGV[3]) * 1000), ARGV[2])
            local expired = 0
            if ARGV[4] ~= '' then
              for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(0', '(' .. ARGV[4], 'LIMIT', 0, 8)) do
                local held = {}
                for _, entry in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 100000, name)) do
                  held[entry[1]] = true
                end
                if next(held) then
                  for _, lease in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
                    if held[string.match(lease, '^[^|]*')] then
                      redis.call('ZADD', KEYS[2], 'XX', 0, lease)
                      expired = expired + 1
                    end
                  end
                end
                mark(name)
              end
            end
            if expired > 0 then
              for _ = 1, math.min(expired, 100) do redis.call('LPUSH', KEYS[4], 1) end
              redis.call('LTRIM', KEYS[4], 0, 99)
            end
            -- The marked consumers checked longest ago first; one still holding entries is
            -- marked again, to the back, so a few with long retries cannot hold up the rest.
            for _, name in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', '(0', 'LIMIT', 0, 16)) do
              forgetIfIdle(name)
            end
            if ARGV[5] == '1' then
              for _, consumer in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
                local fields = {}
                for i = 1, #consumer, 2 do fields[consumer[i]] = consumer[i + 1] end
                if fields['pending'] == 0 and fields['idle'] > 3600000
                  and not redis.call('ZSCORE', KEYS[3], fields['name']) then
                  redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], fields['name'])
                end
              end
            end
            return {expired, stamp(now)}
            """)

    /// A consumer closing. KEYS stream, leases, consumers; ARGV group, consumer. Deleted from the group
    /// if nothing is pending for it, else marked for a live consumer's beat to delete once its
    /// pending list is empty.
    static let leave = RedisScript(
        name: "leave",
        source: clock + markedConsumers + """

            forgetIfIdle(ARGV[2])
            return 1
            """)

    /// `mark(name)`: the consumer is dead or gone; its score becomes negative, ordered by when it
    /// was (last) marked. `forgetIfIdle(name)`: deletes it from the group and the set if nothing
    /// is pending for it, else marks it again. Need `now`, KEYS[1] stream, KEYS[3] the consumers
    /// set and ARGV[1] group.
    private static let markedConsumers = """

        local consumers = KEYS[3]
        local function mark(name) redis.call('ZADD', consumers, stamp(now - 1e17), name) end
        local function forgetIfIdle(name)
          if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, name) == 0 then
            redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], name)
            redis.call('ZREM', consumers, name)
          else
            mark(name)
          end
        end
        """

    /// KEYS stream, leases, delayed, dead, scheduled; ARGV group. `{ready, delayed, reserved,
    /// dead}`; scheduled messages count as delayed until due, then as ready.
    static let size = RedisScript(
        name: "size",
        source: clock + """

            local pending = redis.call('XPENDING', KEYS[1], ARGV[1])[1]
            local undelivered = redis.call('XLEN', KEYS[1]) - pending
            local dueDelayed = redis.call('ZCOUNT', KEYS[3], '-inf', now) + redis.call('ZCOUNT', KEYS[5], '-inf', now)
            local expired = redis.call('ZCOUNT', KEYS[2], '-inf', now)
            local delayed = redis.call('ZCARD', KEYS[3]) + redis.call('ZCARD', KEYS[5])
            return {undelivered + dueDelayed + expired, delayed - dueDelayed,
                    redis.call('ZCARD', KEYS[2]) - expired, redis.call('XLEN', KEYS[4])}
            """)

    /// The id the group has delivered up to. Needs `KEYS[1]` stream and `ARGV[1]` group.
    private static let lastDelivered = """
        local last = '0-0'
        for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do
          local fields = {}
          for i = 1, #group, 2 do fields[group[i]] = group[i + 1] end
          if fields['name'] == ARGV[1] then last = fields['last-delivered-id'] end
        end
        """

    /// KEYS stream; ARGV group, count. The next undelivered `{{id, body}…}`.
    static let peek = RedisScript(
        name: "peek",
        source: lastDelivered + """

            local out = {}
            for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', tonumber(ARGV[2]))) do
              table.insert(out, {entry[1], entry[2][2]})
            end
            return out
            """)

    /// KEYS scheduled, signal; ARGV member (16 hex digits, then the body), delay ms. Adds the
    /// member to the scheduled set, due after the delay, and pushes to the signal list so that
    /// idle consumers learn the new due time.
    static let schedule = RedisScript(
        name: "schedule",
        source: clock + """

            redis.call('ZADD', KEYS[1], stamp(now + tonumber(ARGV[2]) * 1000), ARGV[1])
            redis.call('LPUSH', KEYS[2], 1)
            redis.call('LTRIM', KEYS[2], 0, 99)
            return 1
            """)

    /// KEYS stream, delayed, scheduled; ARGV group. Deletes undelivered, delayed and scheduled
    /// messages; returns how many.
    static let purge = RedisScript(
        name: "purge",
        source: lastDelivered + """

            local removed = 0
            while true do
              local batch = redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', 500)
              if #batch == 0 then break end
              for _, entry in ipairs(batch) do
                redis.call('XDEL', KEYS[1], entry[1])
                removed = removed + 1
              end
            end
            for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
              redis.call('XACK', KEYS[1], ARGV[1], id)
              redis.call('XDEL', KEYS[1], id)
              removed = removed + 1
            end
            removed = removed + redis.call('ZCARD', KEYS[3])
            redis.call('DEL', KEYS[2], KEYS[3])
            return removed
            """)

    /// `fields(entry)`: a dead-letter entry's fields by name.
    private static let deadLetterFields = """
        local function fields(entry)
          local named = {}
          for i = 1, #entry[2], 2 do named[entry[2][i]] = entry[2][i + 1] end
          return named
        end
        """

    /// ``deadLetterFields``, and `moveBack(entry, fields)`: adds a dead entry's body to the
    /// stream as a new message, deletes the entry from the dead stream and pushes to the signal
    /// list (the caller trims it). Need KEYS[1] dead, KEYS[2] stream, KEYS[3] signal.
    private static let deadLetterMoves =
        deadLetterFields + """

            local function moveBack(entry, named)
              redis.call('XADD', KEYS[2], '*', 'b', named['b'] or '')
              redis.call('XDEL', KEYS[1], entry[1])
              redis.call('LPUSH', KEYS[3], 1)
            end
            """

    /// KEYS dead, stream, signal; ARGV count (at most ``requeueWindow``: the caller moves a
    /// large count window by window). Moves the oldest dead letters back; returns how many.
    static let requeue = RedisScript(
        name: "requeue",
        source: deadLetterMoves + """

            local moved = 0
            for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', tonumber(ARGV[1]))) do
              moveBack(entry, fields(entry))
              moved = moved + 1
            end
            redis.call('LTRIM', KEYS[3], 0, 99)
            return moved
            """)

    /// The search by id that ``requeueOne`` and ``deleteOne`` share. ARGV message id, the dead
    /// entry id to look after ('' for the start), window. Looks at up to `window` dead letters
    /// after that entry for the oldest whose id (field `o`, else the entry's own id, as
    /// ``RedisStreamBackend/deadLetters(of:count:)`` lists it) is the message id, and hands it
    /// to `take(entry, fields)`. Returns `{1, ''}` when it found one, `{0, last entry id looked
    /// at}` to go on from there, `{0, ''}` when none is left. The caller walks the dead stream
    /// window by window, so that no call holds the server for long however many dead letters
    /// there are. Needs KEYS[1] dead, `fields` (``deadLetterFields``) and `take`.
    private static let deadLetterSearch = """

        local window = tonumber(ARGV[3])
        local from = ARGV[2] == '' and '-' or '(' .. ARGV[2]
        local entries = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', window)
        for _, entry in ipairs(entries) do
          local named = fields(entry)
          if (named['o'] or entry[1]) == ARGV[1] then
            take(entry, named)
            return {1, ''}
          end
        end
        if #entries < window then return {0, ''} end
        return {0, entries[#entries][1]}
        """

    /// KEYS dead, stream, signal; ARGV message id, the dead entry id to look after ('' for the
    /// start), window. Moves back the dead letter with that id, searching as
    /// ``deadLetterSearch`` says, which gives the reply.
    static let requeueOne = RedisScript(
        name: "requeue-one",
        source: deadLetterMoves + """

            local function take(entry, named)
              moveBack(entry, named)
              redis.call('LTRIM', KEYS[3], 0, 99)
            end
            """ + deadLetterSearch)

    /// KEYS dead; ARGV message id, the dead entry id to look after ('' for the start), window.
    /// Deletes the dead letter with that id (`XDEL` of its dead entry), searching as
    /// ``deadLetterSearch`` says, which gives the reply.
    static let deleteOne = RedisScript(
        name: "delete-one",
        source: deadLetterFields + """

            local function take(entry) redis.call('XDEL', KEYS[1], entry[1]) end
            """ + deadLetterSearch)

    /// Dead letters one ``requeue``, ``requeueOne`` or ``deleteOne`` call looks at: bodies are
    /// copied into the script's memory, and the server serves nobody else while a script runs.
    static let requeueWindow = 200

    /// The largest count passed to a script: Lua's numbers are doubles, and Redis refuses one
    /// past 2^53 written back as a command's count (`Int.max` is `9.2233720368548e+18` there).
    static func scriptCount(_ count: Int) -> Int { min(max(count, 0), 1 << 31) }
}
