// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

public import Foundation
public import IvyCore
public import IvyRedis
internal import Synchronization

/// The Redis pub/sub notifier (`redis://…` as `--notify`).
///
/// Publishing shares a pipelined `RedisConnection`; all subscriptions share one pub/sub
/// connection on its own thread, which reconnects and subscribes again by itself. On a Redis
/// Cluster, results go by sharded pub/sub (`SPUBLISH`, `SSUBSCRIBE`): each channel lives on the
/// master of its slot, the slot of the stream that keeps its results, so one script on one node
/// keeps and publishes a result, and no other node relays it; each channel then has a
/// subscriber of its own, connected to that master.
///
/// Results are durable by default: every result is also kept for ``resultRetention``
/// (``defaultResultRetention``, 30 s) in a stream next to its channel (`ivy:{<channel>}:results`),
/// written in the same script as the PUBLISH (by the backend's ack script when the queue is on
/// the same server); after a reconnect the notifier reads the stream back, so a producer whose
/// connection was down when its result was published still gets it. The price, measured in
/// BENCHMARKS.md: about 7 % of the round trips, and Redis memory of about 230 bytes per result
/// for the retention (7 MB at 1,000 results a second). With `retain_results=0` in the URL, or a
/// nil retention, results are plain pub/sub, which delivers at most once: a result published
/// while a producer is disconnected never reaches it, and that call ends in a timeout error.
public final class RedisNotifier: Notifier, RedisPubSubNotifier, TaskStatusStore, ScheduleStore {
    public let endpoint: String
    package var server: RedisConfiguration.Address { publisher.configuration.address }
    package var database: Int { publisher.configuration.database }
    /// How long each result is kept for producers that reconnect; nil for plain pub/sub.
    public let resultRetention: Duration?
    /// How long a call's status is kept after its last change; nil when statuses are not kept.
    public let statusRetention: Duration?
    let publisher: RedisConnection
    /// Every channel's subscriber on one server; nil on a cluster, where each channel has its
    /// own (``channelSubscribers``).
    private let sharedSubscriber: RedisSubscriber?
    /// On a cluster: per channel, the sharded subscriber on the master of its slot.
    private let channelSubscribers = Mutex<[String: RedisSubscriber]>([:])
    /// Reads a channel's kept results back after its subscriber came back; nil without them.
    private let replay: (@Sendable (String, RedisSubscriber) -> Void)?
    /// Classic pub/sub on one server; sharded on a cluster.
    private let pubSub: RedisSubscriber.Kind
    private var publishCommand: String { pubSub.publish }
    private let logger: any IvyLogger
    private let closed = Atomic(false)
    private var isClosed: Bool { closed.load(ordering: .relaxed) }
    /// Per channel: retained results batched into one script call.
    private let retainers = CoalescerTable<[UInt8], Void>(maximumBatch: 500)
    /// Status records batched into one request; nil when statuses are not kept.
    private let statusRecorder: RequestCoalescer<TaskStatus, TaskStatus.State>?

    /// How long results are kept unless a retention is given: long enough for a producer to
    /// reconnect after a Redis restart or a dropped connection.
    public static let defaultResultRetention = Duration.seconds(30)

    /// How long statuses are kept unless a retention is given: a day, as Celery keeps results.
    public static let defaultStatusRetention = Duration.seconds(86_400)

    /// - Parameters:
    ///   - publisher: The connection results are published (and kept) through.
    ///   - resultRetention: Keep each result this long (at least 1 ms), so a producer that was
    ///     disconnected when it was published still gets it; nil for plain pub/sub.
    ///   - statusRetention: Keep each call's status this long after its last change (at least
    ///     1 ms); nil keeps none.
    ///   - logger: Where the notifier reports reconnects and retries.
    /// - Throws: `IvyError/Code/invalidConfiguration` for a retention under 1 ms or over 30 days.
    package init(
        publisher: RedisConnection, resultRetention: Duration? = defaultResultRetention,
        statusRetention: Duration? = defaultStatusRetention, logger: any IvyLogger = StderrLogger()
    ) throws(IvyError) {
        if let resultRetention {
            try IvyError.check(
                "resultRetention", resultRetention, in: .milliseconds(1)...(.seconds(30 * 86_400)))
        }
        if let statusRetention {
            try IvyError.check(
                "statusRetention", statusRetention, in: .milliseconds(1)...(.seconds(30 * 86_400)))
        }
        self.publisher = publisher
        self.resultRetention = resultRetention
        self.statusRetention = statusRetention
        statusRecorder = statusRetention.map { retention in
            RequestCoalescer(maximumBatch: 500) { [publisher] batch, done in
                Self.record(batch, retention: retention, through: publisher, done: done)
            }
        }
        self.logger = logger
        endpoint = publisher.endpoint
        var replay: (@Sendable (String, RedisSubscriber) -> Void)?
        if let resultRetention {
            replay = { @Sendable [publisher, logger] channel, subscriber in
                _ = Task {
                    await Self.replayRetained(
                        on: channel, from: publisher, into: subscriber, retention: resultRetention,
                        logger: logger)
                }
            }
        }
        self.replay = replay
        let isCluster = publisher.configuration.isCluster
        pubSub = isCluster ? .sharded : .classic
        sharedSubscriber =
            isCluster
            ? nil
            : RedisSubscriber(configuration: publisher.configuration, logger: logger, onResubscribed: replay)
    }

