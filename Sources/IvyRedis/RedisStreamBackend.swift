// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
public import IvyCore
internal import Synchronization

/// A queue backend on Redis Streams with a consumer group (`redis://…`).
///
/// Every state change is one Lua script run with the server's clock (see
/// `RedisStreamBackend+Scripts.swift`): reservations are leases with an expiry, released
/// messages wait in a delayed set, and expired or due ones are claimed again by the next
/// reserve, their delivery count one higher. A reserve with nothing to take blocks in BLPOP on
/// the queue's signal list, on a connection of its own, until a send, release or requeue pushes
/// to it or the next lease or delay it knows of comes due, and for at most 250 ms, so that a
/// message added without the push waits no longer than that. Right after a reserve that drained
/// the queue, the next one blocks at once, without running the script first. A queue is paused
/// (`PausableQueueBackend`) while its key `ivy:{queue}:paused` exists. With a notifier that keeps
/// call statuses on the same server and database, a call's `waiting` goes in its send's
/// request, its `running` in the reserve script and its outcome before the ack script
/// (`StatusRecordingQueueBackend`, `ResultPublishingQueueBackend`).
public final class RedisStreamBackend: InspectableQueueBackend, PipelinedQueueBackend,
    ResultPublishingQueueBackend, PausableQueueBackend, DelayedSendQueueBackend, StatusRecordingQueueBackend
{
    public struct Receipt: Sendable, Hashable {
        fileprivate let token: String
    }

    public let endpoint: String
    public let maximumMessageSize: Int

    private let connection: RedisConnection
    private let waiters: RedisConnectionPool
    private let consumer: String
    private let livenessTimeout: Duration
    private let liveness: ConsumerLiveness
    private let logger: any IvyLogger
    /// Warns of sends that fewer replicas confirmed than asked, once a minute at most.
    private let unconfirmedSends = Throttle(every: .seconds(60))
    private let groupsCreated = Mutex<Set<String>>([])
    /// Per queue, what the last reserve script said if it found nothing more to read.
    private let drainedQueues = Mutex<[QueueName: Drained]>([:])
    /// Per queue: single sends that arrive together go out as one transaction.
    private let senders = CoalescerTable<Outgoing, String>(maximumBatch: maximumBatch)
    /// Per queue: acknowledgements (with their results to publish) batched the same way.
    private let acknowledgers = CoalescerTable<Acknowledgement, Bool>(maximumBatch: maximumBatch)

    /// A queue whose last reserve script found nothing more to read. Until `nextDue` only a
    /// send, release or requeue can make a message ready, and each pushes to the signal list, so
    /// the next reserve can block on the list at once instead of running the script first.
    private struct Drained {
        /// When the earliest lease or delayed message then known comes due; nil for none.
        var nextDue: ContinuousClock.Instant?
    }

    /// The longest a reserve blocks on the signal list before it runs the script again. A push
    /// wakes it at once; this bound covers what pushes nothing: another consumer that took a
    /// release's push or made a lease that expires sooner, and producers that add to the stream
    /// without pushing (other languages, requeues by hand). An idle consumer so runs the
    /// script four times a second per queue.
    static let longestBlock = Duration.milliseconds(250)

    /// One message to send, and where its call's status is recorded, its id and the commands
    /// that record it (PROTOCOL.md §8, §10).
    private struct Outgoing: Sendable {
        let body: [UInt8]
        var callID: String?
        var recording: [RedisCommand] = []
    }

    /// One message to acknowledge, and the result to publish (and keep, for durable results)
    /// with it.
    private struct Acknowledgement: Sendable {
        let messageID: String
        let token: String
        let publication: Publication?
    }

    private struct Publication: Sendable {
        let channel: String
        let payload: [UInt8]
        /// Milliseconds the notifier keeps results; 0 for plain pub/sub.
        let retention: Int
        /// The commands that record the call's final status, sent before the ack script.
        var recording: [RedisCommand] = []
    }

    /// - Parameters:
    ///   - connection: For sends, scripts and inspection (shared, pipelined).
    ///   - maximumMessageSize: The largest body accepted (16 MiB by default; Redis allows 512 MiB).
    ///   - livenessTimeout: A consumer that has not announced itself for this long is taken for
    ///     dead, and the messages it had reserved go to the others (PROTOCOL.md §8, "Liveness").
    ///     It announces itself four times in this period, from a thread of its own.
    ///   - logger: Where the backend reports what it did on its own (freed reservations).
    /// - Throws: `IvyError/Code/invalidConfiguration` for a size below 1 B or above 512 MiB, or
    ///   a liveness timeout below 100 ms or above an hour.
    package init(
        connection: RedisConnection, maximumMessageSize: Int = 16 << 20,
        livenessTimeout: Duration = .seconds(4),
        logger: any IvyLogger = StderrLogger()
    ) throws(IvyError) {
        try Self.check(maximumMessageSize: maximumMessageSize, livenessTimeout: livenessTimeout)
        self.connection = connection
        self.maximumMessageSize = maximumMessageSize
        endpoint = connection.endpoint
        waiters = RedisConnectionPool(configuration: connection.configuration, name: "ivy-redis-wait")
        consumer = "ivy-\(UInt64.random(in: .min ... .max))"
        self.livenessTimeout = livenessTimeout
        self.logger = logger
        liveness = ConsumerLiveness(
            connection: connection, consumer: consumer, timeout: livenessTimeout, logger: logger)
    }

    /// Connects to `url` (checking address and credentials) and returns the backend.
    public static func connect(
        url: String, maximumMessageSize: Int = 16 << 20, livenessTimeout: Duration = .seconds(4),
        logger: any IvyLogger = StderrLogger()
    ) async throws -> RedisStreamBackend {
        try check(maximumMessageSize: maximumMessageSize, livenessTimeout: livenessTimeout)
        let configuration = try RedisConfiguration(url: url)
        configuration.warnIfUnverified(logger)
        let connection = try await RedisConnection.connect(configuration, name: "ivy-redis-queue")
        return try RedisStreamBackend(
            connection: connection, maximumMessageSize: maximumMessageSize, livenessTimeout: livenessTimeout,
            logger: logger)
    }

    /// Checked before connecting too, so that a bad value costs no connection.
    private static func check(maximumMessageSize: Int, livenessTimeout: Duration) throws(IvyError) {
        try IvyError.check("maximumMessageSize", maximumMessageSize, in: 1...(512 << 20))
        try IvyError.check("livenessTimeout", livenessTimeout, in: .milliseconds(100)...(.seconds(3600)))
    }

    // MARK: Sending

    public func send(_ body: [UInt8], to queue: QueueName) async throws -> String {
        try checkSize(body, queue: queue)
        return try await awaiting { submit(Outgoing(body: body), to: queue, completion: $0) }
    }

    public func send(
        _ body: [UInt8], to queue: QueueName,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) {
        do {
            try checkSize(body, queue: queue)
        } catch {
            return completion(.failure(error))
        }
        submit(Outgoing(body: body), to: queue, completion: completion)
    }

    /// Sends `message` in the queue's next transaction (single sends that arrive together share one).
    private func submit(
        _ message: Outgoing, to queue: QueueName,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) {
        // Weak: the coalescer is stored in this backend.
        senders.submit(
            message, key: queue.rawValue,
            execute: { [weak self] messages, done in
                guard let self else { return done(messages.map { _ in .failure(IvyError(.closed)) }) }
                self.sendNow(messages, to: queue) { result in
                    switch result {
                    case .success(let ids): done(ids.map { .success($0) })
                    case .failure(let error): done(messages.map { _ in .failure(error) })
                    }
                }
            }, completion: completion)
    }

    public func send(batch bodies: [[UInt8]], to queue: QueueName) async throws -> [String] {
        guard !bodies.isEmpty else { return [] }
        for body in bodies { try checkSize(body, queue: queue) }
        var ids: [String] = []
        ids.reserveCapacity(bodies.count)
        var start = 0
        while start < bodies.count {
            let end = min(bodies.count, start + Self.maximumBatch)
            ids += try await sendNow(bodies[start..<end].map { Outgoing(body: $0) }, to: queue)
            start = end
        }
        return ids
    }

    /// Adds `messages` to the stream and wakes idle consumers, in one transaction, then records
    /// their calls' statuses, in the same request: plain commands (no script) are the cheapest
    /// thing the server can do per message.
    private func sendNow(_ messages: [Outgoing], to queue: QueueName) async throws -> [String] {
        try await awaiting { sendNow(messages, to: queue, completion: $0) }
    }

    private func sendNow(
        _ messages: [Outgoing], to queue: QueueName,
        completion: @escaping @Sendable (Result<[String], any Error>) -> Void
    ) {
        let keys = Keys(queue)
        var commands = [RedisCommand("MULTI")]
        commands.reserveCapacity(messages.count + 4)
        for message in messages {
            var add = RedisCommand("XADD", keys.stream, "*", "b", message.body)
            if let id = message.callID {
                add.append("i")
                add.append(id)
            }
            commands.append(add)
        }
        // One element per message wakes as many blocked consumers; the list stays short.
        var wake = RedisCommand("LPUSH", keys.signal)
        for _ in 0..<min(messages.count, 100) { wake.append("1") }
        commands += [wake, RedisCommand("LTRIM", keys.signal, 0, 99), RedisCommand("EXEC")]
        let exec = commands.count - 1
        // Replicas confirm the messages before the send counts as done: a master that fails now
        // hands them to the replica that takes over.
        let replicaWait = connection.replicaWait(afterWritingTo: keys.stream)
        if let replicaWait { commands.append(replicaWait.command) }
        // After the transaction, in the same request: a worker that starts a call first records
        // a status of higher rank, which this one does not replace.
        for message in messages { commands += message.recording }
        connection.send(commands) { [connection, endpoint, logger, unconfirmedSends] result in
            completion(
                Result {
                    let replies = try result.get()
                    var recordings = exec + 1
                    if let wanted = replicaWait?.replicas {
                        recordings += 1
                        let reply = exec + 1 < replies.count ? replies[exec + 1] : nil
                        if !connection.replicasConfirmed(reply, wanted: wanted, afterWritingTo: keys.stream) {
                            if unconfirmedSends.allows() {
                                logger.warning(
                                    "messages were sent but fewer replicas than asked confirmed them in time: a failover of the master now could lose them; the master's sends go without waiting for replicas for a while",
                                    [
                                        "queue": queue.rawValue, "confirmed": "\(reply?.integer ?? 0)",
                                        "wanted": "\(wanted)",
                                        "error": reply?.errorMessage ?? "",
                                    ])
                            }
                        }
                    }
                    if let failure = replies[min(recordings, replies.count)...].lazy.compactMap(
                        \.errorMessage
                    ).first {
                        // Advisory: the messages are sent.
                        logger.warning("recording a call's status failed", ["error": failure])
                    }
                    let results =
                        try replies[exec].checked(endpoint: endpoint, command: "EXEC").array
                        ?? []
                    let ids = results.prefix(messages.count).compactMap(\.text)
                    guard ids.count == messages.count else {
                        let reason =
                            (replies + results).lazy.compactMap(\.errorMessage).first
                            ?? "\(ids.count) ids for \(messages.count) messages"
                        throw IvyError(.commandFailed, endpoint: endpoint, detail: "XADD: \(reason)")
                    }
                    return ids
                })
        }
    }

    // MARK: Recording statuses

    /// Yes for a notifier that keeps statuses on this server, in this database. Not on a
    /// cluster, where a status hash lives in its own slot, not the queue's.
    public func canRecordStatuses(in store: any TaskStatusStore) -> Bool {
        guard let redis = store as? any RedisPubSubNotifier, redis.statusRetention != nil,
            !connection.configuration.isCluster
        else {
            return false
        }
        return redis.server == connection.configuration.address
            && redis.database == connection.configuration.database
    }

    /// The entry carries the call's id as field `i`, after its body (PROTOCOL.md §8); the
    /// status is recorded in the same request.
    public func send(
        _ body: [UInt8], to queue: QueueName, recording status: TaskStatus, keptFor retention: Duration,
        completion: @escaping @Sendable (Result<String, any Error>) -> Void
    ) {
        do {
            try checkSize(body, queue: queue)
        } catch {
            return completion(.failure(error))
        }
        let message = Outgoing(
            body: body, callID: status.id,
            recording: StoredStatuses.commands(recording: status, retention: retention))
        submit(message, to: queue, completion: completion)
    }

    public func reserve(
        from queue: QueueName, count: Int, visibility: Duration, wait: Duration,
        recordingStartsOn worker: String, keptFor retention: Duration
    ) async throws -> [Reservation<Receipt>] {
        try await reserve(
            from: queue, count: count, visibility: visibility, wait: wait,
            recording: (StoredStatuses.runningFields(queue: queue.rawValue, worker: worker), retention))
    }

    // MARK: Sending later

    /// A week, as IronMQ's; longer delays are sent for a week and put back by the worker that
    /// receives them early (PROTOCOL.md §4). The delayed set itself has no limit.
    public var longestSendDelay: Duration { .seconds(604_800) }

    /// Adds the message to the queue's scheduled set (member: 16 random hex digits, then the
    /// body), scored by when it is due; the reserve script adds it to the stream then
    /// (PROTOCOL.md §8). Returns the 16 hex digits: the stream entry the message becomes gets its
    /// own id later.
    public func send(_ body: [UInt8], to queue: QueueName, after delay: Duration) async throws -> String {
        guard delay > .zero else { return try await send(body, to: queue) }
        try checkSize(body, queue: queue)
        let keys = Keys(queue)
        let random = String(UInt64.random(in: .min ... .max), radix: 16)
        let tag = String(repeating: "0", count: 16 - random.count) + random
        _ = try await run(
            Self.schedule, keys: [keys.scheduled, keys.signal],
            arguments: [Array(tag.utf8) + body, min(delay, longestSendDelay).wholeMilliseconds])
        return tag
    }

    // MARK: Consuming

    public func reserve(from queue: QueueName, count: Int, visibility: Duration, wait: Duration) async throws
        -> [Reservation<Receipt>]
    {
        try await reserve(from: queue, count: count, visibility: visibility, wait: wait, recording: nil)
    }

    /// Reserves; with `recording`, the script records each call that carries its id as running,
    /// with these fields of its status (``StoredStatuses/runningFields(queue:worker:)``), kept
    /// this long.
    private func reserve(
        from queue: QueueName, count: Int, visibility: Duration, wait: Duration,
        recording: (fields: [UInt8], retention: Duration)?
    ) async throws -> [Reservation<Receipt>] {
        precondition(count > 0, "count must be at least 1")
        let keys = Keys(queue)
        try await ensureGroup(keys)
        liveness.join(queue)
        let reserveKeys = [
            keys.stream, keys.leases, keys.delayed, keys.signal, keys.consumers, keys.scheduled,
        ]
        let arguments: [any RedisArgument] = [
            Self.group, consumer, min(count, Self.maximumBatch), visibility.wholeMilliseconds,
            livenessTimeout.wholeMilliseconds, recording?.fields ?? [],
            recording.map { max(1, $0.retention.wholeMilliseconds) } ?? 0,
        ]
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: wait)
        let reserveCommand = Self.reserve.command(keys: reserveKeys, arguments: arguments)
        var reply: RedisReply?
        var nextDue: ContinuousClock.Instant?
        if wait > .zero, let drained = drainedQueues.withLock({ $0[queue] }),
            drained.nextDue.map({ $0 > clock.now }) ?? true
        {
            nextDue = drained.nextDue
        } else {
            reply = try await run(Self.reserve, keys: reserveKeys, arguments: arguments)
        }
        while true {
            if let reply {
                let outcome = try parseReserveReply(reply, queue: queue)
                nextDue = outcome.nextDue.map { clock.now.advanced(by: .milliseconds($0)) }
                drainedQueues.withLock { $0[queue] = outcome.drained ? Drained(nextDue: nextDue) : nil }
                if !outcome.reservations.isEmpty { return outcome.reservations }
                if deadline <= clock.now { return [] }
            }
            if Task.isCancelled { return [] }
            let remaining = max(deadline - clock.now, .milliseconds(1))
            let block = min(
                Self.longestBlock,
                nextDue.map { min(remaining, max($0 - clock.now, .milliseconds(1))) } ?? remaining)
            // The reserve is pipelined behind the BLPOP, so the server runs it the moment a
            // send wakes the BLPOP: no round trip between the wake-up and the messages.
            // Cancelling unblocks the BLPOP rather than dropping the connection, so messages
            // the reserve took on the way out are returned, not stranded until they expire.
            let blpop = RedisCommand(
                "BLPOP", keys.signal, String(format: "%.3f", max(0.001, block.inSeconds)))
            let replies: [RedisReply]
            do {
                replies = try await waiters.withConnection { waiter in
                    try await waiter.send(
                        [blpop, reserveCommand], wait: block,
                        onCancel: .unblock(through: connection, grace: .seconds(1)))
                }
            } catch is CancellationError {
                return []
            }
            reply = replies[1]
            if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") || message.contains("NOGROUP")
            {
                // A restarted or emptied server: what this process knew of the queue is gone too.
                drainedQueues.withLock { $0[queue] = nil }
                reply = try await run(Self.reserve, keys: reserveKeys, arguments: arguments)
            }
        }
    }

    public func ack(_ reservation: Reservation<Receipt>) async throws {
        try held(await acknowledge(reservation, publication: nil), reservation)
    }

    /// Yes when `notifier`'s subscribers listen on this server and, if it keeps results, it
    /// keeps them in this database: the ack script then publishes (and keeps) the result. Not on
    /// a cluster, where the results and statuses live in other slots than the queue's.
    public func canPublish(through notifier: any Notifier) -> Bool {
        (notifier as? any RedisPubSubNotifier).map(canPublish) ?? false
    }

    private func canPublish(_ redis: any RedisPubSubNotifier) -> Bool {
        !connection.configuration.isCluster && redis.server == connection.configuration.address
            && ((redis.resultRetention == nil && redis.statusRetention == nil)
                || redis.database == connection.configuration.database)
    }

    public func ack(
        _ reservation: Reservation<Receipt>, publishing payload: [UInt8], to channel: ChannelName,
        through notifier: any Notifier, recording status: TaskStatus?,
        completion: @escaping @Sendable (AckAndPublishOutcome) -> Void
    ) {
        guard let redis = notifier as? any RedisPubSubNotifier, canPublish(redis) else {
            // Not what the worker asked for: answer in two requests rather than not at all.
            Task {
                var outcome = AckAndPublishOutcome()
                do { try await ack(reservation) } catch { outcome.ackError = error }
                do {
                    if let status, let store = notifier.activeStatusStore {
                        try await store.publish(payload, to: channel, recording: status)
                    } else {
                        try await notifier.publish(payload, to: channel)
                    }
                } catch { outcome.publishError = error }
                completion(outcome)
            }
            return
        }
        var publication = Publication(
            channel: channel.rawValue, payload: payload,
            retention: redis.resultRetention.map { max(1, $0.wholeMilliseconds) } ?? 0)
        if let status, let retention = redis.statusRetention {
            publication.recording = StoredStatuses.commands(recording: status, retention: retention)
        }
        acknowledge(reservation, keeping: publication) { completion(self.outcome($0, reservation)) }
    }

    /// Acknowledges and publishes; with durable results, a script that failed on a server out of
    /// reach (a restart) runs again, after a backoff with jitter, until it runs or the retention
    /// has passed, as the notifier's own publication does. Running it twice is safe: the second
    /// run finds the lease gone but keeps and publishes the result again, which the producer
    /// ignores.
    private func acknowledge(
        _ reservation: Reservation<Receipt>, keeping publication: Publication, failures: Int = 0,
        giveUp: ContinuousClock.Instant? = nil,
        completion: @escaping @Sendable (Result<Bool, any Error>) -> Void
    ) {
        acknowledge(reservation, publication: publication) { [weak self] result in
            let clock = ContinuousClock()
            let giveUp = giveUp ?? clock.now.advanced(by: .milliseconds(publication.retention))
            guard let self, case .failure(let error) = result, publication.retention > 0,
                RetainedResults.isWorthRetrying(error), clock.now < giveUp
            else { return completion(result) }
            let delay = RedisConnection.retryDelay(afterFailures: failures + 1)
            Task {
                try? await Task.sleep(for: delay)
                self.acknowledge(
                    reservation, keeping: publication, failures: failures + 1, giveUp: giveUp,
                    completion: completion)
            }
        }
    }

    /// The outcome of an ack script that also published.
    private func outcome(_ acknowledged: Result<Bool, any Error>, _ reservation: Reservation<Receipt>)
        -> AckAndPublishOutcome
    {
        switch acknowledged {
        case .success(true): return AckAndPublishOutcome()
        case .success(false): return AckAndPublishOutcome(ackError: lost(reservation))
        case .failure(let error): return AckAndPublishOutcome(ackError: error, publishError: error)
        }
    }

    /// Whether the reservation was still held; batched with the acknowledgements around it.
    private func acknowledge(_ reservation: Reservation<Receipt>, publication: Publication?) async throws
        -> Bool
    {
        try await awaiting { acknowledge(reservation, publication: publication, completion: $0) }
    }

    private func acknowledge(
        _ reservation: Reservation<Receipt>, publication: Publication?,
        completion: @escaping @Sendable (Result<Bool, any Error>) -> Void
    ) {
        let queue = reservation.queue
        let acknowledgement = Acknowledgement(
            messageID: reservation.messageID, token: reservation.receipt.token, publication: publication)
        acknowledgers.submit(
            acknowledgement, key: queue.rawValue,
            execute: { [weak self] batch, done in
                guard let self else { return done(batch.map { _ in .failure(IvyError(.closed)) }) }
                let keys = Keys(queue)
                var scriptKeys = [keys.stream, keys.leases]
                scriptKeys.reserveCapacity(2 + batch.count)
                var arguments: [any RedisArgument] = [Self.group]
                arguments.reserveCapacity(1 + batch.count * 5)
                for item in batch {
                    let publication = item.publication
                    scriptKeys.append(
                        publication.map { $0.retention > 0 ? RetainedResults.key($0.channel) : keys.stream }
                            ?? keys.stream)
                    arguments += [
                        item.messageID, item.token, publication?.channel ?? "", publication?.payload ?? [],
                        publication?.retention ?? 0,
                    ]
                }
                // A batch's statuses go first in the script's request, so Redis records them
                // before the script publishes the results: a caller that hears of its result
                // finds its status final, and a retry of the script records them again. Plain
                // commands rather than more of the script, which cost Redis three times as much.
                let recording = batch.flatMap { $0.publication?.recording ?? [] }
                self.run(Self.ack, keys: scriptKeys, arguments: arguments, prelude: recording) {
                    [endpoint] reply in
                    do {
                        let flags = try reply.get().array?.compactMap(\.integer) ?? []
                        guard flags.count == batch.count else {
                            throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected ack reply")
                        }
                        done(flags.map { .success($0 == 1) })
                    } catch {
                        done(batch.map { _ in .failure(error) })
                    }
                }
            }, completion: completion)
    }

    public func extend(_ reservation: Reservation<Receipt>, visibility: Duration) async throws -> Reservation<
        Receipt
    > {
        let keys = Keys(reservation.queue)
        try await held(
            run(
                Self.extend, keys: [keys.stream, keys.leases],
                arguments: [
                    Self.group, reservation.messageID, reservation.receipt.token,
                    visibility.wholeMilliseconds,
                ]),
            reservation)
        // The token stays: a heartbeat whose reply is lost, or one racing the ack, costs nothing.
        return reservation
    }

    public func release(_ reservation: Reservation<Receipt>, delay: Duration) async throws {
        let keys = Keys(reservation.queue)
        try await held(
            run(
                Self.release, keys: [keys.stream, keys.leases, keys.delayed, keys.signal],
                arguments: [
                    Self.group, reservation.messageID, reservation.receipt.token,
                    max(delay, .zero).wholeMilliseconds,
                ]),
            reservation)
    }

    public func deadLetter(_ reservation: Reservation<Receipt>, reason: String) async throws {
        let keys = Keys(reservation.queue)
        try await held(
            run(
                Self.deadLetter, keys: [keys.stream, keys.leases, keys.dead],
                arguments: [Self.group, reservation.messageID, reservation.receipt.token, reason]),
            reservation)
    }

    public func close() async {
        // Waiters first: a reserve pipelined behind a BLPOP that is still blocked would otherwise
        // run after the `leave` script and put the consumer back in the group.
        await waiters.close()
        await liveness.close()
        await connection.close()
    }

    // MARK: Inspection

    public func size(of queue: QueueName) async throws -> QueueSize {
        let keys = Keys(queue)
        try await ensureGroup(keys)
        let counts =
            (try await run(
                Self.size, keys: [keys.stream, keys.leases, keys.delayed, keys.dead, keys.scheduled],
                arguments: [Self.group]))
            .array?.compactMap(\.integer) ?? []
        guard counts.count == 4 else {
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected size reply")
        }
        return QueueSize(ready: counts[0], delayed: counts[1], reserved: counts[2], dead: counts[3])
    }

    public func peek(_ queue: QueueName, count: Int) async throws -> [QueuedMessage] {
        let keys = Keys(queue)
        try await ensureGroup(keys)
        let reply = try await run(
            Self.peek, keys: [keys.stream], arguments: [Self.group, Self.scriptCount(count)])
        return (reply.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let id = parts[0].text, let body = parts[1].bytes
            else { return nil }
            return QueuedMessage(messageID: id, body: body, deliveryCount: 0)
        }
    }

    public func deadLetters(of queue: QueueName, count: Int) async throws -> [DeadLetter] {
        let reply = try await connection.command(
            RedisCommand("XRANGE", Keys(queue).dead, "-", "+", "COUNT", count)
        )
        .checked(endpoint: endpoint, command: "XRANGE")
        return (reply.array ?? []).compactMap { entry in
            guard let parts = entry.array, parts.count == 2, let list = parts[1].array else { return nil }
            var fields: [String: RedisReply] = [:]
            for index in stride(from: 0, to: list.count - 1, by: 2) {
                fields[list[index].text ?? ""] = list[index + 1]
            }
            return DeadLetter(
                queue: queue, messageID: fields["o"]?.text ?? parts[0].text ?? "",
                body: fields["b"]?.bytes ?? [],
                reason: fields["r"]?.text ?? "", deliveryCount: fields["c"]?.integer ?? 0,
                deadLetteredAt: Date(timeIntervalSince1970: Double(fields["t"]?.integer ?? 0) / 1000))
        }
    }

    /// Moves the dead letters 200 at a time, one script call each, so that no call holds the
    /// server for long however many there are; each window moves atomically.
    public func requeueDeadLetters(of queue: QueueName, count: Int) async throws -> Int {
        let keys = Keys(queue)
        var moved = 0
        while moved < count {
            let window = min(count - moved, Self.requeueWindow)
            let reply = try await run(
                Self.requeue, keys: [keys.dead, keys.stream, keys.signal], arguments: [window])
            guard let movedNow = reply.integer else {
                throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected requeue reply")
            }
            moved += movedNow
            // A short window: the dead stream ran out.
            if movedNow < window { break }
        }
        return moved
    }

    /// Walks the dead stream oldest first, a window of entries per script call, and moves the
    /// first whose id matches; the requeued message gets a new stream entry (and id).
    public func requeueDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        let keys = Keys(queue)
        return try await takeDeadLetter(
            messageID, with: Self.requeueOne, keys: [keys.dead, keys.stream, keys.signal])
    }

    /// Walks the dead stream as ``requeueDeadLetter(of:messageID:)`` does, and deletes the
    /// first entry whose id matches.
    public func deleteDeadLetter(of queue: QueueName, messageID: String) async throws -> Bool {
        try await takeDeadLetter(messageID, with: Self.deleteOne, keys: [Keys(queue).dead])
    }

    /// Runs `script` (``requeueOne`` or ``deleteOne``, whose first key is the dead stream) a
    /// window at a time from the oldest dead letter until it takes the one with `messageID` or
    /// the stream ends; returns whether it took one.
    private func takeDeadLetter(_ messageID: String, with script: RedisScript, keys: [String]) async throws
        -> Bool
    {
        var after = ""
        while true {
            let reply = try await run(script, keys: keys, arguments: [messageID, after, Self.requeueWindow])
            guard let parts = reply.array, parts.count == 2, let taken = parts[0].integer,
                let next = parts[1].text
            else {
                throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected \(script.name) reply")
            }
            if taken == 1 { return true }
            if next.isEmpty { return false }
            after = next
        }
    }

    public func purge(_ queue: QueueName) async throws -> Int {
        let keys = Keys(queue)
        try await ensureGroup(keys)
        return try await run(
            Self.purge, keys: [keys.stream, keys.delayed, keys.scheduled], arguments: [Self.group]
        )
        .integer ?? 0
    }

    public func purgeDeadLetters(of queue: QueueName) async throws -> Int {
        let dead = Keys(queue).dead
        let replies = try await connection.send([RedisCommand("XLEN", dead), RedisCommand("DEL", dead)])
        return replies[0].integer ?? 0
    }

    // MARK: Pausing

    /// Sets `ivy:{queue}:paused` to `1`, without an expiry.
    public func pause(_ queue: QueueName) async throws {
        _ = try await connection.command(RedisCommand("SET", Keys(queue).paused, "1"))
            .checked(endpoint: endpoint, command: "SET")
    }

    /// Deletes `ivy:{queue}:paused`.
    public func resume(_ queue: QueueName) async throws {
        _ = try await connection.command(RedisCommand("DEL", Keys(queue).paused))
            .checked(endpoint: endpoint, command: "DEL")
    }

    /// Whether `ivy:{queue}:paused` exists.
    public func isPaused(_ queue: QueueName) async throws -> Bool {
        try await connection.command(RedisCommand("EXISTS", Keys(queue).paused))
            .checked(endpoint: endpoint, command: "EXISTS").integer == 1
    }

    // MARK: Internals

    /// A queue's keys, all with the hash tag `{queue}`.
    struct Keys {
        let stream, leases, delayed, dead, signal, consumers, paused, scheduled: String
        init(_ queue: QueueName) {
            let prefix = "ivy:{\(queue)}:"
            stream = prefix + "stream"
            leases = prefix + "leases"
            delayed = prefix + "delayed"
            dead = prefix + "dead"
            signal = prefix + "signal"
            consumers = prefix + "consumers"
            paused = prefix + "paused"
            scheduled = prefix + "scheduled"
        }
    }

    private func ensureGroup(_ keys: Keys) async throws {
        guard !groupsCreated.withLock({ $0.contains(keys.stream) }) else { return }
        let reply = try await connection.command(
            RedisCommand("XGROUP", "CREATE", keys.stream, Self.group, "0", "MKSTREAM"))
        if case .error(let message) = reply, !message.hasPrefix("BUSYGROUP") {
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "XGROUP CREATE: \(message)")
        }
        groupsCreated.withLock { _ = $0.insert(keys.stream) }
    }

    /// Runs a script on the shared connection; error replies become `IvyError/Code/commandFailed`.
    private func run(_ script: RedisScript, keys: [String], arguments: [any RedisArgument]) async throws
        -> RedisReply
    {
        try await awaiting { run(script, keys: keys, arguments: arguments, completion: $0) }
    }

    private func run(
        _ script: RedisScript, keys: [String], arguments: [any RedisArgument], prelude: [RedisCommand] = [],
        completion: @escaping @Sendable (Result<RedisReply, any Error>) -> Void
    ) {
        connection.evaluate(script, keys: keys, arguments: arguments, prelude: prelude) { result in
            completion(
                Result {
                    let reply = try result.get()
                    if reply.errorMessage?.contains("NOGROUP") == true {
                        // The stream or its group went away (FLUSHALL, a deleted key): make it again next time.
                        self.groupsCreated.withLock { _ = $0.remove(keys[0]) }
                    }
                    return try reply.checked(endpoint: self.endpoint, command: script.name)
                })
        }
    }

    /// Turns a script's 0 ("not held") into `IvyError/Code/reservationLost`.
    private func held(_ reply: RedisReply, _ reservation: Reservation<Receipt>) throws(IvyError) {
        try held(reply.integer == 1, reservation)
    }

    private func held(_ isHeld: Bool, _ reservation: Reservation<Receipt>) throws(IvyError) {
        guard isHeld else { throw lost(reservation) }
    }

    private func lost(_ reservation: Reservation<Receipt>) -> IvyError {
        IvyError(
            .reservationLost, endpoint: endpoint,
            detail: "message \(reservation.messageID) on \(reservation.queue): the reservation expired")
    }

    /// What a reserve script returned.
    private struct ReserveOutcome {
        var reservations: [Reservation<Receipt>]
        /// Nothing was left to read, and the queue's signal list was emptied.
        var drained: Bool
        /// Milliseconds until a delayed message or lease comes due; only with `drained`.
        var nextDue: Int?
    }

    private func parseReserveReply(_ reply: RedisReply, queue: QueueName) throws(IvyError) -> ReserveOutcome {
        if let message = reply.errorMessage {
            // Behind a BLPOP, after a restart: LOADING, say, while the server reads its data.
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "\(Self.reserve.name): \(message)")
        }
        guard let parts = reply.array, parts.count == 3, let entries = parts[0].array else {
            throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected reserve reply")
        }
        let reservations = entries.compactMap { entry -> Reservation<Receipt>? in
            guard let fields = entry.array, fields.count == 4 || fields.count == 7, let id = fields[0].text,
                let body = fields[1].bytes,
                let deliveries = fields[2].integer, let token = fields[3].text
            else { return nil }
            var start: RecordedStart?
            if fields.count == 7, let bytes = fields[4].bytes,
                let callID = String(validating: bytes, as: UTF8.self)
            {
                let state = StoredStatuses.heldState(
                    of: callID, final: fields[5].bytes ?? [], cancelFlag: fields[6].bytes ?? [],
                    otherwise: .running)
                start = RecordedStart(callID: callID, attempt: deliveries, state: state)
            }
            return Reservation(
                queue: queue, messageID: id, body: body, deliveryCount: deliveries,
                receipt: Receipt(token: token), recordedStart: start)
        }
        let nextDue = parts[2].integer.flatMap { $0 >= 0 ? $0 : nil }
        return ReserveOutcome(reservations: reservations, drained: parts[1].integer == 1, nextDue: nextDue)
    }
}
