// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import CHiredis
internal import Foundation
internal import IvyCore
internal import IvyRedis
internal import Synchronization

#if canImport(Glibc)
    internal import Glibc
#endif

/// One pub/sub connection on its own thread, shared by every subscription of a notifier.
///
/// The thread polls the socket together with a wake pipe: messages are handed to the channel's
/// subscribers as they arrive, and subscription changes (or closing) wake it at once. When the
/// connection drops it reconnects at once, then with backoff (`RedisConnection.retryDelay(afterFailures:)`:
/// 25–75 ms first, at most 750 ms), and subscribes again to every channel in use. A subscription
/// the server refuses (no password, `NOPERM`) fails its subscriber instead of leaving it waiting.
///
/// On a Redis Cluster it speaks sharded pub/sub (``Kind/sharded``): its channels live on the
/// master that owns their slot, which it connects to; when the slot moves (the server ends the
/// subscription, or answers `MOVED`) or the master fails, it asks for the cluster's map again and
/// subscribes on the slot's new master.
final class RedisSubscriber: Sendable {
    /// Which pub/sub the subscriber speaks.
    enum Kind: Sendable {
        /// `SUBSCRIBE`: on a cluster, every node relays every publication.
        case classic
        /// `SSUBSCRIBE` (Redis 7): a channel is published on, and heard from, the master (or a
        /// replica) of its slot only.
        case sharded

        var publish: String { self == .classic ? "PUBLISH" : "SPUBLISH" }
        var subscribe: [UInt8] { Array((self == .classic ? "SUBSCRIBE" : "SSUBSCRIBE").utf8) }
        var unsubscribe: [UInt8] { Array((self == .classic ? "UNSUBSCRIBE" : "SUNSUBSCRIBE").utf8) }
        /// The pushed replies' kinds: a message, a confirmed subscription, an ended one.
        var message: String { self == .classic ? "message" : "smessage" }
        var subscribed: String { self == .classic ? "subscribe" : "ssubscribe" }
        var unsubscribed: String { self == .classic ? "unsubscribe" : "sunsubscribe" }
    }

    /// A sharded channel's slot is no longer on the node subscribed to, or the cluster cannot
    /// serve it for now (a migration, a failover).
    private struct ChannelMoved: Error {
        var channel: String
        var reason: String
    }

    /// Errors to an `SSUBSCRIBE` that a later try on the slot's master may not get.
    private static let passingErrors: Set<Substring> = [
        "MOVED", "ASK", "TRYAGAIN", "CLUSTERDOWN", "LOADING", "MASTERDOWN", "BUSY",
    ]

    /// Where one subscription's messages go, on the subscriber's thread.
    private struct Sink {
        var receive: @Sendable ([UInt8]) -> Void
        var finish: (@Sendable () -> Void)?
    }

    private struct Shared {
        var sinks: [String: [UInt64: Sink]] = [:]
        /// Subscribers waiting for the server to confirm their channel.
        var confirming: [String: [CheckedContinuation<Void, any Error>]] = [:]
        /// Channels the server has confirmed on the current connection.
        var confirmed: Set<String> = []
        var nextID: UInt64 = 0
        var isClosed = false
    }

    private let configuration: RedisConfiguration
    private let kind: Kind
    private let shared = Mutex(Shared())
    private let wake = WakePipe()
    private let logger: any IvyLogger
    /// Called, on the subscriber's thread, for each channel subscribed again after a lost
    /// connection: messages published meanwhile never reached it.
    private let onResubscribed: (@Sendable (String, RedisSubscriber) -> Void)?
    /// The nodes of a cluster to subscribe on, tried in turn while the one subscribed to is away.
    private let nodes: @Sendable () -> [RedisConfiguration.Address]
    /// Called when a cluster's node was lost or a channel's slot moved: the map is out of date.
    private let onNodeLost: @Sendable () -> Void

    /// - Parameters:
    ///   - kind: Classic or sharded pub/sub; sharded needs every channel to be in a slot that
    ///     the nodes given by `nodes` own.
    ///   - nodes: A cluster's nodes to subscribe on, best first.
    ///   - onNodeLost: Told that a cluster's node was lost or a channel's slot moved.
    ///   - onResubscribed: Told of each channel subscribed again after a lost connection.
    init(
        configuration: RedisConfiguration, logger: any IvyLogger, kind: Kind = .classic,
        nodes: @escaping @Sendable () -> [RedisConfiguration.Address] = { [] },
        onNodeLost: @escaping @Sendable () -> Void = {},
        onResubscribed: (@Sendable (String, RedisSubscriber) -> Void)? = nil
    ) {
        self.configuration = configuration
        self.kind = kind
        self.nodes = nodes
        self.onNodeLost = onNodeLost
        self.logger = logger
        self.onResubscribed = onResubscribed
        DedicatedThread.start(name: "ivy-redis-sub") { [self] in run() }
    }