    /// The subscriber that serves `channel`: on a cluster, made on first use and kept.
    private func subscriber(for channel: String) throws(IvyError) -> RedisSubscriber {
        if let sharedSubscriber { return sharedSubscriber }
        try checkSlot(of: channel)
        return try channelSubscribers.withLock { (table) throws(IvyError) -> RedisSubscriber in
            guard !isClosed else { throw IvyError(.closed, endpoint: endpoint) }
            if let subscriber = table[channel] { return subscriber }
            let subscriber = RedisSubscriber(
                configuration: publisher.configuration, logger: logger, kind: .sharded,
                nodes: { [publisher] in
                    publisher.clusterMaster(forKey: channel).map { [$0] } ?? publisher.knownNodes
                },
                onNodeLost: { [publisher] in publisher.refreshClusterMap() },
                onResubscribed: replay)
            table[channel] = subscriber
            return subscriber
        }
    }

    /// Connects to `url` (checking address and credentials) and returns the notifier.
    ///
    /// `?retain_results=SECONDS` in the URL sets ``resultRetention`` (30 s when absent);
    /// `retain_results=0` makes results plain pub/sub. `?status_retention=SECONDS` sets
    /// ``statusRetention`` (a day when absent); `status_retention=0` keeps no statuses.
    public static func connect(url: String, logger: any IvyLogger = StderrLogger()) async throws
        -> RedisNotifier
    {
        let configuration = try RedisConfiguration(url: url)
        configuration.warnIfUnverified(logger)
        let retention = try Self.retention("retain_results", in: url, default: defaultResultRetention)
        let statusRetention = try Self.retention("status_retention", in: url, default: defaultStatusRetention)
        let publisher = try await RedisConnection.connect(configuration, name: "ivy-redis-pub")
        return try RedisNotifier(
            publisher: publisher, resultRetention: retention, statusRetention: statusRetention, logger: logger
        )
    }

    /// On a cluster, refuses a channel whose name holds a hash tag's brace: the stream that keeps
    /// its results (`ivy:{<channel>}:results`) would then be in another slot than the channel.
    private func checkSlot(of channel: String) throws(IvyError) {
        guard pubSub == .sharded, channel.contains(where: { $0 == "{" || $0 == "}" }) else {
            return
        }
        throw IvyError(
            .invalidConfiguration, endpoint: endpoint,
            detail: "on a Redis Cluster a channel's name cannot hold { or }: \(channel.prefix(64))")
    }

    /// Publishes `payload` on `channel`; with ``resultRetention``, keeps it too.
    ///
    /// With durable results, a publication that fails because Redis is out of reach (a restart,
    /// say) or not ready (`LOADING`) is tried again, with backoff and jitter
    /// (`RedisConnection.retryDelay(afterFailures:)`), until it succeeds, the retention has
    /// passed, the notifier is closed, or the calling task is cancelled. A try whose reply was
    /// lost may have published already, so a result can arrive twice; the producer ignores the
    /// second.
    ///
    /// - Throws: The last failure, when it gives up.
    public func publish(_ payload: [UInt8], to channel: ChannelName) async throws {
        let channel = channel.rawValue
        try checkSlot(of: channel)
        guard let retention = resultRetention else {
            _ = try await publisher.command(RedisCommand(publishCommand, channel, payload))
                .checked(endpoint: endpoint, command: publishCommand)
            return
        }
        try await retrying(on: channel, for: retention) {
            try await self.retainAndPublish(payload, to: channel, retention: retention)
        }
    }

