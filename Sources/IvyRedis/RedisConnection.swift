// This file is part of Ivy for Swift. MIT licensed; see LICENSE.

internal import Foundation
internal import IvyCore
internal import Synchronization

/// A connection to Redis that owns one OS thread: every hiredis call runs there, never on the
/// cooperative pool.
///
/// Commands are pipelined both ways: whatever callers submit is written as soon as the thread
/// sees it, without waiting for earlier replies, and replies come back in order. Many tasks
/// sharing one connection therefore share its round trips. A lost connection is re-established
/// by the next command, after a backoff that grows with consecutive failures (with jitter;
/// see `retryDelay(afterFailures:)`).
///
/// ```swift
/// let redis = try await RedisConnection.connect(RedisConfiguration(url: "redis://127.0.0.1:6390"))
/// let reply = try await redis.command(RedisCommand("PING"))
/// ```
package final class RedisConnection: Sendable {
    /// What happens to a command when the task waiting for its reply is cancelled.
    package enum CancellationAction: Sendable {
        /// The reply is awaited as usual: ordinary commands finish within the command timeout.
        case awaitReply
        /// The connection is dropped at once and the command fails with `CancellationError`
        /// (as do other commands on the wire with it). For blocking commands.
        case interrupt
        /// `CLIENT UNBLOCK` is sent through `connection`, so a blocking command returns its
        /// empty reply now and commands pipelined behind it still run and report; if that has
        /// not happened within `grace`, the connection is dropped as with ``interrupt``.
        case unblock(through: RedisConnection, grace: Duration)
    }

    package let configuration: RedisConfiguration
    package var endpoint: String { configuration.endpoint }

    private let queue = RedisRequestQueue()
    /// For a Redis Cluster: the router that sends each command to its node's connection; this
    /// connection then has no thread of its own.
    let router: RedisClusterRouter?
    /// Masters whose replicas last fell short of a `WAIT`, and until when writes to them go
    /// without one.
    private let unconfirmingMasters = Mutex<[RedisConfiguration.Address: ContinuousClock.Instant]>([:])

    /// Starts the connection's thread (for a cluster, nothing yet); it connects with the first
    /// command.
    package init(configuration: RedisConfiguration, name: String = "ivy-redis") {
        self.configuration = configuration
        if configuration.isCluster {
            router = RedisClusterRouter(configuration: configuration, name: name)
            return
        }
        router = nil
        let driver = RedisConnectionDriver(configuration: configuration, queue: queue)
        DedicatedThread.start(name: name) { [driver = UncheckedSendable(driver)] in driver.value.run() }
    }

    deinit {
        queue.close()
        if let router { Task { await router.close() } }
    }

    /// A connection that has connected and authenticated once, so bad addresses and
    /// credentials fail here with a clear error.
    package static func connect(_ configuration: RedisConfiguration, name: String = "ivy-redis") async throws
        -> RedisConnection
    {
        try configuration.validate()
        let connection = RedisConnection(configuration: configuration, name: name)
        if let router = connection.router {
            do { try await router.start() } catch {
                await router.close()
                throw error
            }
            return connection
        }
        _ = try await connection.submit([], extraTime: .zero, failsFast: true, onCancel: .awaitReply)
        return connection
    }

    /// Sends one command.
    package func command(_ command: RedisCommand) async throws -> RedisReply {
        try await send([command])[0]
    }

    /// Sends commands in order, pipelined with whatever else is on the connection, and returns
    /// their replies.
    ///
    /// - Parameters:
    ///   - commands: The commands, at least one.
    ///   - wait: How long the server may hold the first command (BLPOP, XREADGROUP BLOCK), on
    ///     top of the configuration's command timeout.
    ///   - onCancel: What cancelling the calling task does.
    package func send(
        _ commands: [RedisCommand], wait: Duration = .zero, onCancel: CancellationAction = .awaitReply
    )
        async throws -> [RedisReply]
    {
        precondition(!commands.isEmpty, "send needs at least one command")
        if let router { return try await router.send(commands, wait: wait, onCancel: onCancel) }
        return try await submit(commands, extraTime: wait, failsFast: false, onCancel: onCancel)
    }

    /// Sends commands like ``send(_:wait:onCancel:)``, without suspending: `completion` gets
    /// the replies or the failure.
    ///
    /// `completion` runs on the connection's thread (or the caller's, when the connection is
    /// closed): it must return quickly and never block. For callers with something else to
    /// await, such as a producer whose result will come through the notifier, this saves a
    /// task switch per request.
    package func send(
        _ commands: [RedisCommand], completion: @escaping @Sendable (Result<[RedisReply], any Error>) -> Void
    ) {
        precondition(!commands.isEmpty, "send needs at least one command")
        if let router { return router.send(commands, completion: completion) }
        enqueue(queue.makeID(), commands, extraTime: .zero, failsFast: false, completion: completion)
    }

    /// Sends a command the server may hold for up to `wait`; cancelling the calling task ends
    /// the wait at once (``CancellationAction/interrupt``).
    package func blockingCommand(_ command: RedisCommand, wait: Duration) async throws -> RedisReply {
        try await send([command], wait: wait, onCancel: .interrupt)[0]
    }

    /// The servers this connection reaches: for a cluster, every node its last slot map named
    /// (masters, then replicas, then the seeds); otherwise the one server.
    package var knownNodes: [RedisConfiguration.Address] {
        router?.knownNodes ?? [configuration.address]
    }

    /// The `WAIT` that follows a write to `key` in its request, so that replicas have it before
    /// the write counts as done (``RedisConfiguration/replicasToConfirm``); nil for none.
    ///
    /// For ``unconfirmingPause`` after replicas fell short (``replicasConfirmed(_:wanted:afterWritingTo:)``),
    /// writes to that master go without: a lost replica must not hold every request on the
    /// master's connection for the wait's timeout until the cluster notices.
    package func replicaWait(afterWritingTo key: String) -> (command: RedisCommand, replicas: Int)? {
        let slot = RedisClusterSlot.of(key: key)
        let count = configuration.replicasToConfirm ?? (router?.hasReplica(slot: slot) == true ? 1 : 0)
        guard count > 0 else { return nil }
        let master = router?.master(ofSlot: slot) ?? configuration.address
        let paused = unconfirmingMasters.withLock { masters in
            guard let until = masters[master] else { return false }
            if ContinuousClock.now < until { return true }
            masters[master] = nil
            return false
        }
        guard !paused else { return nil }
        // A WAIT holds the requests behind it on the connection: it ends well before their timeout.
        let timeout = min(configuration.replicaTimeout, configuration.commandTimeout / 2)
        return (RedisCommand("WAIT", count, max(1, timeout.wholeMilliseconds)), count)
    }

    /// How long writes to a master go without a `WAIT` after its replicas fell short.
    package static let unconfirmingPause = Duration.seconds(10)

    /// Whether `reply`, to a `WAIT` from ``replicaWait(afterWritingTo:)`` after a write to `key`,
    /// counts the `wanted` replicas. When it does not (fewer in time, or an error), that master's
    /// writes go without a `WAIT` for ``unconfirmingPause``, and a cluster's map is asked for
    /// again (a replica that failed leaves it).
    package func replicasConfirmed(_ reply: RedisReply?, wanted: Int, afterWritingTo key: String) -> Bool {
        if let confirmed = reply?.integer, confirmed >= wanted { return true }
        let master = router?.master(ofSlot: RedisClusterSlot.of(key: key)) ?? configuration.address
        unconfirmingMasters.withLock { $0[master] = ContinuousClock.now + Self.unconfirmingPause }
        router?.refreshSoon()
        return false
    }

    /// On a cluster, the master that serves `key`'s slot (a sharded channel's too), as the map
    /// last said; nil on one server, or while no node is known to serve it.
    package func clusterMaster(forKey key: String) -> RedisConfiguration.Address? {
        router?.master(ofSlot: RedisClusterSlot.of(key: key))
    }

    /// On a cluster, asks for the slot map again in the background: a subscriber found its node
    /// gone, or its channel's slot moved.
    package func refreshClusterMap() { router?.refreshSoon() }

    /// Closes the connection; commands on the wire and later ones fail with `IvyError/Code/closed`.
    package func close() async {
        queue.close()
        await router?.close()
    }

    private func submit(
        _ commands: [RedisCommand], extraTime: Duration, failsFast: Bool, onCancel: CancellationAction
    ) async throws -> [RedisReply] {
        let id = queue.makeID()
        switch onCancel {
        case .awaitReply:
            return try await enqueue(id, commands, extraTime: extraTime, failsFast: failsFast)
        case .interrupt:
            return try await withTaskCancellationHandler {
                try await enqueue(id, commands, extraTime: extraTime, failsFast: failsFast)
            } onCancel: {
                self.queue.interrupt(id)
            }
        case .unblock(let other, let grace):
            return try await withTaskCancellationHandler {
                try await enqueue(id, commands, extraTime: extraTime, failsFast: failsFast)
            } onCancel: {
                Task { await self.unblock(id, through: other, grace: grace) }
            }
        }
    }

    private func enqueue(_ id: UInt64, _ commands: [RedisCommand], extraTime: Duration, failsFast: Bool)
        async throws
        -> [RedisReply]
    {
        try await awaiting {
            enqueue(id, commands, extraTime: extraTime, failsFast: failsFast, completion: $0)
        }
    }

    private func enqueue(
        _ id: UInt64, _ commands: [RedisCommand], extraTime: Duration, failsFast: Bool,
        completion: @escaping RedisRequestQueue.Completion
    ) {
        var encoded: [UInt8] = []
        encoded.reserveCapacity(commands.reduce(0) { $0 + $1.encodedArguments.count + 8 })
        for command in commands {
            encoded += command.header
            encoded += command.encodedArguments
        }
        queue.submit(
            .init(
                id: id, encoded: encoded, replyCount: commands.count,
                label: commands.first?.name ?? "connect",
                extraTime: extraTime, failsFast: failsFast, completion: completion),
            endpoint: endpoint)
    }

    /// Unblocks request `id` with `CLIENT UNBLOCK` sent through `other`, retrying while the
    /// command has not reached the server yet; interrupts it when `grace` runs out.
    private func unblock(_ id: UInt64, through other: RedisConnection, grace: Duration) async {
        let clock = ContinuousClock()
        let deadline = clock.now + grace
        while queue.isPending(id) && clock.now < deadline {
            if let clientID = queue.clientID,
                let reply = try? await other.command(RedisCommand("CLIENT", "UNBLOCK", clientID)),
                reply.integer == 1
            {
                return
            }
            // Not blocked (yet): the command may still be on its way to the server.
            try? await Task.sleep(for: .milliseconds(2))
        }
        if queue.isPending(id) { queue.interrupt(id) }
    }
}

/// Hands a value that is not `Sendable` to the one thread that will use it.
private struct UncheckedSendable<Value>: @unchecked Sendable {
    let value: Value
    init(_ value: Value) { self.value = value }
}