    /// Hands `payloads` to `channel`'s subscribers as if they had just arrived.
    func deliver(_ payloads: [[UInt8]], on channel: String) {
        let sinks = shared.withLock { $0.sinks[channel].map { Array($0.values) } ?? [] }
        for sink in sinks {
            for payload in payloads { sink.receive(payload) }
        }
    }

    /// Hands one arriving message to `channel`'s subscribers.
    private func deliver(_ payload: [UInt8], on channel: String) {
        // Nearly always one subscriber (the producer): taken without copying the table.
        let (only, several) = shared.withLock { shared -> (Sink?, [Sink]) in
            guard let sinks = shared.sinks[channel] else { return (nil, []) }
            return sinks.count == 1 ? (sinks.first!.value, []) : (nil, Array(sinks.values))
        }
        only?.receive(payload)
        for sink in several { sink.receive(payload) }
    }

    /// A stream of `channel`'s messages, returned once the server confirmed the subscription.
    func subscribe(to channel: String) async throws -> AsyncStream<[UInt8]> {
        let (stream, continuation) = AsyncStream<[UInt8]>.makeStream()
        let id = try await add(
            Sink(receive: { continuation.yield($0) }, finish: { continuation.finish() }), to: channel)
        continuation.onTermination = { [weak self] _ in self?.remove(id, from: channel) }
        return stream
    }

    /// Calls `receive` with each of `channel`'s messages, on this thread, once the server
    /// confirmed the subscription.
    func subscribe(to channel: String, receive: @escaping @Sendable ([UInt8]) -> Void) async throws
        -> NotifierSubscription
    {
        let id = try await add(Sink(receive: receive, finish: nil), to: channel)
        return NotifierSubscription { [weak self] in self?.remove(id, from: channel) }
    }

    private func add(_ sink: Sink, to channel: String) async throws -> UInt64 {
        let id = try shared.withLock { (shared) throws(IvyError) -> UInt64 in
            guard !shared.isClosed else { throw IvyError(.closed, endpoint: configuration.endpoint) }
            shared.nextID += 1
            shared.sinks[channel, default: [:]][shared.nextID] = sink
            return shared.nextID
        }
        do {
            try await withCheckedThrowingContinuation {
                (confirmation: CheckedContinuation<Void, any Error>) in
                let alreadyConfirmed = shared.withLock { shared in
                    if shared.confirmed.contains(channel) { return true }
                    shared.confirming[channel, default: []].append(confirmation)
                    return false
                }
                if alreadyConfirmed { confirmation.resume() } else { wake.signal() }
            }
        } catch {
            remove(id, from: channel)
            throw error
        }
        return id
    }

    private func remove(_ id: UInt64, from channel: String) {
        // The sink is released after the lock: its captures may unsubscribe too.
        let (lastOne, removed) = shared.withLock { shared -> (Bool, Sink?) in
            let removed = shared.sinks[channel]?.removeValue(forKey: id)
            guard shared.sinks[channel]?.isEmpty == true else { return (false, removed) }
            shared.sinks[channel] = nil
            return (true, removed)
        }
        _ = removed
        if lastOne { wake.signal() }
    }

    func close() {
        let (sinks, confirming) = shared.withLock { shared in
            shared.isClosed = true
            defer {
                shared.sinks.removeAll()
                shared.confirming.removeAll()
            }
            return (shared.sinks.values.flatMap(\.values), shared.confirming.values.flatMap { $0 })
        }
        for sink in sinks { sink.finish?() }
        for waiter in confirming {
            waiter.resume(throwing: IvyError(.closed, endpoint: configuration.endpoint))
        }
        wake.signal()
    }

    // MARK: The thread

    /// What the thread knows of the current connection's subscriptions.
    private struct Subscriptions {
        /// Channels a SUBSCRIBE went out for, not refused and not unsubscribed since.
        var subscribed: Set<String> = []
        /// Channels the server refused (`NOPERM`, say): asked for again only when a new
        /// subscriber waits for one, so a refusal is not retried in a loop.
        var refused: Set<String> = []
        /// One entry per command on the wire, oldest first: whether it subscribes, and its
        /// channel. Each command names one channel, so each gets one reply (a confirmation or an
        /// error), and an error reply is known to be about this channel.
        var awaiting: [(subscribes: Bool, channel: String)] = []
        /// Channels to hand to `onResubscribed` once the server confirms them again.
        var missedWhileAway: Set<String> = []
    }