    /// Runs `publication`, and with durable results runs it again while it fails on a server
    /// out of reach or not ready, until the retention has passed (see ``publish(_:to:)``).
    private func retrying(
        on channel: String, for retention: Duration?, _ publication: () async throws -> Void
    ) async throws {
        guard let retention else { return try await publication() }
        let clock = ContinuousClock()
        let giveUp = clock.now + retention
        var failures = 0
        while true {
            do {
                try await publication()
                if failures > 0 {
                    logger.info(
                        "published a result after retrying", ["channel": channel, "tries": "\(failures + 1)"])
                }
                return
            } catch {
                let remaining = giveUp - clock.now
                guard RetainedResults.isWorthRetrying(error), !isClosed, !Task.isCancelled, remaining > .zero
                else { throw error }
                failures += 1
                if failures == 1 {
                    logger.warning(
                        "publishing a result failed; retrying until it is published or its retention has passed",
                        ["channel": channel, "error": "\(error)"])
                }
                try? await Task.sleep(
                    for: min(RedisConnection.retryDelay(afterFailures: failures), remaining))
            }
        }
    }

    private func retainAndPublish(_ payload: [UInt8], to channel: String, retention: Duration) async throws {
        // Results for one channel that arrive together are kept and published in one script call.
        try await retainers.submit(payload, key: channel) { [weak self] payloads, done in
            guard let self else { return done(payloads.map { _ in .failure(IvyError(.closed)) }) }
            var arguments: [any RedisArgument] = [channel, retention.wholeMilliseconds]
            arguments.reserveCapacity(2 + payloads.count)
            for payload in payloads { arguments.append(payload) }
            // Replicas confirm the kept results, for a subscriber that missed the publication
            // and asks again after a failover; fewer in time is no failure: it was published.
            let key = RetainedResults.key(channel)
            let replicaWait = self.publisher.replicaWait(afterWritingTo: key)
            self.publisher.evaluate(
                self.pubSub == .classic ? Self.retainAndPublish : Self.retainAndShardPublish,
                keys: [key], arguments: arguments, postlude: replicaWait.map { [$0.command] } ?? [],
                postludeReplies: { [publisher = self.publisher] replies in
                    // Fewer in time is no failure: the result was published.
                    if let wanted = replicaWait?.replicas {
                        _ = publisher.replicasConfirmed(replies.first, wanted: wanted, afterWritingTo: key)
                    }
                }
            ) {
                [endpoint] reply in
                let outcome = Result<Void, any Error> {
                    _ = try reply.get().checked(endpoint: endpoint, command: "PUBLISH")
                }
                done(payloads.map { _ in outcome })
            }
        }
    }

    public func subscribe(to channel: ChannelName) async throws -> AsyncStream<[UInt8]> {
        try await subscriber(for: channel.rawValue).subscribe(to: channel.rawValue)
    }

    public func subscribe(to channel: ChannelName, receive: @escaping @Sendable ([UInt8]) -> Void)
        async throws
        -> NotifierSubscription
    {
        try await subscriber(for: channel.rawValue).subscribe(to: channel.rawValue, receive: receive)
    }

    public func close() async {
        closed.store(true, ordering: .relaxed)
        sharedSubscriber?.close()
        for subscriber in channelSubscribers.withLock({ Array($0.values) }) { subscriber.close() }
        await publisher.close()
    }

    // MARK: Statuses

    public func record(
        _ status: TaskStatus, completion: @escaping @Sendable (Result<TaskStatus.State, any Error>) -> Void
    ) {
        guard let statusRecorder else { return completion(.failure(noStatuses)) }
        statusRecorder.submit(status, completion: completion)
    }

    /// Records a batch of statuses in one request of plain commands (StoredStatuses says why no
    /// script).
    private static func record(
        _ batch: [TaskStatus], retention: Duration, through publisher: RedisConnection,
        done: @escaping @Sendable ([Result<TaskStatus.State, any Error>]) -> Void
    ) {
        let perStatus = batch.map { StoredStatuses.commands(recording: $0, retention: retention) }
        let endpoint = publisher.endpoint
        publisher.send(perStatus.flatMap { $0 }) { outcome in
            do {
                let replies = try outcome.get()
                var results: [Result<TaskStatus.State, any Error>] = []
                results.reserveCapacity(batch.count)
                guard replies.count == perStatus.reduce(0, { $0 + $1.count }) else {
                    throw IvyError(.commandFailed, endpoint: endpoint, detail: "unexpected status replies")
                }
                var start = 0
                for (status, commands) in zip(batch, perStatus) {
                    let own = Array(replies[start..<start + commands.count])
                    start += commands.count
                    results.append(
                        Result {
                            for reply in own { _ = try reply.checked(endpoint: endpoint, command: "status") }
                            return StoredStatuses.heldState(after: status, own)
                        })
                }
                done(results)
            } catch {
                done(batch.map { _ in .failure(error) })
            }
        }
    }

    public func publish(_ payload: [UInt8], to channel: ChannelName, recording status: TaskStatus)
        async throws
    {
        guard let statusRetention else { return try await publish(payload, to: channel) }
        try checkSlot(of: channel.rawValue)
        let recording = StoredStatuses.commands(recording: status, retention: statusRetention)
        let name = channel.rawValue
        guard let resultRetention else {
            // One request, where the status is recorded before the PUBLISH; on a cluster, whose
            // nodes run a request's runs in any order, the status first.
            let publishing = RedisCommand(publishCommand, name, payload)
            let replies =
                publisher.configuration.isCluster
                ? try await publisher.send(recording) + [try await publisher.command(publishing)]
                : try await publisher.send(recording + [publishing])
            for reply in replies { _ = try reply.checked(endpoint: endpoint, command: "PUBLISH") }
            return
        }
        // Recorded, then kept and published, and again on each retry: the status is final
        // before the caller can hear of the result.
        try await retrying(on: name, for: resultRetention) {
            for reply in try await self.publisher.send(recording) {
                _ = try reply.checked(endpoint: self.endpoint, command: "status")
            }
            try await self.retainAndPublish(payload, to: name, retention: resultRetention)
        }
    }

    public func status(of id: String) async throws -> TaskStatus {
        guard statusRetention != nil else { throw noStatuses }
        let reply = try await publisher.command(RedisCommand("HGETALL", StoredStatuses.key(id)))
            .checked(endpoint: endpoint, command: "HGETALL")
        return StoredStatuses.status(id, from: reply)
    }

    public func cancel(_ id: String, reason: String) async throws -> TaskStatus {
        guard let statusRetention else { throw noStatuses }
        let cancelled = TaskStatus(id: id, state: .cancelled, updatedAt: Date(), reason: reason)
        let reply = try await publisher.evaluate(
            StoredStatuses.cancel, keys: [StoredStatuses.key(id)],
            arguments: [cancelled.packed, statusRetention.wholeMilliseconds]
        ).checked(endpoint: endpoint, command: "cancel")
        return StoredStatuses.status(id, from: reply)
    }

    private var noStatuses: IvyError {
        IvyError(
            .unsupportedBackend, endpoint: endpoint,
            detail: "this notifier keeps no statuses (status_retention=0)")
    }

    // MARK: Leases and ticks

    public func lease(_ name: String, holder: String, for duration: Duration) async throws -> Bool {
        try await publisher.evaluate(
            Self.takeLease, keys: ["ivy:lease:{\(name)}"],
            arguments: [holder, max(1, duration.wholeMilliseconds)]
        ).checked(endpoint: endpoint, command: "lease").integer == 1
    }

    public func release(_ name: String, holder: String) async throws {
        _ = try await publisher.evaluate(
            Self.releaseLease, keys: ["ivy:lease:{\(name)}"], arguments: [holder]
        )
        .checked(endpoint: endpoint, command: "lease")
    }

    public func claim(_ tick: String, of task: String, at time: Date, for duration: Duration) async throws
        -> Bool
    {
        try await publisher.evaluate(
            // Both keys under the task's hash tag: one slot, so a cluster runs the script too.
            Self.claimTick, keys: ["ivy:schedule:{\(task)}:tick:\(tick)", Self.latestKey(task)],
            arguments: [max(1, duration.wholeMilliseconds), String(TaskStatus.milliseconds(time))]
        ).checked(endpoint: endpoint, command: "claim").integer == 1
    }

    public func latestClaim(of task: String) async throws -> Date? {
        let reply = try await publisher.command(RedisCommand("GET", Self.latestKey(task)))
            .checked(endpoint: endpoint, command: "GET")
        return reply.text.flatMap(Int64.init).map { Date(timeIntervalSince1970: Double($0) / 1000) }
    }

    private static func latestKey(_ task: String) -> String { "ivy:schedule:{\(task)}:latest" }

    /// KEYS tick, the task's latest claim; ARGV milliseconds the claim lasts, the tick's time
    /// (ms). Claims the tick unless claimed and moves the latest claim up to it (kept 30 days);
    /// 1 if this call claimed it.
    static let claimTick = RedisScript(
        name: "claim-tick",
        source: """
            if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return 0 end
            if tonumber(ARGV[2]) > tonumber(redis.call('GET', KEYS[2]) or '-1') then
              redis.call('SET', KEYS[2], ARGV[2], 'PX', 2592000000)
            end
            return 1
            """)