    private func run() {
        var context: RedisContext?
        var subscriptions = Subscriptions()
        /// Consecutive failed connection attempts.
        var failures = 0
        var hasConnected = false
        var isReconnecting = false
        /// Which of a cluster's nodes to try next; kept while a connection to it lasts.
        var nodeIndex = 0
        /// Moves of a sharded channel since a subscription was last confirmed: the backoff.
        var moves = 0
        while !shared.withLock({ $0.isClosed }) {
            if context == nil {
                do {
                    let nodes = configuration.isCluster ? self.nodes() : []
                    context = try RedisContext(
                        nodes.isEmpty ? configuration : configuration.node(nodes[nodeIndex % nodes.count]))
                    subscriptions = Subscriptions()
                    if hasConnected { subscriptions.missedWhileAway = shared.withLock { Set($0.sinks.keys) } }
                    hasConnected = true
                    if isReconnecting {
                        logger.info("notifier reconnected", ["endpoint": configuration.endpoint])
                    }
                    isReconnecting = false
                    failures = 0
                } catch {
                    failures += 1
                    nodeIndex += 1
                    onNodeLost()
                    failConfirmations(with: error)
                    if !isReconnecting {
                        logger.warning(
                            "notifier connection failed; retrying",
                            ["endpoint": configuration.endpoint, "error": "\(error)"])
                    }
                    isReconnecting = true
                    waitForWake(RedisConnection.retryDelay(afterFailures: failures))
                    continue
                }
            }
            guard let connection = context else { continue }
            do {
                let commands = changes(&subscriptions)
                if !commands.isEmpty { try connection.write(commands) }
                var fds = [
                    pollfd(fd: connection.fileDescriptor, events: Int16(POLLIN), revents: 0),
                    pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0),
                ]
                guard poll(&fds, 2, -1) >= 0 || errno == EINTR else {
                    throw IvyError(.connectionFailed, endpoint: configuration.endpoint, detail: "poll failed")
                }
                if fds[1].revents != 0 { wake.drain() }
                if fds[0].revents != 0 {
                    for reply in try connection.readAvailable() {
                        guard let channel = try handle(reply, &subscriptions) else { continue }
                        moves = 0
                        if subscriptions.missedWhileAway.remove(channel) != nil {
                            onResubscribed?(channel, self)
                        }
                    }
                }
            } catch let moved as ChannelMoved {
                if moves == 0 {
                    logger.info(
                        "a channel's slot moved, or its master is changing; subscribing on its master",
                        [
                            "endpoint": configuration.endpoint, "channel": moved.channel,
                            "reason": moved.reason,
                        ])
                }
                context = nil
                shared.withLock { $0.confirmed.removeAll() }
                onNodeLost()
                // Time for the new map, longer each time the same old node is asked again.
                moves += 1
                waitForWake(RedisConnection.retryDelay(afterFailures: moves))
            } catch {
                logger.warning(
                    "notifier connection lost; reconnecting",
                    ["endpoint": configuration.endpoint, "error": "\(error)"])
                context = nil
                nodeIndex += 1
                shared.withLock { $0.confirmed.removeAll() }
                onNodeLost()
                // The first try comes at once: the connection may have been dropped, not the server.
                isReconnecting = true
                failures = 0
            }
        }
    }

    /// The SUBSCRIBE and UNSUBSCRIBE commands that bring the connection to the channels in use,
    /// one per channel.
    private func changes(_ subscriptions: inout Subscriptions) -> [RedisCommand] {
        let (wanted, waiting) = shared.withLock { (Set($0.sinks.keys), Set($0.confirming.keys)) }
        subscriptions.refused.formIntersection(wanted)
        let joining = wanted.subtracting(subscriptions.subscribed)
            .filter { !subscriptions.refused.contains($0) || waiting.contains($0) }.sorted()
        let leaving = subscriptions.subscribed.subtracting(wanted).sorted()
        // Not confirmed from now on: a subscriber that comes before the UNSUBSCRIBE's reply
        // waits for the SUBSCRIBE that follows it.
        if !leaving.isEmpty { shared.withLock { $0.confirmed.subtract(leaving) } }
        var commands: [RedisCommand] = []
        for channel in joining {
            commands.append(RedisCommand(arguments: [kind.subscribe, Array(channel.utf8)]))
            subscriptions.awaiting.append((true, channel))
            subscriptions.subscribed.insert(channel)
            subscriptions.refused.remove(channel)
        }
        for channel in leaving {
            commands.append(RedisCommand(arguments: [kind.unsubscribe, Array(channel.utf8)]))
            subscriptions.awaiting.append((false, channel))
            subscriptions.subscribed.remove(channel)
        }
        return commands
    }

    /// Handles one pushed reply; returns the channel when it confirms a subscription.
    ///
    /// - Throws: ``ChannelMoved`` when a sharded channel's slot is no longer the node's.
    private func handle(_ reply: RedisReply, _ subscriptions: inout Subscriptions) throws -> String? {
        if let message = reply.errorMessage {
            try refused(message, &subscriptions)
            return nil
        }
        guard let parts = reply.array, parts.count == 3, let pushed = parts[0].text,
            let channel = parts[1].text
        else {
            return nil
        }
        switch pushed {
        case kind.message:
            if let payload = parts[2].bytes { deliver(payload, on: channel) }
        case kind.subscribed:
            if !subscriptions.awaiting.isEmpty { subscriptions.awaiting.removeFirst() }
            let waiters = shared.withLock { shared in
                shared.confirmed.insert(channel)
                return shared.confirming.removeValue(forKey: channel) ?? []
            }
            for waiter in waiters { waiter.resume() }
            return channel
        case kind.unsubscribed:
            // Not asked for: the server ended it, as its slot went to another node (a reshard,
            // or this master became a replica).
            if kind == .sharded, subscriptions.subscribed.contains(channel) {
                throw ChannelMoved(channel: channel, reason: "the server ended the subscription")
            }
            if !subscriptions.awaiting.isEmpty { subscriptions.awaiting.removeFirst() }
            shared.withLock { _ = $0.confirmed.remove(channel) }
        default:
            break
        }
        return nil
    }

    /// An error reply to the oldest command on the wire: a refused SUBSCRIBE fails the
    /// subscribers waiting for its channel.
    ///
    /// - Throws: ``ChannelMoved`` for a `MOVED` (the channel's slot is another node's) and the
    /// errors of a cluster in a migration or a failover.
    private func refused(_ message: String, _ subscriptions: inout Subscriptions) throws {
        guard !subscriptions.awaiting.isEmpty else {
            logger.warning(
                "unexpected error reply on the notifier connection",
                ["endpoint": configuration.endpoint, "error": message])
            return
        }
        let (subscribes, channel) = subscriptions.awaiting.removeFirst()
        if kind == .sharded, let code = message.split(separator: " ").first, Self.passingErrors.contains(code)
        {
            throw ChannelMoved(channel: channel, reason: message)
        }
        guard subscribes else {
            logger.warning(
                "the server refused an UNSUBSCRIBE", ["endpoint": configuration.endpoint, "error": message])
            return
        }
        subscriptions.subscribed.remove(channel)
        subscriptions.refused.insert(channel)
        subscriptions.missedWhileAway.remove(channel)
        let error =
            RedisContext.authenticationError(message, endpoint: configuration.endpoint)
            ?? IvyError(.commandFailed, endpoint: configuration.endpoint, detail: "SUBSCRIBE: \(message)")
        let waiters = shared.withLock { shared in
            shared.confirmed.remove(channel)
            return shared.confirming.removeValue(forKey: channel) ?? []
        }
        if waiters.isEmpty {
            // Subscribers from before a reconnect: they no longer hear this channel.
            logger.warning("the server refused a subscription", ["channel": channel, "error": "\(error)"])
        }
        for waiter in waiters { waiter.resume(throwing: error) }
    }

    private func failConfirmations(with error: any Error) {
        let waiters = shared.withLock { shared in
            defer { shared.confirming.removeAll() }
            return shared.confirming.values.flatMap { $0 }
        }
        for waiter in waiters { waiter.resume(throwing: error) }
        // Their sinks stay registered until each subscriber that gave up removes its own.
    }

    /// Sleeps for a backoff, or less if woken (a close, or a new subscriber).
    private func waitForWake(_ delay: Duration) {
        var fds = [pollfd(fd: wake.readEnd, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 1, Int32(clamping: delay.wholeMilliseconds)) > 0 { wake.drain() }
    }
}