    /// KEYS lease; ARGV holder, milliseconds. Renews the lease if the holder holds it, takes it
    /// if nobody does; 1 if the holder holds it afterwards.
    static let takeLease = RedisScript(
        name: "take-lease",
        source: """
            local holder = redis.call('GET', KEYS[1])
            if holder == ARGV[1] then
              redis.call('PEXPIRE', KEYS[1], ARGV[2])
              return 1
            end
            if not holder then
              redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
              return 1
            end
            return 0
            """)

    /// KEYS lease; ARGV holder. Deletes the lease if the holder holds it.
    static let releaseLease = RedisScript(
        name: "release-lease",
        source: """
            if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
            return 0
            """)

    // MARK: Durable results

    /// The stream that keeps `channel`'s results.
    static func retainedKey(_ channel: ChannelName) -> String { RetainedResults.key(channel.rawValue) }

    /// KEYS results stream; ARGV channel, retention ms, then payloads. Keeps the payloads
    /// (dropping entries older than the retention), then publishes them in order; returns how
    /// many deliveries the publications made.
    static let retainAndPublish = retaining(publishingWith: .classic)
    /// ``retainAndPublish`` for a cluster: sharded pub/sub, whose channel is in the stream's slot.
    static let retainAndShardPublish = retaining(publishingWith: .sharded)

    private static func retaining(publishingWith kind: RedisSubscriber.Kind) -> RedisScript {
        RedisScript(
            name: kind == .classic ? "retain-and-publish" : "retain-and-shard-publish",
            source: RetainedResults.keepFunction + """

                local clock = redis.call('TIME')
                local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
                for i = 3, #ARGV do keep(KEYS[1], ARGV[i], tonumber(ARGV[2]), now) end
                local delivered = 0
                for i = 3, #ARGV do delivered = delivered + redis.call('\(kind.publish)', ARGV[1], ARGV[i]) end
                return delivered
                """)
    }

    /// Hands every result retained for `channel` to its subscribers. Results they already had
    /// come again; the producer ignores results for calls that no longer wait.
    ///
    /// Runs right after a reconnect, when the server may still be loading its data or the
    /// publishing connection may still hold a dead socket: failures are retried with backoff,
    /// from where the last page ended, until the retention has passed or the notifier closed.
    private static func replayRetained(
        on channel: String, from connection: RedisConnection, into subscriber: RedisSubscriber,
        retention: Duration,
        logger: any IvyLogger
    ) async {
        let clock = ContinuousClock()
        let giveUp = clock.now + retention
        var start = "-"
        var failures = 0
        while true {
            do {
                let reply = try await connection.command(
                    RedisCommand("XRANGE", RetainedResults.key(channel), start, "+", "COUNT", 500)
                )
                .checked(endpoint: connection.endpoint, command: "XRANGE")
                let entries = reply.array ?? []
                var payloads: [[UInt8]] = []
                for entry in entries {
                    guard let parts = entry.array, parts.count == 2, let id = parts[0].text else { continue }
                    start = "(" + id
                    if let fields = parts[1].array, fields.count == 2, let payload = fields[1].bytes {
                        payloads.append(payload)
                    }
                }
                subscriber.deliver(payloads, on: channel)
                if entries.count < 500 { return }
                failures = 0
            } catch {
                let closed = (error as? IvyError)?.code == .closed
                if closed || clock.now >= giveUp {
                    if !closed {
                        logger.warning(
                            "reading retained results failed", ["channel": channel, "error": "\(error)"])
                    }
                    return
                }
                failures += 1
                try? await Task.sleep(for: RedisConnection.retryDelay(afterFailures: failures))
            }
        }
    }

    /// `retain_results=SECONDS` from a notifier URL: ``defaultResultRetention`` when absent, nil
    /// (plain pub/sub) for 0.
    static func resultRetention(in url: String) throws(IvyError) -> Duration? {
        try retention("retain_results", in: url, default: defaultResultRetention)
    }

    /// A retention in seconds from a notifier URL's query item `name`: `fallback` when absent,
    /// nil for 0.
    static func retention(_ name: String, in url: String, default fallback: Duration) throws(IvyError)
        -> Duration?
    {
        let items = URLComponents(string: url)?.queryItems ?? []
        guard let item = items.last(where: { $0.name == name }) else { return fallback }
        guard let text = item.value, let seconds = Double(text),
            seconds == 0 || (0.001...(86_400 * 30)).contains(seconds)
        else {
            throw IvyError(
                .invalidURL, endpoint: Redaction.redact(url: url),
                detail: "\(name) must be 0 (off) or a number of seconds from 0.001 to 2592000")
        }
        guard seconds > 0 else { return nil }
        return .milliseconds(Int((seconds * 1000).rounded()))
    }
}
